"""Prompt and engine-input schemas (upstream: vllm/inputs/__init__.py)."""

from vllm.inputs.engine import TokensInput

__all__ = ["TokensInput"]
