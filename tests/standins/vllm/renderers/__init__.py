"""Prompt rendering (upstream: vllm/renderers/__init__.py re-exports these from .base and .params)."""

from vllm.renderers.base import BaseRenderer
from vllm.renderers.params import ChatParams, TokenizeParams

__all__ = ["BaseRenderer", "ChatParams", "TokenizeParams"]
