"""The engine (upstream: vllm/v1/engine/async_llm.py, ``AsyncLLM``; ``AsyncLLMEngine`` is an alias).

Await-ness as upstream: ``generate`` is an async generator (iterate it, never await it),
``abort`` and ``check_health`` are coroutines, ``get_tokenizer`` and ``shutdown`` are plain methods,
``errored``, ``dead_error`` and ``is_running`` are properties, ``model_config`` and ``renderer`` are
attributes.

Failure modes as upstream ``generate``: a dead engine raises ``EngineDeadError`` (for this and every
later request; ``errored`` is then true and ``check_health`` raises it too); a client error
(``VLLMClientError``, e.g. a prompt longer than the context) is re-raised as it is; anything else
is wrapped, ``raise EngineGenerateError() from exc``, with an empty message; a cancelled request is
aborted. A prompt that did not come from the renderer (no ``"type"`` key) is accepted with the
warning upstream logs for its deprecated raw-prompt path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import logging
import os
import uuid
from collections.abc import AsyncGenerator, Iterable
from typing import Any

from vllm.config import ModelConfig
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.engine.protocol import EngineClient
from vllm.exceptions import VLLMClientError, VLLMValidationError
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.renderers import BaseRenderer
from vllm.sampling_params import RequestOutputKind, SamplingParams
from vllm.tokenizers import TokenizerLike
from vllm.tokenizers._standin import StandinTokenizer
from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

logger = logging.getLogger("vllm.v1.engine.async_llm")

ANSWER = "Hello from the vLLM stand-in. You said:"
_DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")


class AsyncLLM(EngineClient):
    def __init__(self, engine_args: AsyncEngineArgs) -> None:
        # Upstream takes a VllmConfig built by engine_args.create_engine_config().
        self.model_config = ModelConfig(
            model=engine_args.model,
            revision=engine_args.revision,
            served_model_name=engine_args.served_model_name,
            max_model_len=engine_args.max_model_len,  # type: ignore[arg-type]
            generation_config=engine_args.generation_config,
            override_generation_config=dict(engine_args.override_generation_config or {}),
        )
        self.renderer = BaseRenderer(self.model_config, StandinTokenizer.for_model(self.model_config))
        self._dead = False
        # Upstream appends a random suffix to each request id (InputProcessor.assign_request_id)
        # and abort() maps the caller's id to the running requests: an id may be used again.
        self._running: dict[str, set[str]] = {}
        self._aborted: set[str] = set()
        self._warned_raw = False

    @classmethod
    def from_engine_args(
        cls,
        engine_args: AsyncEngineArgs,
        start_engine_loop: bool = True,
        usage_context: Any = None,
        stat_loggers: Any = None,
    ) -> AsyncLLM:
        _check_engine_args(engine_args)
        record = os.environ.get("VLLM_STANDIN_RECORD")
        if record:
            with open(record, "w", encoding="utf-8") as handle:
                json.dump(dataclasses.asdict(engine_args), handle, default=_jsonable, sort_keys=True)
        return cls(engine_args)

    # --- state ----------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return not self._dead

    @property
    def errored(self) -> bool:
        return self._dead or not self.is_running

    @property
    def dead_error(self) -> BaseException:
        return EngineDeadError()

    async def check_health(self) -> None:
        if self.errored:
            raise self.dead_error

    def get_tokenizer(self) -> TokenizerLike:
        return self.renderer.get_tokenizer()  # type: ignore[no-any-return]

    async def abort(self, request_id: str | Iterable[str], internal: bool = False) -> None:
        for rid in [request_id] if isinstance(request_id, str) else request_id:
            self._aborted.update({rid} if internal else self._running.get(rid, set()))

    def shutdown(self, timeout: float | None = None) -> None:
        self._dead = True

    # --- generation -----------------------------------------------------------------------

    async def generate(
        self,
        prompt: Any,
        sampling_params: SamplingParams,
        request_id: str,
        *,
        prompt_text: str | None = None,
        lora_request: Any = None,
        tokenization_kwargs: dict[str, Any] | None = None,
        trace_headers: Any = None,
        priority: int = 0,
        data_parallel_rank: int | None = None,
        reasoning_ended: bool | None = None,
        reasoning_parser_kwargs: dict[str, Any] | None = None,
    ) -> AsyncGenerator[RequestOutput, None]:
        internal_id = f"{request_id}-{uuid.uuid4().hex[:8]}"
        self._running.setdefault(request_id, set()).add(internal_id)
        try:
            if self.errored:
                raise EngineDeadError()
            if not isinstance(sampling_params, SamplingParams):
                raise TypeError(f"params must be SamplingParams, but got {type(sampling_params).__name__}")
            text, ids, rendered = self._engine_input(prompt)
            params = self._admit(request_id, text, ids, rendered, sampling_params)
            async for output in self._run(request_id, internal_id, text, ids, params):
                yield output
        except (asyncio.CancelledError, GeneratorExit):
            await self.abort(internal_id, internal=True)
            raise
        except (EngineDeadError, VLLMClientError):
            raise
        except Exception as exc:
            await self.abort(internal_id, internal=True)
            raise EngineGenerateError() from exc
        finally:
            self._aborted.discard(internal_id)
            self._running[request_id].discard(internal_id)
            if not self._running[request_id]:
                del self._running[request_id]

    def _engine_input(self, prompt: Any) -> tuple[str, list[int], bool]:
        tokenizer: Any = self.renderer.get_tokenizer()
        if isinstance(prompt, dict) and "type" in prompt:
            ids = list(prompt["prompt_token_ids"])
            return prompt.get("prompt") or tokenizer.decode(ids), ids, True
        if not self._warned_raw:
            self._warned_raw = True
            logger.warning(
                "Passing raw prompts to InputProcessor is deprecated (vLLM 0.27.1); pass the outputs of "
                "Renderer.render_cmpl() or Renderer.render_chat() (stand-in)"
            )
        if isinstance(prompt, str):
            return prompt, tokenizer.encode(prompt, add_special_tokens=True), False
        if isinstance(prompt, dict) and "prompt_token_ids" in prompt:
            ids = list(prompt["prompt_token_ids"])
            return prompt.get("prompt") or tokenizer.decode(ids), ids, False
        if isinstance(prompt, dict) and isinstance(prompt.get("prompt"), str):
            return prompt["prompt"], tokenizer.encode(prompt["prompt"], add_special_tokens=True), False
        raise TypeError(f"unsupported prompt {type(prompt).__name__}")

    def _admit(
        self, request_id: str, text: str, ids: list[int], rendered: bool, sampling: SamplingParams
    ) -> SamplingParams:
        # upstream: InputProcessor._validate_prompt_len and process_inputs (max_tokens=None: up to the context)
        limit = self.model_config.max_model_len
        if not ids:
            raise VLLMValidationError("The decoder prompt cannot be empty")
        if len(ids) > limit:
            raise VLLMValidationError(
                f"The decoder prompt (length {len(ids)}) is longer than the maximum model length of {limit}.",
                parameter="input_tokens",
                value=len(ids),
            )
        params = dataclasses.replace(sampling)
        if params.max_tokens is None:
            params.max_tokens = limit - len(ids)
        record = os.environ.get("VLLM_STANDIN_REQUESTS")
        if record:
            line = {
                "request_id": request_id,
                "rendered": rendered,
                "prompt": text,
                "prompt_token_ids": ids,
                "sampling": dataclasses.asdict(params),
            }
            with open(record, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(line, default=_jsonable, sort_keys=True) + "\n")
        return params

    async def _run(
        self, request_id: str, internal_id: str, text: str, ids: list[int], params: SamplingParams
    ) -> AsyncGenerator[RequestOutput, None]:
        tokenizer: Any = self.renderer.get_tokenizer()
        spoken = [w for w in tokenizer.strip_markup(text).split() if w not in ("system", "user", "assistant")]
        words = ANSWER.split() + spoken
        limit = params.max_tokens or 16
        delay = float(os.environ.get("VLLM_STANDIN_DELAY", "0") or 0)
        count = min(len(words), limit)
        sent = 0
        for step in range(1, count + 1):
            if internal_id in self._aborted:
                return
            if "__standin_die__" in text:
                self._dead = True  # as if the engine core process had crashed (a CUDA error, say)
                raise EngineDeadError()
            if "__standin_fail__" in text:
                raise RuntimeError("stand-in: the model failed while generating (__standin_fail__)")
            last = step == count
            finish = ("length" if len(words) > limit else "stop") if last else None
            if params.output_kind is RequestOutputKind.FINAL_ONLY and not last:
                continue
            start = sent if params.output_kind is RequestOutputKind.DELTA else 0
            outputs = [
                CompletionOutput(
                    index=index,
                    text=" ".join(words[start:step]) if start == 0 else " " + " ".join(words[start:step]),
                    token_ids=list(range(start, step)),
                    cumulative_logprob=None,
                    logprobs=None,
                    finish_reason=finish,
                )
                for index in range(params.n)
            ]
            sent = step
            yield RequestOutput(request_id, text, ids, None, outputs, finished=last)
            await asyncio.sleep(delay)


def _check_engine_args(args: AsyncEngineArgs) -> None:
    # A few of the checks upstream runs in create_engine_config (pydantic there, ValueError here).
    if not args.model:
        raise ValueError("model must be set")
    if not 0 < args.gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {args.gpu_memory_utilization}")
    if args.max_model_len is not None and args.max_model_len < 1:
        raise ValueError("max_model_len must be positive")
    if args.dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {args.dtype!r}")
    if args.tensor_parallel_size < 1:
        raise ValueError("tensor_parallel_size must be at least 1")


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)
