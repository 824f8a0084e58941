"""The stand-in model: what a job's worker answers, in the shape of the endpoint's worker.

No GPU and no weights here, so the "model" is a deterministic text: a fixed sentence plus a
few words picked by a hash of the prompt, cut to ``max_tokens`` words. A token is a word.
What matters for the code under test is the *shape* of each worker's answers, which follows
the three deployment methods:

* method 1, RunPod's ``worker-vllm`` image: proxies vLLM's OpenAI server. Native inputs
  (``prompt`` / ``messages``), the platform's OpenAI passthrough (``openai_route`` +
  ``openai_input``) and the generic proxy (``route`` + ``body``) all come back as a list
  holding one OpenAI object (the handler is a generator with ``return_aggregate_stream``);
  streaming yields SSE text chunks. A refused request makes the worker yield
  ``{"error": {"message": "vLLM returned HTTP <status>: <body>", "type": "worker_error",
  "code": None}}``, which the runpod SDK turns into a FAILED job whose ``error`` is ``str()``
  of that inner dict (worker-vllm v2.25.2 ``src/handler.py``; runpod-python 1.12.0
  ``runpod/serverless/modules/rp_job.py`` ``handle_job``).
* method 2, our ``handler.py``: an async generator yielding ``{"text", "finish_reason",
  "model", "usage"}`` items (deltas when streaming). Invalid input fails the job.
* method 3, our FastAPI app behind a handler: the input describes an HTTP request
  (``method``, ``path``, ``body``) and the output is a list holding the app's response
  (``status_code``, ``headers``, ``body``).
* methods 2 and 3 answer the OpenAI passthrough exactly as worker-vllm does (the rendered
  workers build vLLM's objects themselves), so here all three share one implementation of it.
  tests/test_openai_route.py holds this stand-in to the rendered workers, run for real: the
  same jobs give answers of the same shape, field for field.

The OpenAI objects carry the fields vLLM 0.27.1's server writes (model_dump() of
vllm/entrypoints/openai/{chat_completion,completion,engine}/protocol.py; stream chunks with
exclude_unset, as chat_completion/serving.py and completion/serving.py set them).

Every answer says which release it came from (rpdeploy/runpod/release.py), from the env the worker
started with: ``system_fingerprint`` on whole answers and on a stream's last chunk (vLLM
0.27.1 stamps it there: chat_completion/serving.py, completion/serving.py). Method 1 writes it
when ``VLLM_EXTRA_ARGS`` holds ``--fingerprint-mode custom --fingerprint-value X`` (worker-vllm
v2.25.2 src/args_builder.py hands those to ``vllm serve``); without them real vLLM writes its
own ``vllm-<version>-<hash8>``, the stand-in null. Methods 2 and 3 write ``RPDEPLOY_RELEASE``
there, in a method-2 job's last item (``"release"``) and in the method-3 app's
``x-rpdeploy-release`` header.

Everything here is pure: same input, same output (only ids and ``created`` vary).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

VLLM_IMAGE_PREFIX = "runpod/worker-v1-vllm"
# worker-vllm's documented default when MODEL_NAME is unset.
VLLM_DEFAULT_MODEL = "facebook/opt-125m"
OWN_IMAGE_DEFAULT_MODEL = "emulator/stand-in-model"
# vLLM's /v1/completions default (protocol.py `max_tokens: int | None = 16`); SamplingParams
# has the same default, which is what a custom handler gets when the request sets none.
DEFAULT_COMPLETION_MAX_TOKENS = 16
DEFAULT_MAX_MODEL_LEN = 8192

_OPENING = ("The", "emulator's", "stand-in", "model", "read", "your", "prompt", "and", "says")
_VOCABULARY = (
    "amber", "basalt", "cedar", "delta", "ember", "fjord", "garnet", "harbor",
    "indigo", "juniper", "kestrel", "lagoon", "meadow", "nimbus", "onyx", "prairie",
    "quartz", "river", "saffron", "tundra", "umber", "violet", "willow", "xenon",
    "yarrow", "zephyr", "granite", "lantern", "orchid", "pebble", "sierra", "thistle",
)  # fmt: skip
_HASHED_WORDS = 5

WORKER_ERROR_TYPE = "worker_error"


class WorkerKind(str, Enum):
    """Which worker an endpoint runs, decided from its template's image."""

    WORKER_VLLM = "worker-vllm"  # method 1
    OWN_IMAGE = "own-image"  # methods 2 and 3, told apart per job by the input's shape


