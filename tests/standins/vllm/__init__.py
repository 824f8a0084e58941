"""A stand-in for the part of vLLM 0.27.1 that rpdeploy's worker templates use. No GPU, no torch.

It is answerable to the real thing: tests/contracts/vllm-0.27.1.json is read from the pinned
wheel by scripts/contracts/vllm_surface.py, and tests/test_vllm_contract.py checks that this
package has exactly that surface (module layout, sync vs async, parameters, fields, exception
hierarchy) and raises the real exception types for the real reasons. Each module names the
upstream file it models (vllm 0.27.1, ``vllm-0.27.1-cp38-abi3-manylinux_2_28_x86_64.whl``).

What it models besides the surface: ``SamplingParams`` validation (``VLLMValidationError`` for a
bad value, ``TypeError`` for an unknown field), the engine's renderer (chat template, special
tokens, context-length checks), ``ModelConfig.get_diff_sampling_param`` reading the model's
``generation_config.json`` from a local folder or the Hugging Face cache, ``generate`` as an async
generator of cumulative ``RequestOutput`` objects that wraps unexpected failures in
``EngineGenerateError`` and raises ``EngineDeadError`` once the engine is dead. The answer is
deterministic: a fixed sentence followed by the words of the prompt, one "token" per word, cut at
``max_tokens``.

Test hooks (environment variables):
    VLLM_STANDIN_RECORD     a file the engine arguments are written to (JSON) at load time
    VLLM_STANDIN_REQUESTS   a file each generate() call appends one JSON line to: the request id,
                            whether the prompt came from the renderer, its token ids and the
                            sampling parameters the engine received
    VLLM_STANDIN_DELAY      seconds to sleep per generated token (default 0)
A prompt containing ``__standin_fail__`` makes generation fail inside the engine (so generate()
raises ``EngineGenerateError`` caused by a ``RuntimeError``); one with ``__standin_die__`` kills
the engine (``EngineDeadError`` now and for every later request, ``errored`` becomes true).
"""

from __future__ import annotations

import typing

__version__ = "0.0.0+rpdeploy.standin"

#: The vLLM release this stand-in models: the tests check it against rpdeploy/versions.py.
MODELS_VLLM_VERSION = "0.27.1"

# Public names resolve lazily, as in vllm/__init__.py (MODULE_ATTRS + __getattr__).
MODULE_ATTRS = {
    "AsyncEngineArgs": ".engine.arg_utils:AsyncEngineArgs",
    "EngineArgs": ".engine.arg_utils:EngineArgs",
    "AsyncLLMEngine": ".engine.async_llm_engine:AsyncLLMEngine",
    "SamplingParams": ".sampling_params:SamplingParams",
    "CompletionOutput": ".outputs:CompletionOutput",
    "RequestOutput": ".outputs:RequestOutput",
}

if typing.TYPE_CHECKING:
    from vllm.engine.arg_utils import AsyncEngineArgs, EngineArgs
    from vllm.engine.async_llm_engine import AsyncLLMEngine
    from vllm.outputs import CompletionOutput, RequestOutput
    from vllm.sampling_params import SamplingParams
else:

    def __getattr__(name: str) -> typing.Any:
        from importlib import import_module

        if name in MODULE_ATTRS:
            module_name, attr_name = MODULE_ATTRS[name].split(":")
            module = import_module(module_name, __package__)
            return getattr(module, attr_name)
        raise AttributeError(f"module {__package__} has no attribute {name}")


__all__ = [
    "AsyncEngineArgs",
    "AsyncLLMEngine",
    "CompletionOutput",
    "EngineArgs",
    "RequestOutput",
    "SamplingParams",
    "__version__",
]
