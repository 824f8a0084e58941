"""The engine-client interface (upstream: vllm/engine/protocol.py, ``EngineClient``).

Its class annotations are where ``AsyncLLM.model_config`` and ``AsyncLLM.renderer`` get their types.
"""

from __future__ import annotations

from abc import ABC

from vllm.config import ModelConfig
from vllm.renderers import BaseRenderer


class EngineClient(ABC):  # upstream's abstract methods are not needed here
    model_config: ModelConfig
    renderer: BaseRenderer
