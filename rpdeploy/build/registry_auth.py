"""Registry credentials for a push: where they come from, and how they reach the engine.

Looked up in this order, first match wins:

1. ``image.credentials`` in deploy.yaml (references: env vars or files);
2. the environment: ``RPDEPLOY_REGISTRY_USERNAME`` and ``RPDEPLOY_REGISTRY_PASSWORD``;
3. the user's docker client config (``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``):
   ``auths`` entries, ``credHelpers`` and ``credsStore`` (the ``docker-credential-*`` helpers,
   which get the server name on stdin and answer on stdout), exactly as ``docker login`` left them.

The password travels one way only: from its env var, file or helper into a
:class:`~rpdeploy.secrets.Secret` (which registers it for redaction), then as the SDK's
``auth_config`` into the ``X-Registry-Auth`` header (or the ``/auth`` request body) on the
engine's socket. It is never put in argv, never logged, never written to the ledger.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rpdeploy.errors import ConfigError, RegistryError
from rpdeploy.secrets import Secret

if TYPE_CHECKING:
    from rpdeploy.config import ImageConfig, SecretRef

ENV_USERNAME = "RPDEPLOY_REGISTRY_USERNAME"
ENV_PASSWORD = "RPDEPLOY_REGISTRY_PASSWORD"

#: Docker Hub's names for itself. Its credentials are stored under the v1 index URL (the key
#: `docker login` writes), and the engine's /auth endpoint wants that URL too.
DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"


def server_address(registry: str) -> str:
    """The server address docker uses for ``registry``: the v1 index URL for Docker Hub, else host[:port]."""
    return DOCKER_HUB_SERVER if registry in DOCKER_HUB_NAMES else registry


def login_hint(registry: str) -> str:
    """How to give rpdeploy credentials for ``registry``, in one line."""
    target = "" if registry in DOCKER_HUB_NAMES else f" {registry}"
    return (
        f"set image.credentials in deploy.yaml, or export {ENV_USERNAME} and {ENV_PASSWORD}, "
        f"or run `docker login{target}`"
    )


@dataclass(frozen=True)
class RegistryAuth:
    """Resolved credentials for one registry. ``repr`` shows where they came from, never the values."""

    registry: str  # as in deploy.yaml: docker.io, ghcr.io, 127.0.0.1:5000
    source: str  # e.g. "deploy.yaml image.credentials (env:REG_USER, env:REG_PASS)"
    username: str | None = None
    password: Secret | None = None
    identity_token: Secret | None = None

    @property
    def server(self) -> str:
        return server_address(self.registry)

    def auth_config(self) -> dict[str, str]:
        """The SDK's ``auth_config``: the one place the secret is revealed, to go to the engine."""
        config = {"serveraddress": self.server}
        if self.identity_token is not None:
            config["identitytoken"] = self.identity_token.reveal()
            return config
        if self.username is not None:
            config["username"] = self.username
        if self.password is not None:
            config["password"] = self.password.reveal()
        return config

    def describe(self) -> str:
        who = f" as {self.username}" if self.username else ""
        return f"{self.source}{who}"


def _read_ref(ref: SecretRef, *, base_dir: Path, environ: Mapping[str, str], field: str) -> str:
    """A reference's value without registering it as a secret (for user names).

    A user name is not a secret, and registering it would mask it everywhere it appears,
    Docker Hub repository names included ("acme/worker" -> "****/worker").
    """
    if ref.env is not None:
        value = environ.get(ref.env, "")
        if not value:
            raise ConfigError(
                f"{field} ({ref.describe()}): environment variable {ref.env} is not set",
                hint=f"export {ref.env}=... (in CI, from the pipeline's secret store)",
            )
        return value
    assert ref.file is not None
    path = Path(os.path.expanduser(ref.file))
    if not path.is_absolute():
        path = base_dir / path
    from rpdeploy.limits import read_secret_file

    return read_secret_file(path, label=f"{field} ({ref.describe()})")


