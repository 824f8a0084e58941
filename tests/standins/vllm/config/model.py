"""The model's configuration (upstream: vllm/config/model.py, ``ModelConfig``).

Only the fields rpdeploy's workers read are modelled, and ``get_diff_sampling_param``: the sampling
defaults a model ships in its ``generation_config.json``, which ``vllm serve`` applies to every
request that does not set them (vllm/entrypoints/openai/chat_completion/serving.py reads them once
at start-up). Upstream reads the file with transformers' ``GenerationConfig.from_pretrained`` (a
local folder, else the Hugging Face cache or the Hub at ``revision``), falls back to the
generation attributes of ``config.json`` (``GenerationConfig.from_model_config``), and keeps the
values that differ from transformers' defaults (``to_diff_dict``; in transformers 5 those
defaults are ``None``). The stand-in reads the same files from a local folder or the cache
(``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``; the layout
``models--ORG--NAME/snapshots/REV/`` with ``refs/REV`` naming a commit, as huggingface_hub writes
it); a model that is in neither has no defaults (no Hub to ask).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The sampling parameters a generation config may set (upstream: get_diff_sampling_param).
_SAMPLING_KEYS = ("repetition_penalty", "temperature", "top_k", "top_p", "min_p", "max_new_tokens")
_DEFAULT_CONTEXT = 32768  # Qwen2.5-7B's max_position_embeddings, when config.json does not say


@dataclass
class ModelConfig:
    model: str = "Qwen/Qwen3-0.6B"
    revision: str | None = None
    served_model_name: str | list[str] | None = None
    max_model_len: int = None  # type: ignore[assignment]  # None until derived, as upstream
    generation_config: str = "auto"
    override_generation_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_model_len is None:
            config = _read_json(_model_file(self.model, self.revision, "config.json"))
            self.max_model_len = int(config.get("max_position_embeddings") or _DEFAULT_CONTEXT)

    def get_diff_sampling_param(self) -> dict[str, Any]:
        """The model's sampling defaults after override_generation_config (max_new_tokens as max_tokens)."""
        source = self.generation_config
        config = {} if source == "vllm" else self._generation_defaults()
        config.update(self.override_generation_config)
        if not any(key in config for key in _SAMPLING_KEYS):
            return {}
        diff = {key: config[key] for key in _SAMPLING_KEYS if config.get(key) is not None}
        if "max_new_tokens" in diff:
            diff["max_tokens"] = diff.pop("max_new_tokens")
        return diff

    def _generation_defaults(self) -> dict[str, Any]:
        folder, revision = (
            (self.model, self.revision)
            if self.generation_config in ("auto", "vllm")
            else (self.generation_config, None)
        )
        found = _model_file(folder, revision, "generation_config.json")
        if found is not None:
            data = _read_json(found)
        else:
            # No generation_config.json: the generation attributes of the model's config.json.
            data = {
                k: v for k, v in _read_json(_model_file(folder, revision, "config.json")).items() if k in _SAMPLING_KEYS
            }
        return {k: v for k, v in data.items() if v is not None}


def _hub_cache() -> Path:
    configured = os.environ.get("HF_HUB_CACHE")
    if configured:
        return Path(configured)
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def _model_file(model: str, revision: str | None, name: str) -> Path | None:
    """``name`` of ``model``: in a local folder, or in the cached snapshot of ``revision`` (default main)."""
    local = Path(model)
    if local.is_dir():
        return local / name if (local / name).is_file() else None
    repo = _hub_cache() / f"models--{model.replace('/', '--')}"
    rev = revision or "main"
    ref = repo / "refs" / rev
    commit = ref.read_text().strip() if ref.is_file() else rev
    path = repo / "snapshots" / commit / name
    return path if path.is_file() else None


def _read_json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}
