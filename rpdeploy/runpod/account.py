"""Account-level objects a deploy needs before its template: registry credentials and secrets.

Owns the registry login RunPod pulls a private image with (from image.credentials, kept under a
stable name so re-runs reuse it) and the account secret that holds model.hf_token. RunPod never
returns a stored password or secret value, so whether to set it again is the caller's call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from rpdeploy.errors import ApiError, AuthError
from rpdeploy.runpod.desired import hf_token_secret
from rpdeploy.runpod.models import AccountSecret, RegistryAuth
from rpdeploy.runpod.plan import Operation
from rpdeploy.secrets import Secret

if TYPE_CHECKING:
    from rpdeploy.config import Config
    from rpdeploy.runpod.controlplane import ControlPlane

# --- registry credentials -----------------------------------------------------------------


def registry_auth_name(registry: str, username: str) -> str:
    """A stable name for RunPod's registry credentials, so re-runs reuse them."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{registry}-{username}").strip("-").lower()
    return f"rpdeploy-{slug}"[:100]


def ensure_registry_auth(
    cp: ControlPlane, *, registry: str, username: str, password: Secret, refresh: bool
) -> tuple[RegistryAuth, Operation | None]:
    """Find our credentials by name (create them if missing; update them when ``refresh``).

    RunPod never returns a stored password, so "changed?" cannot be asked of it: the caller
    decides (the deploy ledger refreshes them when the password's fingerprint changed).
    """
    name = registry_auth_name(registry, username)
    existing = next((a for a in cp.list_registry_auths() if a.name == name), None)
    if existing is None:
        return cp.save_registry_auth(name, username, password), Operation("create-registry-auth", name)
    if refresh:
        return cp.update_registry_auth(existing.id, username, password), Operation("update-registry-auth", name)
    return existing, None


# --- account secrets ----------------------------------------------------------------------


def ensure_secret(
    cp: ControlPlane, *, name: str, value: Secret, refresh: bool, description: str = ""
) -> tuple[AccountSecret, Operation | None]:
    """Find the account secret by name (create it if missing; set its value again when ``refresh``).

    The value is never read back (RunPod has no way to), so whether it changed is the caller's
    call, as for registry credentials: the deploy ledger refreshes it when the token's
    fingerprint changed.
    """
    existing = next((s for s in cp.list_secrets() if s.name == name), None)
    if existing is None:
        return cp.create_secret(name, value, description=description), Operation("create-secret", name)
    if refresh:
        return cp.update_secret_value(existing.id, value), Operation("update-secret", name)
    return existing, None


def ensure_hf_secret(
    cp: ControlPlane, config: Config, *, refresh: bool, dry_run: bool = False, environ: Mapping[str, str] | None = None
) -> tuple[AccountSecret | None, Operation | None]:
    """The RunPod secret the template env references for model.hf_token (None when not used)."""
    wanted = hf_token_secret(config, environ)
    if wanted is None:
        return None, None
    name, token = wanted
    try:
        if dry_run:
            found = next((s for s in cp.list_secrets() if s.name == name), None)
            if found is None:
                return None, Operation("create-secret", name)
            return found, Operation("update-secret", name) if refresh else None
        description = f"Hugging Face token of rpdeploy deployment {config.deployment_mark} (model.hf_token)"
        return ensure_secret(cp, name=name, value=token, refresh=refresh, description=description)
    except AuthError:
        raise
    except ApiError as exc:
        # Listing secrets and setting a value again are not in RunPod's docs (only create and
        # delete are): if RunPod refuses them, say what the way out is.
        raise ApiError(
            f"cannot keep model.hf_token in the RunPod secret {name!r}: {exc.message}",
            hint="RunPod documents only secretCreate and secretDelete; to go on without a secret, set "
            "model.hf_token_delivery: template-env (the token then sits in the template env in plain text)",
            status=exc.status,
            retryable=exc.retryable,
        ) from exc


def registry_credentials(config: Config, environ: Mapping[str, str] | None = None) -> tuple[str, Secret] | None:
    """Registry login RunPod needs to pull a private image: from image.credentials."""
    if config.image is None or config.image.credentials is None:
        return None
    creds = config.image.credentials
    user = creds.username.resolve(base_dir=config.base_dir, environ=environ, field="image.credentials.username")
    password = creds.password.resolve(base_dir=config.base_dir, environ=environ, field="image.credentials.password")
    return user.reveal(), password
