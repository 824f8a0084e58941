"""A stand-in for the part of vLLM that rpdeploy's worker templates use. No GPU needed.

It mirrors the API surface and its failure modes, not the model: ``AsyncEngineArgs``
refuses unknown fields, ``SamplingParams`` validates like vLLM (TypeError for an unknown
field, ValueError for a bad value), ``AsyncLLMEngine.generate`` is an async generator of
cumulative ``RequestOutput`` objects, ``get_tokenizer`` is a coroutine and the tokenizer
applies a ChatML chat template. The answer is deterministic: a fixed sentence followed by
the words of the prompt, one "token" per word, cut at ``max_tokens``.

Test hooks (environment variables):
    VLLM_STANDIN_RECORD   a file the engine arguments are written to (JSON) at load time
    VLLM_STANDIN_DELAY    seconds to sleep per generated token (default 0)
A prompt containing ``__standin_fail__`` makes generation raise RuntimeError; one with
``__standin_die__`` also marks the engine as errored (a dead engine).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

__version__ = "0.0.0+rpdeploy.standin"

ANSWER = "Hello from the vLLM stand-in. You said:"


@dataclass(kw_only=True)
class AsyncEngineArgs:
    model: str
    revision: str | None = None
    tokenizer: str | None = None
    served_model_name: str | list[str] | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    max_num_seqs: int | None = None
    tensor_parallel_size: int = 1
    trust_remote_code: bool = False
    enforce_eager: bool = False
    download_dir: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must be set")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError("max_model_len must be positive")
        if self.dtype not in ("auto", "half", "float16", "bfloat16", "float", "float32"):
            raise ValueError(f"unknown dtype {self.dtype!r}")
        if self.tensor_parallel_size < 1:
            raise ValueError("tensor_parallel_size must be at least 1")


_SAMPLING_FIELDS = {
    "n": 1,
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "seed": None,
    "stop": None,
    "max_tokens": 16,
    "min_tokens": 0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "repetition_penalty": 1.0,
    "ignore_eos": False,
    "logprobs": None,
    "skip_special_tokens": True,
}


class SamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(_SAMPLING_FIELDS))
        if unknown:
            raise TypeError(f"Unexpected keyword argument(s): {', '.join(unknown)}")
        values = {**_SAMPLING_FIELDS, **kwargs}
        for name, value in values.items():
            setattr(self, name, value)
        self._verify()

    def _verify(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}.")
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise ValueError(f"temperature must be non-negative, got {self.temperature}.")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if self.stop is not None and not isinstance(self.stop, (str, list)):
            raise ValueError("stop must be a string or a list of strings.")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _SAMPLING_FIELDS)
        return f"SamplingParams({fields})"


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]
    finished: bool = False


class _Tokenizer:
    def encode(self, text: str) -> list[int]:
        return [abs(hash(word)) % 150_000 for word in text.split()]

    def apply_chat_template(
        self, messages: list[dict[str, Any]], tokenize: bool = False, add_generation_prompt: bool = True, **_: Any
    ) -> str | list[int]:
        parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
        if add_generation_prompt:
            parts.append("<|im_start|>assistant\n")
        text = "".join(parts)
        return self.encode(text) if tokenize else text


def _answer_words(prompt: str) -> list[str]:
    # The user's words without chat-template markup: "You said: what is RunPod?".
    words = [w for w in prompt.replace("<|im_start|>", " ").replace("<|im_end|>", " ").split()]
    spoken = [w for w in words if w not in ("user", "assistant", "system")]
    return ANSWER.split() + spoken


@dataclass
class _State:
    errored: bool = False
    aborted: set[str] = field(default_factory=set)


class AsyncLLMEngine:
    def __init__(self, args: AsyncEngineArgs) -> None:
        self.args = args
        self._state = _State()
        self._tokenizer = _Tokenizer()

    @classmethod
    def from_engine_args(cls, engine_args: AsyncEngineArgs, **_: Any) -> AsyncLLMEngine:
        record = os.environ.get("VLLM_STANDIN_RECORD")
        if record:
            with open(record, "w", encoding="utf-8") as handle:
                json.dump(dataclasses.asdict(engine_args), handle)
        return cls(engine_args)

    @property
    def errored(self) -> bool:
        return self._state.errored

    async def get_tokenizer(self) -> _Tokenizer:
        return self._tokenizer

    async def abort(self, request_id: str) -> None:
        self._state.aborted.add(request_id)

    async def check_health(self) -> None:
        if self._state.errored:
            raise RuntimeError("engine is dead")

    async def generate(
        self, prompt: str | dict[str, Any], sampling_params: SamplingParams, request_id: str, **_: Any
    ) -> AsyncIterator[RequestOutput]:
        text = prompt["prompt"] if isinstance(prompt, dict) else prompt
        if not isinstance(sampling_params, SamplingParams):
            raise TypeError("sampling_params must be SamplingParams")
        if "__standin_die__" in text:
            self._state.errored = True
            raise RuntimeError("CUDA error: an illegal memory access was encountered (stand-in)")
        if "__standin_fail__" in text:
            raise RuntimeError("generation failed (stand-in)")
        prompt_ids = self._tokenizer.encode(text)
        if self.args.max_model_len is not None and len(prompt_ids) >= self.args.max_model_len:
            raise ValueError(
                f"The prompt (length {len(prompt_ids)}) is longer than the maximum model length of "
                f"{self.args.max_model_len}."
            )
        words = _answer_words(text)
        limit = sampling_params.max_tokens or 16
        delay = float(os.environ.get("VLLM_STANDIN_DELAY", "0") or 0)
        produced: list[str] = []
        for index, word in enumerate(words[:limit]):
            if request_id in self._state.aborted:
                return
            produced.append(word)
            last = index == min(len(words), limit) - 1
            finish = ("length" if len(words) > limit else "stop") if last else None
            yield RequestOutput(
                request_id=request_id,
                prompt=text,
                prompt_token_ids=prompt_ids,
                outputs=[
                    CompletionOutput(
                        index=0,
                        text=" ".join(produced),
                        token_ids=list(range(len(produced))),
                        finish_reason=finish,
                    )
                ],
                finished=last,
            )
            await asyncio.sleep(delay)


__all__ = ["AsyncEngineArgs", "AsyncLLMEngine", "CompletionOutput", "RequestOutput", "SamplingParams"]
