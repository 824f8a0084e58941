"""What vLLM expects of a tokenizer (upstream: vllm/tokenizers/protocol.py, ``TokenizerLike``)."""

from __future__ import annotations

from typing import Any, Protocol


class TokenizerLike(Protocol):
    bos_token_id: int | None
    eos_token_id: int | None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]: ...

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str: ...

    def apply_chat_template(self, messages: list[dict[str, Any]], **kwargs: Any) -> str | list[int]: ...
