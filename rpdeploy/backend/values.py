"""The values rpdeploy hands the backend: endpoint id, URL and API key; the Spring properties lines."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpdeploy.secrets import Secret

if TYPE_CHECKING:
    from rpdeploy.config import Config


_ENDPOINT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


# --- values -------------------------------------------------------------------------------------


def check_endpoint_id(value: str) -> str:
    """A RunPod endpoint id (letters, digits, - and _), else ValueError."""
    value = value.strip()
    if not _ENDPOINT_ID.match(value):
        raise ValueError(f"{value!r} is not a RunPod endpoint id (letters and digits, like abc123xyz456)")
    return value


def endpoint_url(config: Config, endpoint_id: str) -> str:
    """What the backend calls: the endpoint's OpenAI base URL (``.../openai/v1``), whatever the method.

    Every method answers RunPod's OpenAI route (worker-vllm, and our handlers the way worker-vllm
    does), so one backend configuration serves all three and switching methods leaves it alone.
    """
    return f"{config.runpod.resolved_endpoint_url()}/{check_endpoint_id(endpoint_id)}/openai/v1"


@dataclass(frozen=True)
class BackendValues:
    """The three settings the backend gets. ``repr`` shows where the key came from, never the key."""

    endpoint_id: str
    endpoint_url: str
    api_key: Secret

    @classmethod
    def for_endpoint(cls, config: Config, endpoint_id: str, api_key: Secret) -> BackendValues:
        return cls(check_endpoint_id(endpoint_id), endpoint_url(config, endpoint_id), api_key)


def backend_key(config: Config, environ: Mapping[str, str] | None = None) -> Secret:
    """The RunPod key the backend gets: ``backend.api_key``, else the deploy key (``runpod.api_key``)."""
    if config.backend is not None and config.backend.api_key is not None:
        return config.backend.api_key.resolve(base_dir=config.base_dir, environ=environ, field="backend.api_key")
    return config.runpod.api_key.resolve(base_dir=config.base_dir, environ=environ, field="runpod.api_key")


def properties(config: Config, endpoint_id: str) -> str:
    """The ``application.properties`` lines: the URL as a value, the key as a reference to the env var."""
    from rpdeploy.config import BackendEnvNames

    names = config.backend.env_names if config.backend is not None else BackendEnvNames()
    return f"runpod.endpoint.url={endpoint_url(config, endpoint_id)}\nrunpod.api.key=${{{names.api_key}}}\n"