def worker_kind(image_name: str) -> WorkerKind:
    image = image_name.strip()
    for registry in ("docker.io/", "registry-1.docker.io/", "index.docker.io/"):
        if image.startswith(registry):
            image = image[len(registry) :]
            break
    return WorkerKind.WORKER_VLLM if image.startswith(VLLM_IMAGE_PREFIX) else WorkerKind.OWN_IMAGE


def served_model_name(kind: WorkerKind, env: Mapping[str, str]) -> str:
    """What ``/v1/models`` lists: the override if set, else ``MODEL_NAME``."""
    for key in ("OPENAI_SERVED_MODEL_NAME_OVERRIDE", "MODEL_NAME"):
        value = env.get(key, "").strip()
        if value:
            return value
    return VLLM_DEFAULT_MODEL if kind is WorkerKind.WORKER_VLLM else OWN_IMAGE_DEFAULT_MODEL


@dataclass(frozen=True)
class Generation:
    """One deterministic completion of a prompt."""

    words: tuple[str, ...]
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def completion_tokens(self) -> int:
        return len(self.words)

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def deltas(self) -> list[str]:
        """The text as streamed pieces: one word each, joined they give ``text`` back."""
        return [word if index == 0 else " " + word for index, word in enumerate(self.words)]


def full_answer(prompt: str) -> tuple[str, ...]:
    """The untruncated answer to ``prompt``: the same words every time for the same prompt."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    picked = tuple(_VOCABULARY[digest[i] % len(_VOCABULARY)] for i in range(_HASHED_WORDS))
    return (*_OPENING, *picked)


def generate(prompt: str, max_tokens: int | None) -> Generation:
    words = full_answer(prompt)
    finish = "stop"
    if max_tokens is not None and max_tokens < len(words):
        words = words[:max_tokens]
        finish = "length"
    return Generation(words=words, finish_reason=finish, prompt_tokens=count_tokens(prompt))


def count_tokens(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class HandlerResult:
    """What a worker did with one job.

    ``output`` is the job's ``output`` (None when the job failed), ``chunks`` what
    ``/stream`` hands out in order, ``error`` the FAILED job's error text, and
    ``http_status`` the status the upstream server answered (method 1's OpenAI routes relay
    it; the others ignore it).
    """

    output: Any = None
    chunks: tuple[Any, ...] = ()
    error: str | None = None
    http_status: int = 200
    # True when the chunks are SSE text (an OpenAI stream) that /openai routes relay as is.
    sse: bool = False
    # For a failed OpenAI request: the error body of the HTTP answer the worker relayed.
    http_body: Any = None


class InvalidRequest(Exception):
    """A request the stand-in server rejects; carries the HTTP status and error body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(json.dumps(body))
        self.status = status
        self.body = body


def worker_error_output(message: str) -> dict[str, Any]:
    """worker-vllm's item for a failure inside the worker (``_error`` in its src/handler.py)."""
    return {"error": {"message": message, "type": WORKER_ERROR_TYPE, "code": None}}


def failed_job(item: dict[str, Any], status: int = 500, body: Any = None) -> HandlerResult:
    """The job a worker error item makes with runpod 1.12.0: FAILED, ``error`` = ``str()`` of the inner dict.

    ``status`` and ``body`` keep the HTTP answer the worker was relaying (for /openai routes).
    """
    return HandlerResult(error=str(item["error"]), http_status=status, http_body=body)


def refused(exc: InvalidRequest) -> HandlerResult:
    """worker-vllm's answer to an HTTP error from vLLM (its src/handler.py, ``resp.status >= 400``)."""
    text = json.dumps(exc.body, separators=(",", ":"))
    return failed_job(worker_error_output(f"vLLM returned HTTP {exc.status}: {text}"), exc.status, exc.body)


RELEASE_ENV = "RPDEPLOY_RELEASE"
RELEASE_HEADER = "x-rpdeploy-release"


def fingerprint(kind: WorkerKind, env: Mapping[str, str]) -> str | None:
    """What the worker writes in ``system_fingerprint`` (see the module docstring)."""
    if kind is WorkerKind.OWN_IMAGE:
        return env.get(RELEASE_ENV) or None
    try:
        words = shlex.split(env.get("VLLM_EXTRA_ARGS", ""))
    except ValueError:
        return None
    options: dict[str, str] = {}
    for index, word in enumerate(words):  # argparse: the last occurrence of an option wins
        name, equals, value = word.partition("=")
        if name in ("--fingerprint-mode", "--fingerprint-value"):
            options[name] = value if equals else (words[index + 1] if index + 1 < len(words) else "")
    return options.get("--fingerprint-value") if options.get("--fingerprint-mode") == "custom" else None


