"""The emulator sandbox of ``--emulator``: the account a throw-away emulator leaves for the next one.

``rpdeploy deploy --emulator`` starts an emulator that lives only as long as the command. So
that ``status``, ``endpoint get``, ``smoke-test``, ``plan`` and ``destroy`` with ``--emulator``
see what that deploy made, each such command saves the emulated account when it ends
(``.rpdeploy/emulator/account.json``) and the next one starts from it: templates, endpoints,
registry credentials, network volumes, account secrets and each endpoint's releases (REST
v2's history: ``status --emulator`` shows the latest). Workers, queues and jobs are not
kept: the next command's endpoint has scaled to zero, as a RunPod endpoint does when idle.

Secret values never reach the file (registry passwords and account secrets are stored empty,
as RunPod never shows them either, and any value rpdeploy knows as a secret is masked), so a
worker started from a restored account gets an empty value for a secret until a deploy sets
it again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from rpdeploy.emulator.state import (
    Account,
    AccountSecret,
    EmulatorState,
    Endpoint,
    EnvVar,
    NetworkVolume,
    RegistryAuth,
    Template,
)

ACCOUNT_FILE = "account.json"
_VERSION = 1
#: The simulated fleet: not part of what an account holds between commands.
_FLEET_FIELDS = frozenset({"workers", "queue", "completed", "failed", "retried"})
#: Never written to disk.
_SECRET_FIELDS = frozenset({"password", "value"})

R = TypeVar("R")


def _record(obj: Any, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in dataclasses.fields(obj):
        if item.name in skip:
            continue
        value = getattr(obj, item.name)
        if item.name in _SECRET_FIELDS:
            value = ""
        elif item.name == "env" and isinstance(obj, Template):
            value = [{"key": var.key, "value": var.value} for var in value]
        out[item.name] = value
    return out


def _build(cls: type[R], data: Any) -> R:
    if not isinstance(data, dict):
        raise ValueError(f"a {cls.__name__} record is not an object")
    names = {item.name for item in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {key: value for key, value in data.items() if key in names and key not in _FLEET_FIELDS}
    if cls is Template:
        values["env"] = [EnvVar(str(var["key"]), str(var["value"])) for var in values.get("env") or ()]
        values["released_at"] = None  # a time on the previous emulator's clock
    return cls(**values)


def emulator_settings(path: Path) -> tuple[int, str | None]:
    """The port and API key the sandbox's last emulator had (0 and None when unknown).

    The next emulator takes them again when it can: the stages' fingerprints include the
    control plane's URL and a digest of the key, so a deploy that changes nothing stays a
    no-op from one ``--emulator`` command to the next. The key is the emulator's own
    throwaway, valid nowhere else.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        emulator = document.get("emulator") if isinstance(document, dict) else None
        port = int(emulator.get("port") or 0) if isinstance(emulator, dict) else 0
        key = emulator.get("api_key") if isinstance(emulator, dict) else None
    except (OSError, ValueError, TypeError, AttributeError):
        return 0, None
    return (port if 0 < port < 65536 else 0), (key if isinstance(key, str) and key.startswith("rpa_") else None)


def save_account(state: EmulatorState, path: Path, *, port: int = 0, api_key: str | None = None) -> None:
    """Write what the emulated account holds to ``path`` (atomically; no secret values)."""
    from rpdeploy.fsutil import atomic_write
    from rpdeploy.secrets import redact_data

    with state.lock:
        document = {
            "version": _VERSION,
            "account": {"id": state.account.id, "email": state.account.email},
            "templates": [_record(t) for t in state.templates.values()],
            "endpoints": [_record(e, _FLEET_FIELDS) for e in state.endpoints.values()],
            "registry_auths": [_record(r) for r in state.registry_auths.values()],
            "network_volumes": [_record(v) for v in state.network_volumes.values()],
            "secrets": [_record(s) for s in state.secrets.values()],
            "releases": {endpoint_id: list(history) for endpoint_id, history in state.releases.items()},
        }
    # A token sent as a plain template env value (hf_token_delivery: template-env) is masked too.
    document = redact_data(document)
    document["emulator"] = {"port": port, "api_key": api_key}  # its own throwaway key, not a secret of yours
    atomic_write(path, json.dumps(document, indent=1, default=list) + "\n", mode=0o600)


def load_account(state: EmulatorState, path: Path) -> bool:
    """Fill ``state`` from ``path``; False (and ``state`` untouched) when there is no usable file."""
    from rpdeploy.errors import ConfigError
    from rpdeploy.limits import LEDGER_BYTES, loads_json, read_limited

    try:
        document = loads_json(
            read_limited(path, LEDGER_BYTES, what="the emulator sandbox", regular_only=True), depth=64, what=str(path)
        )
    except (FileNotFoundError, ConfigError):
        return False
    if not isinstance(document, dict) or document.get("version") != _VERSION:
        return False
    try:
        account = document.get("account") or {}
        templates = [_build(Template, t) for t in document.get("templates") or ()]
        endpoints = [_build(Endpoint, e) for e in document.get("endpoints") or ()]
        auths = [_build(RegistryAuth, r) for r in document.get("registry_auths") or ()]
        volumes = [_build(NetworkVolume, v) for v in document.get("network_volumes") or ()]
        secrets = [_build(AccountSecret, s) for s in document.get("secrets") or ()]
        releases = {
            str(endpoint_id): [dict(release) for release in history]
            for endpoint_id, history in (document.get("releases") or {}).items()
        }
    except (TypeError, ValueError, KeyError):
        return False  # written by another version of the emulator: start afresh
    with state.lock:
        if account.get("id"):
            state.account = Account(id=str(account["id"]), email=str(account.get("email") or state.account.email))
        state.clear()
        state.templates.update((t.id, t) for t in templates)
        state.endpoints.update((e.id, e) for e in endpoints)
        state.registry_auths.update((r.id, r) for r in auths)
        state.network_volumes.update((v.id, v) for v in volumes)
        state.secrets.update((s.id, s) for s in secrets)
        state.releases.update((key, history) for key, history in releases.items() if key in state.endpoints)
    return True
