"""Turning requests into engine inputs (upstream: vllm/renderers/base.py ``BaseRenderer``, vllm/renderers/hf.py).

``AsyncLLM.renderer`` is how ``vllm serve`` prepares every prompt, and its output is the input
``generate()`` takes without the deprecated raw-prompt path. ``render_chat_async`` applies the
chat template (``chat_template_kwargs`` go to ``apply_chat_template``: ``add_generation_prompt``
defaults to False and ``tokenize`` to True there, so callers pass both), then tokenizes the text
with ``tok_params`` (default: ``add_special_tokens=False``, the template already holds BOS);
``render_cmpl_async`` tokenizes plain prompts (default: ``add_special_tokens=True``). Both check the
context length and return ``TokensInput`` dicts carrying the prompt text and its token ids.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from vllm.config.model import ModelConfig
from vllm.inputs.engine import TokensInput
from vllm.renderers.params import ChatParams, TokenizeParams

_T = TypeVar("_T")


class BaseRenderer(Generic[_T]):
    def __init__(self, config: ModelConfig, tokenizer: _T | None) -> None:
        self._model_config = config
        self.tokenizer = tokenizer

    def get_tokenizer(self) -> _T:
        if self.tokenizer is None:
            raise ValueError("Tokenizer not available when `skip_tokenizer_init=True`")
        return self.tokenizer

    def _default_params(self, add_special_tokens: bool) -> TokenizeParams:
        return TokenizeParams(max_total_tokens=self._model_config.max_model_len, add_special_tokens=add_special_tokens)

    def _tokenize(self, text: str, params: TokenizeParams, extras: dict[str, Any] | None) -> TokensInput:
        tokenizer: Any = self.get_tokenizer()
        text = params._check_text(tokenizer.max_chars_per_token, text)
        ids = tokenizer(text, add_special_tokens=params.add_special_tokens)["input_ids"]
        return self._engine_input(params._check_tokens(ids), text, extras)

    def _engine_input(self, ids: list[int], text: str | None, extras: dict[str, Any] | None) -> TokensInput:
        engine_input = TokensInput(type="token", prompt_token_ids=list(ids), arrival_time=time.time())
        if text is not None:
            engine_input["prompt"] = text
        engine_input.update(extras or {})  # type: ignore[typeddict-item]
        return engine_input

    async def render_cmpl_async(
        self,
        prompts: Sequence[Any],
        tok_params: TokenizeParams | None = None,
        *,
        prompt_extras: dict[str, Any] | None = None,
        skip_mm_cache: bool = False,
    ):  # -> list[TokensInput]; unannotated upstream, so not part of the contract
        if len(prompts) == 0:
            raise ValueError("You must pass at least one prompt")
        params = tok_params or self._default_params(add_special_tokens=True)
        out = []
        for prompt in prompts:
            if isinstance(prompt, bytes):
                raise NotImplementedError("the stand-in has no prompt embeddings")
            if "prompt_token_ids" in prompt:
                out.append(
                    self._engine_input(params._check_tokens(list(prompt["prompt_token_ids"])), None, prompt_extras)
                )
                continue
            if not isinstance(prompt.get("prompt"), str):
                raise TypeError(
                    "Expected prompt['prompt'] to be a string before tokenization; use 'prompt_token_ids' for token IDs"
                )
            out.append(self._tokenize(prompt["prompt"], params, prompt_extras))
        return out

    async def render_chat_async(
        self,
        conversations: Sequence[list[Any]],
        chat_params: ChatParams,
        tok_params: TokenizeParams | None = None,
        *,
        prompt_extras: dict[str, Any] | None = None,
        skip_mm_cache: bool = False,
    ):  # -> (conversations, list[TokensInput]); unannotated upstream

        if chat_params.chat_template is not None:
            raise NotImplementedError("the stand-in applies only its own (ChatML) chat template")
        params = tok_params or self._default_params(add_special_tokens=False)
        tokenizer: Any = self.get_tokenizer()
        kwargs = dict(chat_params.chat_template_kwargs)
        tokenize = kwargs.pop("tokenize", True)  # upstream: safe_apply_chat_template(tokenize=True)
        conversations_out, inputs = [], []
        for messages in conversations:
            conversation = [_conversation_message(m) for m in messages]
            if tokenize:  # token ids straight from the template: no text, no special tokens added
                ids = tokenizer.apply_chat_template(conversation, tokenize=True, **kwargs)
                inputs.append(self._engine_input(params._check_tokens(ids), None, prompt_extras))
            else:
                rendered = tokenizer.apply_chat_template(conversation, tokenize=False, **kwargs)
                inputs.append(self._tokenize(rendered, params, prompt_extras))
            conversations_out.append(conversation)
        return conversations_out, inputs


def _conversation_message(message: Any) -> dict[str, Any]:
    """An OpenAI chat message as the template sees it; text parts are joined (upstream: chat_utils.py)."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise ValueError(f"a chat message needs a 'role' string, got {message!r:.80}")
    content = message.get("content")
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if len(texts) != len(content) or not all(isinstance(t, str) for t in texts):
            raise ValueError("the stand-in understands only text content parts")
        content = "\n".join(texts)
    elif content is None:
        content = ""
    elif not isinstance(content, str):
        raise ValueError(f"message content must be a string or a list of parts, got {type(content).__name__}")
    return {"role": message["role"], "content": content}
