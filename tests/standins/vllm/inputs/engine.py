"""What the renderer hands to generate() (upstream: vllm/inputs/engine.py, ``TokensInput``).

A dict with ``"type"`` is a rendered input: ``AsyncLLM.generate`` takes it as is. A raw prompt (a
string, or a dict without ``"type"``) still works upstream but goes through the path vLLM 0.27.1
logs as deprecated ("Passing raw prompts to InputProcessor is deprecated").
"""

from __future__ import annotations

from typing import Literal

from typing_extensions import NotRequired, TypedDict


class _InputOptions(TypedDict):
    arrival_time: NotRequired[float]
    cache_salt: NotRequired[str]


class TokensInput(_InputOptions):
    type: Literal["token"]
    prompt_token_ids: list[int]
    prompt: NotRequired[str]
    prompt_token_offsets: NotRequired[list[tuple[int, int]] | None]
    assistant_tokens_mask: NotRequired[list[int] | None]
