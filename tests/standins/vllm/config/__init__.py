"""Configuration classes (upstream: vllm/config/__init__.py re-exports them from their modules)."""

from vllm.config.model import ModelConfig

__all__ = ["ModelConfig"]