def run_job(kind: WorkerKind, model: str, job_input: Mapping[str, Any], env: Mapping[str, str]) -> HandlerResult:
    """Run one job's input through the stand-in worker of ``kind``."""
    if kind is WorkerKind.WORKER_VLLM:
        return _run_worker_vllm(model, job_input, env, fingerprint(kind, env))
    release = fingerprint(kind, env)
    if job_input.get("openai_input") or job_input.get("openai_route"):
        # Methods 2 and 3 read the passthrough as worker-vllm does (_normalize_job_input).
        return _run_worker_vllm(model, job_input, env, release)
    if "path" in job_input or "method" in job_input:
        return _run_fastapi(model, job_input, env, release)
    return _run_custom_handler(model, job_input, release)


# --- method 1: worker-vllm ------------------------------------------------------------------


def _run_worker_vllm(
    model: str, job_input: Mapping[str, Any], env: Mapping[str, str], release: str | None
) -> HandlerResult:
    if job_input.get("openai_input"):
        route = job_input.get("openai_route") or "/v1/chat/completions"
        body = job_input.get("openai_input")
        method = "POST"
    elif job_input.get("openai_route"):
        route, body, method = job_input.get("openai_route"), None, "GET"
    elif job_input.get("route"):
        route = job_input.get("route")
        body = job_input.get("body")
        method = str(job_input.get("method") or ("POST" if body else "GET")).upper()
    elif job_input.get("messages") is not None or job_input.get("prompt") is not None:
        route = "/v1/chat/completions" if "messages" in job_input else "/v1/completions"
        body = {key: value for key, value in job_input.items() if key != "sampling_params"}
        params = job_input.get("sampling_params")
        if isinstance(params, Mapping):
            body.update(params)
        body.setdefault("model", model)
        method = "POST"
    else:
        message = "Job input must contain one of: openai_input (+openai_route), route (+body), or prompt/messages."
        return failed_job(worker_error_output(message))
    if not isinstance(route, str) or (body is not None and not isinstance(body, Mapping)):
        return failed_job(worker_error_output("route must be a string and body an object"))
    try:
        status, answer = vllm_server(method, route, body or {}, model, env, release)
    except InvalidRequest as exc:
        return refused(exc)
    if isinstance(answer, list):  # an SSE stream: the worker yields each event's text
        return HandlerResult(output=list(answer), chunks=tuple(answer), http_status=status, sse=True)
    return HandlerResult(output=[answer], chunks=(answer,), http_status=status)


def vllm_server(
    method: str, route: str, body: Mapping[str, Any], model: str, env: Mapping[str, str], release: str | None = None
) -> tuple[int, Any]:
    """The stand-in for vLLM's OpenAI server: (status, JSON body or list of SSE events)."""
    path = route.split("?", 1)[0].rstrip("/") or "/"
    routes = {
        "/v1/models": "GET",
        "/health": "GET",
        "/v1/chat/completions": "POST",
        "/v1/completions": "POST",
    }
    if path not in routes:
        raise InvalidRequest(404, {"detail": "Not Found"})
    if routes[path] != method.upper():
        raise InvalidRequest(405, {"detail": "Method Not Allowed"})
    if path == "/v1/models":
        return 200, models_list(model, env)
    if path == "/health":
        return 200, {}
    check_model(body, model)
    if path == "/v1/chat/completions":
        return 200, chat_completion(body, model, release)
    return 200, text_completion(body, model, release)


def models_list(model: str, env: Mapping[str, str]) -> dict[str, Any]:
    """``GET /v1/models``: vLLM's ModelList with one ModelCard (models/serving.py)."""
    try:
        max_len = int(env.get("MAX_MODEL_LEN", DEFAULT_MAX_MODEL_LEN))
    except ValueError:
        max_len = DEFAULT_MAX_MODEL_LEN
    created = int(time.time())
    permission = {
        "id": f"modelperm-{uuid.uuid4().hex}",
        "object": "model_permission",
        "created": created,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }
    return {
        "object": "list",
        "data": [
            {
                "id": model,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": env.get("MODEL_NAME") or model,
                "parent": None,
                "max_model_len": max_len,
                "permission": [permission],
            }
        ],
    }


