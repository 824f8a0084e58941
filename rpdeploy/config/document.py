"""The whole of deploy.yaml: :class:`Config`, the root model that joins the sections.

Owns: the ``method:`` field (1/2/3 or its name), where the file is (relative paths in it are
relative to its folder) and what is derived from the document as a whole: the deployment's
ownership mark, the name of its Hugging Face token secret, the CUDA versions, its fingerprint.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PrivateAttr, WithJsonSchema

from rpdeploy import versions
from rpdeploy.config.backend import BackendConfig, SmokeTestConfig
from rpdeploy.config.refs import _Model
from rpdeploy.config.sections import EndpointConfig, ImageConfig, ModelConfig, RunpodConfig
from rpdeploy.methods import Method

DEFAULT_CONFIG = Path("deploy.yaml")


def _parse_method(value: Any) -> Any:
    try:
        return Method.parse(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


MethodField = Annotated[
    Method,
    BeforeValidator(_parse_method),
    WithJsonSchema(
        {
            "enum": [m.value for m in Method] + [m.number for m in Method],
            "description": "1/worker-vllm, 2/custom-handler, 3/fastapi",
        }
    ),
]


class Config(_Model):
    """deploy.yaml."""

    version: Literal[1] = Field(default=1, description="Format version of this file.")
    deployment_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="Marks what this deployment makes on RunPod, so an endpoint of the same name made "
        "elsewhere is never taken over (written by `rpdeploy init`; default: endpoint.name).",
    )
    method: MethodField = Field(description="1 worker-vllm, 2 custom-handler, 3 fastapi.")
    model: ModelConfig
    image: ImageConfig | None = Field(default=None, description="Methods 2 and 3: where our image goes.")
    endpoint: EndpointConfig
    runpod: RunpodConfig = Field(default_factory=RunpodConfig)
    backend: BackendConfig | None = Field(default=None, description="Optional: the app to point at the endpoint.")
    smoke_test: SmokeTestConfig = Field(default_factory=SmokeTestConfig)

    _path: Path = PrivateAttr(default=DEFAULT_CONFIG)
    _text_sha256: str = PrivateAttr(default="")

    @property
    def path(self) -> Path:
        return self._path

    @property
    def base_dir(self) -> Path:
        """Folder of deploy.yaml: relative paths in it are relative to this."""
        return self._path.parent

    @property
    def state_dir(self) -> Path:
        return self.base_dir / ".rpdeploy"

    @property
    def hf_token_secret_name(self) -> str:
        """The RunPod secret that holds model.hf_token: given, else one named after this deployment."""
        if self.model.hf_token_secret:
            return self.model.hf_token_secret
        slug = re.sub(r"[^A-Za-z0-9]+", "_", self.deployment_mark).strip("_").lower()[:40]
        return f"rpdeploy_{slug}_hf_token"

    @property
    def deployment_mark(self) -> str:
        """The ownership mark this deployment writes on its template (RPDEPLOY_DEPLOYMENT).

        From deploy.yaml, so every machine (a laptop, CI) and a lost ledger agree on it; a
        file without ``deployment_id`` falls back to the endpoint's name.
        """
        return self.deployment_id or self.endpoint.name

    @property
    def worker_dir(self) -> Path | None:
        if self.image is None:
            return None
        return self.base_dir / self.image.worker_dir

    @property
    def fingerprint(self) -> str:
        """sha256 of the file as written."""
        return self._text_sha256

    def cuda_versions(self) -> list[str]:
        if self.endpoint.allowed_cuda_versions:
            return list(self.endpoint.allowed_cuda_versions)
        if self.method is Method.WORKER_VLLM:
            return list(versions.WORKER_VLLM_CUDA_VERSIONS)
        if self.image is not None and self.image.base_image == versions.VLLM_BASE_IMAGE:
            return list(versions.VLLM_BASE_CUDA_VERSIONS)
        return []
