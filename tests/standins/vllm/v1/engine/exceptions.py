"""The engine's two failure types (upstream: vllm/v1/engine/exceptions.py).

``AsyncLLM.generate`` re-raises client errors as they are and wraps anything unexpected in an
``EngineGenerateError`` whose message is empty: what happened is its ``__cause__``.
"""

from __future__ import annotations

from typing import Any

from vllm.exceptions import VLLMServerError


class EngineGenerateError(VLLMServerError):
    """One generate() call failed; the engine goes on serving (recoverable)."""


class EngineDeadError(VLLMServerError):
    """The engine core died; every later request fails too (unrecoverable)."""

    def __init__(self, *args: Any, suppress_context: bool = False, **kwargs: Any) -> None:
        # Upstream puts a fixed message first and ignores nothing else.
        super().__init__("the engine core died (stand-in); the log above has the cause", *args, **kwargs)
        self.__suppress_context__ = suppress_context
