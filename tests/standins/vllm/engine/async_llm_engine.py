"""``AsyncLLMEngine`` is only another name for the V1 engine (upstream: vllm/engine/async_llm_engine.py)."""

from __future__ import annotations

from vllm.v1.engine.async_llm import AsyncLLM

AsyncLLMEngine = AsyncLLM