def usage_info(generation: Generation) -> dict[str, Any]:
    """vLLM's UsageInfo, fields in its order."""
    return {
        "prompt_tokens": generation.prompt_tokens,
        "total_tokens": generation.prompt_tokens + generation.completion_tokens,
        "completion_tokens": generation.completion_tokens,
        "prompt_tokens_details": None,
    }


def _openai_error(status: int, kind: str, message: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(status, {"error": {"message": message, "type": kind, "param": param, "code": status}})


def check_model(body: Mapping[str, Any], model: str) -> None:
    requested = body.get("model")
    if requested is not None and requested != model:
        raise _openai_error(404, "NotFoundError", f"The model `{requested}` does not exist.", "model")


def _max_tokens(body: Mapping[str, Any], default: int | None) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _openai_error(400, "BadRequestError", f"{key} must be at least 1, got {value!r}.", key)
        return value
    return default


def messages_text(messages: Any) -> str:
    """The prompt a list of chat messages amounts to (text parts of every message)."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    parts: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ValueError("each message must be an object with a string 'role'")
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                str(part.get("text", ""))
                for part in content
                if isinstance(part, Mapping) and part.get("type") == "text"
            )
        elif content is not None:
            raise ValueError("message content must be a string or a list of parts")
    return "\n".join(parts)


def _completion_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def chat_completion(body: Mapping[str, Any], model: str, release: str | None = None) -> Any:
    """``/v1/chat/completions``: a ``chat.completion`` object, or SSE events when streaming."""
    try:
        prompt = messages_text(body.get("messages"))
    except ValueError as exc:
        raise _openai_error(400, "BadRequestError", str(exc), "messages") from exc
    generation = generate(prompt, _max_tokens(body, None))
    completion_id = _completion_id("chatcmpl")
    created = int(time.time())
    if body.get("stream") is True:
        return _chat_stream(generation, completion_id, created, model, _include_usage(body), release)
    message = {
        "role": "assistant",
        "content": generation.text,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
        "reasoning": None,
    }
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": generation.finish_reason,
        "stop_reason": None,
        "token_ids": None,
        "routed_experts": None,
    }
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": release,
        "usage": usage_info(generation),
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "prompt_text": None,
        "kv_transfer_params": None,
        "ec_transfer_params": None,
        "metrics": None,
    }


def text_completion(body: Mapping[str, Any], model: str, release: str | None = None) -> Any:
    """``/v1/completions``: a ``text_completion`` object, or SSE events when streaming."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _openai_error(400, "BadRequestError", "prompt must be a string", "prompt")
    generation = generate(prompt, _max_tokens(body, DEFAULT_COMPLETION_MAX_TOKENS))
    completion_id = _completion_id("cmpl")
    created = int(time.time())
    if body.get("stream") is True:
        return _completion_stream(generation, completion_id, created, model, _include_usage(body), release)
    choice = {
        "index": 0,
        "text": generation.text,
        "logprobs": None,
        "finish_reason": generation.finish_reason,
        "stop_reason": None,
        "token_ids": None,
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "routed_experts": None,
    }
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": release,
        "usage": usage_info(generation),
        "kv_transfer_params": None,
        "ec_transfer_params": None,
        "metrics": None,
    }


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def sse_event(data: Any) -> str:
    """One server-sent event as vLLM writes it."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n"


SSE_DONE = sse_event("[DONE]")


def _usage_chunk(
    obj: str, completion_id: str, created: int, model: str, generation: Generation, release: str | None
) -> str:
    """The last chunk with stream_options.include_usage (dumped with exclude_none)."""
    usage = {key: value for key, value in usage_info(generation).items() if value is not None}
    data: dict[str, Any] = {
        "id": completion_id, "object": obj, "created": created, "model": model, "choices": [], "usage": usage
    }  # fmt: skip
    if release is not None:
        data["system_fingerprint"] = release
    return sse_event(data)


def _chat_stream(
    generation: Generation,
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
    release: str | None = None,
) -> list[str]:
    """chat_completion/serving.py: a role chunk, a chunk per step, the last one with finish_reason
    (and the fingerprint, unless a usage chunk follows: that one is the last then)."""

    def chunk(choice: dict[str, Any], **extra: Any) -> str:
        data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        return sse_event({**data, "choices": [choice], **extra})

    opening = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
    events = [chunk(opening, prompt_token_ids=None, prompt_text=None)]
    pieces = generation.deltas() or [""]
    for index, piece in enumerate(pieces):
        choice: dict[str, Any] = {"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}
        if index == len(pieces) - 1:
            choice["finish_reason"] = generation.finish_reason
            choice["stop_reason"] = None
        choice["token_ids"] = None
        last = index == len(pieces) - 1 and not include_usage and release is not None
        events.append(chunk(choice, system_fingerprint=release) if last else chunk(choice))
    if include_usage:
        events.append(_usage_chunk("chat.completion.chunk", completion_id, created, model, generation, release))
    events.append(SSE_DONE)
    return events


def _completion_stream(
    generation: Generation,
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
    release: str | None = None,
) -> list[str]:
    """completion/serving.py: a chunk per step, the last one with finish_reason."""
    events = []
    pieces = generation.deltas() or [""]
    for index, piece in enumerate(pieces):
        choice = {
            "index": 0,
            "text": piece,
            "logprobs": None,
            "finish_reason": generation.finish_reason if index == len(pieces) - 1 else None,
            "stop_reason": None,
            "prompt_token_ids": None,
            "token_ids": None,
        }
        data: dict[str, Any] = {"id": completion_id, "object": "text_completion", "created": created, "model": model}
        data["choices"] = [choice]
        if index == len(pieces) - 1 and not include_usage and release is not None:
            data["system_fingerprint"] = release
        events.append(sse_event(data))
    if include_usage:
        events.append(_usage_chunk("text_completion", completion_id, created, model, generation, release))
    events.append(SSE_DONE)
    return events


# --- method 2: our handler.py ---------------------------------------------------------------


def _run_custom_handler(model: str, job_input: Mapping[str, Any], release: str | None = None) -> HandlerResult:
    try:
        prompt = _custom_prompt(job_input)
        params = job_input.get("sampling_params", {})
        if not isinstance(params, Mapping):
            raise ValueError("sampling_params must be an object")
        max_tokens = params.get("max_tokens", DEFAULT_COMPLETION_MAX_TOKENS)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"sampling_params.max_tokens must be a positive integer, got {max_tokens!r}")
        stream = job_input.get("stream", False)
        if not isinstance(stream, bool):
            raise ValueError("stream must be true or false")
    except ValueError as exc:
        return HandlerResult(error=str(exc))
    generation = generate(prompt, max_tokens)
    final = {
        "text": "" if stream else generation.text,
        "finish_reason": generation.finish_reason,
        "model": model,
        "usage": generation.usage(),
        "release": release,
    }
    items: list[dict[str, Any]] = []
    if stream:
        items = [{"text": piece, "finish_reason": None} for piece in generation.deltas()]
    items.append(final)
    return HandlerResult(output=items, chunks=tuple(items))


def _custom_prompt(job_input: Mapping[str, Any]) -> str:
    if "prompt" in job_input:
        prompt = job_input["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt must be a non-empty string")
        return prompt
    if "messages" in job_input:
        return messages_text(job_input["messages"])
    raise ValueError("input must contain 'prompt' (a string) or 'messages' (a list of chat messages)")


# --- method 3: our FastAPI app behind a handler ---------------------------------------------


def _run_fastapi(
    model: str, job_input: Mapping[str, Any], env: Mapping[str, str], release: str | None = None
) -> HandlerResult:
    method = job_input.get("method", "GET")
    path = job_input.get("path")
    body = job_input.get("body")
    if not isinstance(method, str) or not isinstance(path, str) or not path.startswith("/"):
        return HandlerResult(error="input must contain 'method' (a string) and 'path' (starting with '/')")
    if body is not None and not isinstance(body, Mapping):
        return HandlerResult(error="'body' must be a JSON object")
    status, answer = _fastapi_app(method.upper(), path, body or {}, model, env, release)
    headers = {"content-type": "application/json"}
    if release is not None:
        headers[RELEASE_HEADER] = release
    response = {"status_code": status, "headers": headers, "body": answer}
    # The handler is a generator yielding the response once: RunPod collects it in a list.
    return HandlerResult(output=[response], chunks=(response,), http_status=status)


def _fastapi_app(
    method: str, path: str, body: Mapping[str, Any], model: str, env: Mapping[str, str], release: str | None
) -> tuple[int, Any]:
    if path.split("?", 1)[0].rstrip("/") == "/health":
        if method != "GET":
            return 405, {"detail": "Method Not Allowed"}
        return 200, {"status": "ok"}
    # The app answers inside one handler call, so a streaming request gets the whole answer.
    non_stream = {key: value for key, value in body.items() if key != "stream"}
    try:
        return vllm_server(method, path, non_stream, model, env, release)
    except InvalidRequest as exc:
        return exc.status, exc.body
