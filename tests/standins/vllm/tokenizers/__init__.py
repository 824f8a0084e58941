"""Tokenizers (upstream: vllm/tokenizers/__init__.py re-exports ``TokenizerLike`` from .protocol)."""

from vllm.tokenizers.protocol import TokenizerLike

__all__ = ["TokenizerLike"]
