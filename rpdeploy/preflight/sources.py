"""Where a model's architecture comes from, first match wins: ``model.config_file``, the local
Hugging Face cache, the Hub (a few seconds' timeout: an offline machine falls back at once), and
rpdeploy's built-in table (:mod:`rpdeploy.preflight.models_table`). The result says which one answered.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from rpdeploy.errors import ConfigError
from rpdeploy.output import NullReporter, Reporter
from rpdeploy.preflight import models_table
from rpdeploy.preflight.arch import ModelArch, arch_from_config

if TYPE_CHECKING:
    import httpx

    from rpdeploy.config import Config
    from rpdeploy.secrets import Secret


#: Hugging Face Hub timeouts: an offline machine must fall back to the table in seconds.
HUB_CONNECT_TIMEOUT = 3.0
HUB_READ_TIMEOUT = 5.0
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


# --- where the architecture comes from ----------------------------------------------------


@dataclass(frozen=True)
class ArchLookup:
    """The architecture found (or None) and what happened on the way, for people."""

    arch: ModelArch | None
    notes: tuple[str, ...] = ()


def hf_cache_dir(environ: Mapping[str, str]) -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub resolves it."""
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if environ.get(key):
            return Path(environ[key]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub"
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub"
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".cache" / "huggingface" / "hub"


def _read_json(path: Path) -> dict[str, Any]:
    """A config.json: at most 4 MiB and 64 levels (rpdeploy.limits); ValueError when it is not usable."""
    from rpdeploy.limits import MODEL_CONFIG_BYTES, MODEL_CONFIG_DEPTH, decode_text, loads_json, read_limited

    try:
        raw = read_limited(path, MODEL_CONFIG_BYTES, what="config.json")
        data = loads_json(decode_text(raw, what="config.json", path=path), depth=MODEL_CONFIG_DEPTH, what=str(path))
    except ConfigError as exc:
        raise ValueError(exc.message) from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _from_file(config: Config) -> ModelArch:
    assert config.model.config_file is not None
    path = Path(os.path.expanduser(config.model.config_file))
    if not path.is_absolute():
        path = config.base_dir / path
    try:
        data = _read_json(path)
        return arch_from_config(data, name=config.model.name, source=f"file {config.model.config_file}")
    except OSError as exc:
        raise ConfigError(f"model.config_file: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise ConfigError(f"model.config_file: {path} is not a usable config.json: {exc}") from None


def _from_cache(name: str, revision: str | None, environ: Mapping[str, str]) -> tuple[ModelArch | None, str]:
    folder = hf_cache_dir(environ) / f"models--{name.replace('/', '--')}"
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None, ""
    wanted = revision or "main"
    commit = wanted if _COMMIT.match(wanted) else None
    ref = folder / "refs" / wanted
    if commit is None and ref.is_file():
        from rpdeploy.limits import read_limited

        try:  # a commit id: 40 hex characters (a ref file is never longer than a few lines)
            commit = read_limited(ref, 4096, what="").decode("utf-8", "replace").strip() or None
        except (OSError, ConfigError):
            commit = None
    candidates = [snapshots / commit / "config.json"] if commit else []
    note = ""
    if not candidates or not candidates[0].is_file():
        candidates = sorted(snapshots.glob("*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        if candidates and revision:
            note = f"the HF cache has no snapshot of revision {revision}; used the newest one"
    for path in candidates:
        try:
            arch = arch_from_config(_read_json(path), name=name, source=f"HF cache {path.parent.name[:12]}")
        except (OSError, ValueError):
            continue
        return arch, note
    return None, ""


def _hub_parameter_count(data: Any) -> int | None:
    if not isinstance(data, Mapping):
        return None
    info = data.get("safetensors")
    if not isinstance(info, Mapping):
        return None
    total = info.get("total")
    if isinstance(total, int) and total > 0:
        return total
    parameters = info.get("parameters")
    if isinstance(parameters, Mapping):
        counts = [v for v in parameters.values() if isinstance(v, int)]
        return sum(counts) or None
    return None


def _from_hub(
    name: str,
    revision: str | None,
    token: Secret | None,
    *,
    environ: Mapping[str, str],
    transport: httpx.BaseTransport | None,
    reporter: Reporter,
) -> tuple[ModelArch | None, str]:
    """config.json (and the parameter count) from the Hub; (None, why) when it cannot."""
    import httpx

    endpoint = (environ.get("HF_ENDPOINT") or DEFAULT_HUB_ENDPOINT).rstrip("/")
    rev = quote(revision or "main", safe="")
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token.reveal()}"
    timeout = httpx.Timeout(HUB_READ_TIMEOUT, connect=HUB_CONNECT_TIMEOUT)
    # httpx drops Authorization on a redirect to another host (the Hub's CDN), as it should.
    with httpx.Client(transport=transport, timeout=timeout, headers=headers, follow_redirects=True) as client:
        try:
            response = client.get(f"{endpoint}/{name}/resolve/{rev}/config.json")
        except httpx.TimeoutException:
            return None, f"the Hugging Face Hub did not answer within {HUB_CONNECT_TIMEOUT:.0f} s"
        except httpx.HTTPError as exc:
            return None, f"could not reach the Hugging Face Hub ({type(exc).__name__})"
        status = response.status_code
        if status in (401, 403):
            why = (
                "the token in model.hf_token has no access to it"
                if token is not None
                else "it is gated or private: set model.hf_token to the env var holding a token with access"
            )
            return None, f"the Hugging Face Hub refused {name} (HTTP {status}): {why}"
        if status == 404:
            return None, f"the Hugging Face Hub has no {name} at revision {revision or 'main'} (HTTP 404)"
        if status != 200:
            return None, f"the Hugging Face Hub answered HTTP {status} for {name}'s config.json"
        try:
            data = response.json()
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            arch = arch_from_config(data, name=name, source="Hugging Face Hub")
        except ValueError as exc:
            return None, f"{name}'s config.json on the Hub is not usable: {exc}"
        if arch.quantization is not None:
            return arch, ""
        api = f"{endpoint}/api/models/{name}" + (f"/revision/{rev}" if revision else "")
        try:
            info = client.get(api)
            count = _hub_parameter_count(info.json()) if info.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            reporter.debug(f"parameter count from the Hub API: {type(exc).__name__}; counting from config.json")
            count = None
    if count:
        return arch_from_config(data, name=name, source="Hugging Face Hub", parameter_count=count), ""
    return arch, ""


def load_arch(
    config: Config,
    *,
    reporter: Reporter | None = None,
    offline: bool = False,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ArchLookup:
    """The model's architecture from, in order: model.config_file, the Hub, the HF cache, the table.

    A ``model.config_file`` that cannot be read is a ConfigError (the user asked for it); every
    other source falls back to the next, and the notes say why. ``HF_HUB_OFFLINE=1`` counts as
    ``offline``. The token (``model.hf_token``) goes only into the Authorization header.
    """
    reporter = reporter or NullReporter()
    environ = os.environ if environ is None else environ
    name = config.model.name
    revision = config.model.revision
    if config.model.config_file:
        return ArchLookup(_from_file(config))

    notes: list[str] = []
    if name.startswith("/"):
        local = Path(name) / "config.json"
        if local.is_file():
            try:
                return ArchLookup(arch_from_config(_read_json(local), name=name, source=f"file {local}"))
            except (OSError, ValueError) as exc:
                notes.append(f"{local} is not a usable config.json: {exc}")
        notes.append(f"{name} is a path inside the image; set model.config_file to a copy of its config.json")
        return ArchLookup(None, tuple(notes))

    hub_note = ""
    offline = offline or environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if offline:
        hub_note = "the Hub was not asked (offline)"
    else:
        token: Secret | None = None
        if config.model.hf_token is not None:
            try:
                token = config.model.hf_token.resolve(base_dir=config.base_dir, environ=environ, field="model.hf_token")
            except ConfigError as exc:
                notes.append(f"{exc.message}; reading the Hub without a token")
        with reporter.status(f"Reading {name}'s config.json from the Hugging Face Hub"):
            arch, hub_note = _from_hub(name, revision, token, environ=environ, transport=transport, reporter=reporter)
        if arch is not None:
            return ArchLookup(arch, tuple(notes))
        reporter.debug(hub_note)

    arch, cache_note = _from_cache(name, revision, environ)
    if arch is not None:
        notes.append(f"architecture from the local HF cache: {hub_note}")
        if cache_note:
            notes.append(cache_note)
        return ArchLookup(arch, tuple(notes))

    found = models_table.find_builtin(name)
    if found is not None:
        key, data = found
        arch = arch_from_config(data, name=key, source="built-in table")
        pinned = f"; model.revision {revision} was not checked" if revision else ""
        notes.append(f"architecture from rpdeploy's built-in table: {hub_note}{pinned}")
        return ArchLookup(arch, tuple(notes))

    notes.append(
        f"no architecture for {name} ({hub_note}; not in the HF cache or the built-in table): "
        "set model.config_file to a copy of its config.json to check the fit"
    )
    return ArchLookup(None, tuple(notes))