def docker_config_path(environ: Mapping[str, str]) -> Path | None:
    """The docker client config the docker CLI would read: ``$DOCKER_CONFIG/config.json``, else ``~/.docker``."""
    explicit = environ.get("DOCKER_CONFIG")
    if explicit:
        # Like the docker CLI (and unlike the SDK), DOCKER_CONFIG replaces the default folder.
        candidates = [Path(explicit) / "config.json"]
    else:
        home = Path(environ.get("HOME") or Path.home())
        candidates = [home / ".docker" / "config.json", home / ".dockercfg"]
    return next((path for path in candidates if path.is_file()), None)


def _from_docker_config(registry: str, environ: Mapping[str, str]) -> RegistryAuth | None:
    from docker import auth, errors
    from docker.credentials import StoreError

    path = docker_config_path(environ)
    if path is None:
        return None
    # Helpers are looked up by the same key `docker login` stores them under.
    lookup = server_address(registry) if registry in DOCKER_HUB_NAMES else registry
    try:
        with warnings.catch_warnings():
            # A missing helper program warns, then fails: the error below says it once, with the fix.
            warnings.simplefilter("ignore")
            store = auth.load_config(str(path), credstore_env=dict(environ))
            found = store.resolve_authconfig(lookup)
    except (errors.DockerException, StoreError, OSError, ValueError) as exc:
        raise RegistryError(
            f"cannot read your docker credentials for {registry} from {path}: {exc}",
            hint="check credsStore/credHelpers there (the docker-credential-<name> program must be on PATH), or "
            + login_hint(registry),
        ) from None
    if not found:
        return None
    # Entries from `auths` use lower-case keys, helper answers capitalised ones.
    entry = {str(k).lower(): v for k, v in found.items()}
    helper = store.get_credential_store(lookup)
    source = f"docker config {path}" + (f" (credential helper docker-credential-{helper})" if helper else "")
    token = entry.get("identitytoken")
    if token:
        return RegistryAuth(registry, source, identity_token=Secret(str(token), source))
    username, password = entry.get("username"), entry.get("password")
    if not username or not password:
        return None  # an empty `auths` entry: the credentials live in a helper that had none
    return RegistryAuth(registry, source, username=str(username), password=Secret(str(password), source))


def resolve_registry_auth(
    image: ImageConfig, *, base_dir: Path, environ: Mapping[str, str] | None = None
) -> RegistryAuth | None:
    """Credentials for ``image.registry`` from the first source that has them, else None."""
    environ = os.environ if environ is None else environ
    registry = image.registry
    if image.credentials is not None:
        refs = image.credentials
        username = _read_ref(refs.username, base_dir=base_dir, environ=environ, field="image.credentials.username")
        password = refs.password.resolve(base_dir=base_dir, environ=environ, field="image.credentials.password")
        source = f"deploy.yaml image.credentials ({refs.username.describe()}, {refs.password.describe()})"
        return RegistryAuth(registry, source, username=username, password=password)
    env_user, env_password = environ.get(ENV_USERNAME, ""), environ.get(ENV_PASSWORD, "")
    if env_user or env_password:
        if not (env_user and env_password):
            missing = ENV_PASSWORD if env_user else ENV_USERNAME
            raise ConfigError(
                f"{missing} is not set (registry credentials from the environment need both "
                f"{ENV_USERNAME} and {ENV_PASSWORD})",
                hint=f"export {missing}=..., or unset the other one to use your docker login",
            )
        source = f"env {ENV_USERNAME}/{ENV_PASSWORD}"
        return RegistryAuth(registry, source, username=env_user, password=Secret(env_password, f"env:{ENV_PASSWORD}"))
    return _from_docker_config(registry, environ)


def require_registry_auth(
    image: ImageConfig, *, base_dir: Path, environ: Mapping[str, str] | None = None
) -> RegistryAuth:
    """Like :func:`resolve_registry_auth`, but a push without credentials is an error (before any build)."""
    found = resolve_registry_auth(image, base_dir=base_dir, environ=environ)
    if found is None:
        raise RegistryError(
            f"no credentials for the registry {image.registry} (needed to push {image.name})",
            hint=login_hint(image.registry),
        )
    return found
