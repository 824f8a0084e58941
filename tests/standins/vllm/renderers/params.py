"""How to render and tokenize a prompt (upstream: vllm/renderers/params.py).

``TokenizeParams`` carries the context-length limits: upstream checks them when the object is made
(``max_output_tokens`` over ``max_total_tokens``), before tokenizing (text longer than
``max_input_tokens * tokenizer.max_chars_per_token`` characters) and after (more tokens than
``max_input_tokens``), each time with a ``VLLMValidationError`` naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from vllm.exceptions import VLLMValidationError


@dataclass(frozen=True)
class ChatParams:
    chat_template: str | None = None
    chat_template_content_format: str = "auto"
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    media_io_kwargs: dict[str, dict[str, Any]] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None
    return_assistant_tokens_mask: bool = False
    tool_choice: Any | None = None
    response_format: Any | None = None


@dataclass(frozen=True)
class TokenizeParams:
    max_total_tokens: int | None
    max_output_tokens: int = 0
    pad_prompt_tokens: int | None = None
    truncate_prompt_tokens: int | None = None
    truncation_side: Literal["left", "right"] | None = None
    do_lower_case: bool = False
    add_special_tokens: bool = True
    return_token_offsets: bool = False
    needs_detokenization: bool = False
    max_total_tokens_param: str = "max_total_tokens"
    max_output_tokens_param: str = "max_output_tokens"
    truncate_prompt_tokens_param: str = "truncate_prompt_tokens"

    @property
    def max_input_tokens(self) -> int | None:
        if self.max_total_tokens is None:
            return None
        return self.max_total_tokens - self.max_output_tokens

    def __post_init__(self) -> None:
        if self.truncation_side not in (None, "left", "right"):
            raise VLLMValidationError(
                "`truncation_side` must be either 'left' or 'right'.",
                parameter="truncation_side",
                value=self.truncation_side,
            )
        total, output = self.max_total_tokens, self.max_output_tokens
        if output is not None and total is not None and output > total:
            raise VLLMValidationError(
                f"{self.max_output_tokens_param}={output} cannot be greater than "
                f"{self.max_total_tokens_param}={total}. Please request fewer output tokens.",
                parameter=self.max_output_tokens_param,
                value=output,
            )

    def _check_text(self, max_chars_per_token: int, text: str) -> str:
        limit = self.max_input_tokens
        if limit is not None and self.truncate_prompt_tokens is None and len(text) > limit * max_chars_per_token:
            raise VLLMValidationError(
                f"This model's maximum context length is {self.max_total_tokens} tokens, and your prompt has "
                f"{len(text)} characters, more than {limit * max_chars_per_token} ({limit} input tokens).",
                parameter="input_text",
                value=len(text),
            )
        return text.lower() if self.do_lower_case else text

    def _check_tokens(self, ids: list[int]) -> list[int]:
        keep = self.truncate_prompt_tokens
        if keep is not None and keep < 0:
            keep = self.max_input_tokens
        if keep is not None and keep < len(ids):
            ids = ids[-keep:] if self.truncation_side == "left" else ids[:keep]
        limit = self.max_input_tokens
        if limit is not None and len(ids) > limit:
            raise VLLMValidationError(
                f"This model's maximum context length is {self.max_total_tokens} tokens. However, you requested "
                f"{self.max_output_tokens} output tokens and your prompt contains {len(ids)} input tokens, for a "
                f"total of {len(ids) + self.max_output_tokens} tokens.",
                parameter="input_tokens",
                value=len(ids),
            )
        return ids
