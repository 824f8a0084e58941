"""The stand-in's tokenizer: one token per whitespace-separated word, special tokens kept whole.

It reads what a Hugging Face tokenizer reads from the model folder that matters here:
``tokenizer_config.json``'s ``bos_token``, ``eos_token`` and ``add_bos_token``. Without one it is
Qwen2.5's (no BOS, ``<|im_end|>`` ends a turn). Its chat template is ChatML, preceded by the BOS
text when the tokenizer has one, as Llama- and Gemma-style templates are: tokenizing that text with
``add_special_tokens=True`` then yields two BOS tokens, which is why vLLM's chat path tokenizes
templated text with ``add_special_tokens=False`` (vllm/renderers/base.py,
``default_chat_tok_params``) and its completion path with ``True`` (``default_cmpl_tok_params``).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any

from vllm.config.model import ModelConfig, _model_file, _read_json
from vllm.tokenizers.protocol import TokenizerLike

_CHATML = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
_FIRST_WORD_ID = 1000


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):  # {"content": "<s>", "lstrip": false, ...}
        value = value.get("content")
    return value if isinstance(value, str) and value else None


class StandinTokenizer(TokenizerLike):
    def __init__(self, bos_token: str | None, eos_token: str, add_bos_token: bool) -> None:
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.add_bos_token = add_bos_token and bos_token is not None
        specials = [t for t in (bos_token, *_CHATML, eos_token) if t]
        self._special_ids = {text: index + 1 for index, text in enumerate(dict.fromkeys(specials))}
        self._words: dict[int, str] = {v: k for k, v in self._special_ids.items()}
        self._split = re.compile("(" + "|".join(re.escape(t) for t in self._special_ids) + ")")

    @classmethod
    def for_model(cls, config: ModelConfig) -> StandinTokenizer:
        settings = _read_json(_model_file(config.model, config.revision, "tokenizer_config.json"))
        return cls(
            bos_token=_token_text(settings.get("bos_token")),
            eos_token=_token_text(settings.get("eos_token")) or "<|im_end|>",
            add_bos_token=bool(settings.get("add_bos_token", False)),
        )

    @property
    def bos_token_id(self) -> int:  # None when the tokenizer has no BOS, as in transformers
        return self._special_ids.get(self.bos_token) if self.bos_token else None  # type: ignore[return-value]

    @property
    def eos_token_id(self) -> int:
        return self._special_ids[self.eos_token]

    @property
    def max_chars_per_token(self) -> int:
        return 64  # upstream: the length of the longest token in the vocabulary

    def _word_id(self, word: str) -> int:
        token = _FIRST_WORD_ID + zlib.crc32(word.encode()) % 150_000
        self._words.setdefault(token, word)
        return token

    def encode(
        self,
        text: str,
        truncation: bool | None = None,
        max_length: int | None = None,
        add_special_tokens: bool = True,
    ) -> list[int]:
        ids = [self.bos_token_id] if add_special_tokens and self.add_bos_token else []
        for piece in self._split.split(text):
            if piece in self._special_ids:
                ids.append(self._special_ids[piece])
            else:
                ids.extend(self._word_id(word) for word in piece.split())
        ids = [i for i in ids if i is not None]
        return ids[:max_length] if truncation and max_length is not None else ids

    def __call__(self, text: str, add_special_tokens: bool = True, **_: Any) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text, add_special_tokens=add_special_tokens)}

    def decode(self, ids: Sequence[int] | int, skip_special_tokens: bool = False) -> str:
        words = [self._words.get(i, "") for i in ([ids] if isinstance(ids, int) else ids)]
        if skip_special_tokens:
            words = [w for w in words if w not in self._special_ids]
        return " ".join(w for w in words if w)

    def apply_chat_template(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, **kwargs: Any
    ) -> str | list[int]:
        # The keyword arguments Hugging Face's apply_chat_template takes and its defaults.
        add_generation_prompt = bool(kwargs.get("add_generation_prompt", False))
        continue_final_message = bool(kwargs.get("continue_final_message", False))
        tokenize = bool(kwargs.get("tokenize", True))
        parts = [self.bos_token or ""]
        for index, message in enumerate(messages):
            last = index == len(messages) - 1
            end = "" if (continue_final_message and last) else "<|im_end|>\n"
            parts.append(f"<|im_start|>{message['role']}\n{message['content']}{end}")
        if add_generation_prompt and not continue_final_message:
            parts.append("<|im_start|>assistant\n")
        text = "".join(parts)
        # Hugging Face tokenizes a rendered template without adding special tokens again.
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def strip_markup(self, text: str) -> str:
        """The text without special tokens (the stand-in model answers with the user's words)."""
        return " ".join(p for p in self._split.split(text) if p not in self._special_ids)
