"""A stand-in for the part of huggingface_hub that a worker Dockerfile uses to bake a model.

``snapshot_download`` writes a deterministic fake model instead of downloading one (no hub is
reachable from the tests): ``model.safetensors`` of pseudo-random bytes seeded from
``repo_id@revision`` (not a real safetensors file), a small ``config.json``, and ``token_seen``.

Test hooks:
    RPDEPLOY_STANDIN_MODEL_MB   size of model.safetensors in MiB (default 1, may be fractional)
    HF_TOKEN                    counts as a token, like the real library's environment variable

The token itself is never written, printed or kept: ``token_seen`` holds only "yes" or "no",
so a test can prove a build had the token without the token being in any layer.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

__version__ = "0.0.0+rpdeploy.standin"

__all__ = ["snapshot_download"]

_CHUNK = 4 * 1024 * 1024
_MIB = 1024 * 1024


def _model_size() -> int:
    value = os.environ.get("RPDEPLOY_STANDIN_MODEL_MB", "1")
    try:
        size = int(float(value) * _MIB)
    except ValueError:
        raise ValueError(f"RPDEPLOY_STANDIN_MODEL_MB must be a number of MiB, got {value!r}") from None
    if size < 0:
        raise ValueError(f"RPDEPLOY_STANDIN_MODEL_MB must not be negative, got {value!r}")
    return size


def _token_seen(token: str | bool | None) -> bool:
    # As in huggingface_hub: False means "send no token", None/True mean "use the configured one".
    if isinstance(token, str):
        return bool(token)
    if token is False:
        return False
    return bool(os.environ.get("HF_TOKEN"))


def _default_dir(repo_id: str, revision: str) -> Path:
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub"
    )
    return Path(cache) / f"models--{repo_id.replace('/', '--')}" / "snapshots" / revision


def _write_random(path: Path, seed: str, size: int) -> None:
    rng = random.Random(seed)  # a str seed is hashed with SHA-512: the same bytes on every run and machine
    tmp = path.with_name(path.name + ".incomplete")
    with tmp.open("wb") as out:
        left = size
        while left > 0:
            n = min(_CHUNK, left)
            out.write(rng.randbytes(n))
            left -= n
    tmp.replace(path)


def snapshot_download(
    repo_id: str,
    revision: str | None = None,
    local_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
    **kwargs: Any,
) -> str:
    """Write the fake snapshot of ``repo_id`` at ``revision`` and return its folder."""
    if not repo_id or not isinstance(repo_id, str):
        raise ValueError(f"repo_id must be a non-empty string, got {repo_id!r}")
    rev = revision or "main"
    target = Path(local_dir) if local_dir is not None else _default_dir(repo_id, rev)
    target.mkdir(parents=True, exist_ok=True)
    _write_random(target / "model.safetensors", f"{repo_id}@{rev}", _model_size())
    config = {
        "_name_or_path": repo_id,
        "_revision": rev,
        "architectures": ["StandinForCausalLM"],
        "model_type": "rpdeploy-standin",
    }
    (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (target / "token_seen").write_text("yes" if _token_seen(token) else "no")
    return str(target)
