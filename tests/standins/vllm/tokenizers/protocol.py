"""What vLLM expects of a tokenizer (upstream: vllm/tokenizers/protocol.py, ``TokenizerLike``).

``AsyncLLM.get_tokenizer()`` returns one (synchronously). The members the contract records are
declared here with upstream's parameters; tokenizers/_standin.py implements them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class TokenizerLike(Protocol):
    @property
    def bos_token_id(self) -> int:
        raise NotImplementedError

    @property
    def eos_token_id(self) -> int:
        raise NotImplementedError

    @property
    def max_chars_per_token(self) -> int:
        raise NotImplementedError

    def encode(
        self,
        text: str,
        truncation: bool | None = None,
        max_length: int | None = None,
        add_special_tokens: bool = True,
    ) -> list[int]:
        raise NotImplementedError

    def apply_chat_template(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> str | list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int] | int, skip_special_tokens: bool = False) -> str:
        raise NotImplementedError
