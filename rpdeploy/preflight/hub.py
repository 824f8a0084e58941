"""Is a model gated on the Hugging Face Hub, so that its workers need a token?

Asked of the Hub first: ``GET {HF_ENDPOINT}/api/models/{repo}`` answers a model's metadata
without a token, gated models included, and its ``gated`` field is ``false``, ``"auto"`` or
``"manual"`` (huggingface/huggingface_hub ``src/huggingface_hub/hf_api.py``, ``ModelInfo``:
"gated (`Literal["auto", "manual", False]`, *optional*): Is the repo gated. If so, whether
there is manual or automatic approval."). When the Hub cannot be reached (no network,
``HF_HUB_OFFLINE=1``, ``offline``), rpdeploy's built-in table answers
(``rpdeploy.preflight.models_table.GATED``); a model in neither is "not known to be gated".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    import httpx

    from rpdeploy.config import Config

HUB_TIMEOUT = 3.0


@dataclass(frozen=True)
class Gating:
    """Whether a model is gated (None: unknown), and who said so."""

    gated: bool | None
    source: str  # "Hugging Face Hub", "built-in table", or "" when unknown
    detail: str = ""  # "manual approval", "automatic approval", why the Hub did not answer

    def describe(self) -> str:
        how = f", {self.detail}" if self.detail else ""
        return f"gated on the Hugging Face Hub ({self.source}{how})"


def _offline(environ: Mapping[str, str]) -> bool:
    return environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def model_gating(
    name: str,
    *,
    offline: bool = False,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Gating:
    """The Hub's word on ``name`` when it answers, else the built-in table's."""
    from rpdeploy.preflight.models_table import gated_in_table

    environ = os.environ if environ is None else environ
    if name.startswith("/"):  # a folder inside the image: no Hub involved
        return Gating(False, "")
    why = ""
    if not (offline or _offline(environ)):
        import httpx

        endpoint = (environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
        try:
            with httpx.Client(transport=transport, timeout=HUB_TIMEOUT, follow_redirects=True) as client:
                response = client.get(f"{endpoint}/api/models/{quote(name, safe='/')}")
            data = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            data, why = None, "the Hub could not be reached"
        else:
            why = f"the Hub answered HTTP {response.status_code}"
        if isinstance(data, dict) and "gated" in data:
            value = data["gated"]
            if value in (False, None, "false"):
                return Gating(False, "Hugging Face Hub")
            detail = {"manual": "manual approval", "auto": "automatic approval"}.get(str(value), str(value))
            return Gating(True, "Hugging Face Hub", detail)
    if gated_in_table(name):
        return Gating(True, "built-in table", why)
    return Gating(None, "", why)


def token_problem(
    config: Config,
    *,
    offline: bool = False,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> str | None:
    """What is wrong when a gated model has no ``model.hf_token``: the message, or None."""
    if config.model.hf_token is not None or config.model.is_path:
        return None
    gating = model_gating(config.model.name, offline=offline, environ=environ, transport=transport)
    if not gating.gated:
        return None
    return (
        f"model.hf_token: {config.model.name} is {gating.describe()}, and deploy.yaml names no token: workers "
        "cannot download it (HTTP 401). Accept the model's terms on its Hub page, then set model.hf_token: "
        "HF_TOKEN (the env var holding a token with access) and export HF_TOKEN=..."
    )
