"""vLLM's exception tree (upstream: vllm/exceptions.py).

None of these is a ``ValueError``: code that catches ``(TypeError, ValueError)`` around vLLM
misses every validation error. Client errors (4xx) and server errors (5xx) share ``VLLMError``.
"""

from __future__ import annotations

from typing import Any


class VLLMError(Exception):
    """Every vLLM-specific error."""


class VLLMClientError(VLLMError):
    """The request is at fault (vLLM's server answers 4xx)."""


class VLLMServerError(VLLMError):
    """The server is at fault (vLLM's server answers 5xx)."""


class VLLMValidationError(VLLMClientError):
    """A request value was refused; ``parameter`` and ``value`` name it when known."""

    def __init__(self, message: str, *, parameter: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value

    def __str__(self) -> str:
        # Upstream appends "(parameter=..., value=...)" to the message when they are set.
        text = super().__str__()
        details = [f"{k}={v}" for k, v in (("parameter", self.parameter), ("value", self.value)) if v is not None]
        return f"{text} ({', '.join(details)})" if details else text


class VLLMNotFoundError(VLLMClientError):
    """Something the request names does not exist (404)."""


class LoRAAdapterNotFoundError(VLLMNotFoundError):
    def __init__(self, lora_name: str, lora_path: str) -> None:
        self.message = f"LoRA adapter {lora_name} not found at {lora_path}"

    def __str__(self) -> str:
        return self.message


class VLLMUnprocessableEntityError(VLLMClientError):
    """The request is well-formed but cannot be processed (422)."""

    def __init__(self, message: str, *, parameter: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value

    def __str__(self) -> str:
        text = super().__str__()
        details = [f"{k}={v}" for k, v in (("parameter", self.parameter), ("value", self.value)) if v is not None]
        return f"{text} ({', '.join(details)})" if details else text
