"""The rendered workers answer jobs for real under the runpod SDK (stand-in vLLM, no GPU).

Each worker is what `rpdeploy init` writes, run as `python handler.py --rp_serve_api` with the
stand-in that tests/test_vllm_contract.py holds to vllm 0.27.1. Besides the happy paths: a bad
sampling value is a clean error (vLLM's own message) and the worker keeps serving; a failed
generation says what failed; a dead engine makes the worker exit; the model's
generation_config.json supplies the sampling defaults and the chat template's BOS is not doubled,
as with `vllm serve` (method 1); every prompt reaches the engine through vLLM's renderer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CliRunnerFn
from tests.workers import LocalWorker, cached_model, engine_requests, local_worker

pytestmark = pytest.mark.slow

MODEL = "Qwen/Qwen2.5-7B-Instruct"
MAX_MODEL_LEN = 4096
BOS = "<|begin_of_text|>"


@dataclass(frozen=True)
class Running:
    worker: LocalWorker
    record: Path  # the engine arguments (VLLM_STANDIN_RECORD)
    requests: Path  # what generate() received (VLLM_STANDIN_REQUESTS)

    def last_request(self) -> dict[str, Any]:
        return engine_requests(self.requests)[-1]


def _runsync(worker: LocalWorker, job_input: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{worker.url}/runsync", json={"input": job_input}, timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _init(folder: Path, method: int) -> Path:
    from typer.testing import CliRunner

    from rpdeploy.cli import app

    result = CliRunner().invoke(app, ["init", "--method", str(method), "--yes", "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


@contextmanager
def _running(folder: Path, method: int, env: dict[str, str] | None = None) -> Iterator[Running]:
    project = _init(folder, method)
    record, requests = folder / "engine-args.json", folder / "requests.jsonl"
    full_env = {
        "VLLM_STANDIN_RECORD": str(record),
        "VLLM_STANDIN_REQUESTS": str(requests),
        "MAX_MODEL_LEN": str(MAX_MODEL_LEN),
        "MAX_CONCURRENCY": "3",
        **(env or {}),
    }
    with local_worker(project / "worker", env=full_env) as worker:
        yield Running(worker, record, requests)


@pytest.fixture(scope="module")
def method2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with _running(tmp_path_factory.mktemp("m2"), 2) as running:
        yield running


@pytest.fixture(scope="module")
def method3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with _running(tmp_path_factory.mktemp("m3"), 3) as running:
        yield running


def _chat3(messages: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
    return {"method": "POST", "path": "/v1/chat/completions", "body": {"messages": messages, **body}}


# --- method 2 -----------------------------------------------------------------------------


def test_method2_engine_is_built_from_env(method2: Running) -> None:
    args = json.loads(method2.record.read_text())
    assert args["model"] == MODEL
    assert args["max_model_len"] == MAX_MODEL_LEN  # the endpoint's env wins over the rendered default
    assert args["gpu_memory_utilization"] == 0.9
    assert args["tensor_parallel_size"] == 1
    assert args["generation_config"] == "auto" and args["override_generation_config"] == {}


def test_method2_prompt(method2: Running) -> None:
    body = _runsync(method2.worker, {"prompt": "Tell me about GPUs", "sampling_params": {"max_tokens": 64}})
    assert body["status"] == "COMPLETED"
    [answer] = body["output"]
    assert answer["text"].endswith("You said: Tell me about GPUs")
    assert answer["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 4, "completion_tokens": 11, "total_tokens": 15}
    assert answer["model"] == MODEL
    sent = method2.last_request()
    assert sent["rendered"] is True and sent["prompt"] == "Tell me about GPUs"
    assert sent["sampling"]["max_tokens"] == 64


def test_method2_messages_go_through_the_chat_template(method2: Running) -> None:
    body = _runsync(method2.worker, {"messages": [{"role": "user", "content": "hi there"}]})
    [answer] = body["output"]
    assert answer["text"] == "Hello from the vLLM stand-in. You said: hi there"
    sent = method2.last_request()
    assert sent["rendered"] is True
    assert sent["prompt"] == "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n"
    # No max_tokens in the job: the rest of the context, as `vllm serve` (not vLLM's bare default of 16).
    assert sent["sampling"]["max_tokens"] == MAX_MODEL_LEN - len(sent["prompt_token_ids"])


def test_method2_sampling_params_are_passed_through(method2: Running) -> None:
    job = {"prompt": "one two three", "sampling_params": {"max_tokens": 3, "temperature": 0, "seed": 7}}
    [answer] = _runsync(method2.worker, job)["output"]
    assert answer["text"] == "Hello from the"
    assert answer["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 3
    sampling = method2.last_request()["sampling"]
    assert (sampling["temperature"], sampling["seed"], sampling["max_tokens"]) == (0.0, 7, 3)


def test_method2_streams_pieces(method2: Running) -> None:
    body = _runsync(method2.worker, {"prompt": "x", "stream": True, "sampling_params": {"max_tokens": 4}})
    pieces = body["output"]
    assert "".join(p["text"] for p in pieces) == "Hello from the vLLM"
    assert [p["finish_reason"] for p in pieces] == [None, None, None, None, "length"]
    assert pieces[-1]["usage"]["completion_tokens"] == 4


LONG = " ".join(["word"] * (MAX_MODEL_LEN + 10))


@pytest.mark.parametrize(
    ("job_input", "message"),
    [
        (
            {"prompt": "x", "sampling_params": {"temperature": 5}},
            "invalid sampling_params: temperature must be in [0, 2], got 5. (parameter=temperature, value=5)",
        ),
        (
            {"prompt": "x", "sampling_params": {"max_tokens": 2, "temprature": 1}},
            "invalid sampling_params: Unexpected keyword argument 'temprature'",
        ),
        ({"prompt": "x", "sampling_params": {"max_tokens": 0}}, "max_tokens must be at least 1"),
        ({"prompt": "x", "sampling_params": "hot"}, "'sampling_params' must be an object"),
        ({"nothing": True}, "input needs 'prompt'"),
        ({"prompt": "x", "messages": []}, "either 'prompt' or 'messages'"),
        ({"messages": [{"content": "no role"}]}, "messages[0] must be an object"),
        ({"prompt": LONG}, f"invalid input: This model's maximum context length is {MAX_MODEL_LEN} tokens"),
        (
            {"prompt": "x", "sampling_params": {"max_tokens": MAX_MODEL_LEN + 1}},
            f"max_tokens={MAX_MODEL_LEN + 1} cannot be greater than max_model_len={MAX_MODEL_LEN}",
        ),
        (
            {"prompt": "__standin_fail__"},
            "generation failed: EngineGenerateError (caused by RuntimeError: stand-in: the model failed",
        ),
    ],
)
def test_method2_errors_are_returned_and_the_worker_lives_on(
    method2: Running, job_input: dict[str, Any], message: str
) -> None:
    worker = method2.worker
    body = _runsync(worker, job_input)
    # The local test server aggregates generator output as-is; RunPod itself turns an
    # item with "error" into a FAILED job. Either way the error text reaches the caller.
    [item] = body["output"]
    assert message in item["error"]
    assert worker.process.poll() is None
    assert _runsync(worker, {"prompt": "still alive?"})["output"][0]["finish_reason"] == "stop"


def test_method2_run_then_status(method2: Running) -> None:
    worker = method2.worker
    job = httpx.post(f"{worker.url}/run", json={"input": {"prompt": "later"}}, timeout=10).json()
    assert job["status"] == "IN_PROGRESS"
    status = httpx.post(f"{worker.url}/status/{job['id']}", timeout=30).json()
    assert status["status"] == "COMPLETED"
    assert status["output"][0]["text"].endswith("You said: later")


def test_method2_never_uses_the_deprecated_raw_prompt_path(method2: Running) -> None:
    _runsync(method2.worker, {"prompt": "one more"})
    sent = engine_requests(method2.requests)
    assert sent and all(request["rendered"] for request in sent)
    assert "raw prompts" not in method2.worker.log.read_text()


# --- method 3 -----------------------------------------------------------------------------


def test_method3_chat_completion(method3: Running) -> None:
    body = _runsync(method3.worker, _chat3([{"role": "user", "content": "ping"}], max_tokens=20))
    assert body["status"] == "COMPLETED"
    [output] = body["output"]  # a generator handler: RunPod collects its items in a list
    assert output["status_code"] == 200
    completion = output["body"]
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "Hello from the vLLM stand-in. You said: ping"
    assert completion["usage"]["completion_tokens"] == 8
    sent = method3.last_request()
    assert sent["rendered"] is True and sent["sampling"]["max_tokens"] == 20


def test_method3_completion_models_and_health(method3: Running) -> None:
    completion = _runsync(
        method3.worker, {"method": "POST", "path": "/v1/completions", "body": {"prompt": "a b", "max_tokens": 2}}
    )
    assert completion["output"][0]["body"]["choices"][0]["text"] == "Hello from"
    assert method3.last_request()["rendered"] is True
    models = _runsync(method3.worker, {"path": "/v1/models"})["output"][0]["body"]
    assert [m["id"] for m in models["data"]] == [MODEL]
    [health] = _runsync(method3.worker, {"method": "GET", "path": "/health"})["output"]
    assert health["status_code"] == 200 and health["body"]["engine_loaded"] is True


def test_method3_stream_is_collected_as_events(method3: Running) -> None:
    [output] = _runsync(method3.worker, _chat3([{"role": "user", "content": "x"}], max_tokens=3, stream=True))["output"]
    events = output["body"]
    assert output["headers"]["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == "Hello from the"
    assert events[-2]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("body", "status", "kind", "param", "needle"),
    [
        ({"messages": [], "max_tokens": 5}, 400, "BadRequestError", None, "messages"),
        (
            {"messages": [{"role": "user", "content": "x"}], "temperature": 5},
            400,
            "BadRequestError",
            "temperature",
            "temperature must be in [0, 2], got 5.0",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            400,
            "BadRequestError",
            "max_tokens",
            "max_tokens must be at least 1",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "temprature": 2}, 400, "BadRequestError", None, "temprature"),
        ({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}, 404, "NotFoundError", "model", "gpt-4"),
        (
            {"messages": [{"role": "user", "content": LONG}]},
            400,
            "BadRequestError",
            "input_tokens",
            f"maximum context length is {MAX_MODEL_LEN} tokens",
        ),
        (
            {"messages": [{"role": "user", "content": "__standin_fail__"}]},
            500,
            "InternalServerError",
            None,
            "generation failed: EngineGenerateError (caused by RuntimeError: stand-in: the model failed",
        ),
    ],
)
def test_method3_errors_are_http_statuses_and_the_worker_lives_on(
    method3: Running, body: dict[str, Any], status: int, kind: str, param: str | None, needle: str
) -> None:
    [output] = _runsync(method3.worker, {"method": "POST", "path": "/v1/chat/completions", "body": body})["output"]
    assert output["status_code"] == status
    error = output["body"]["error"]
    assert (error["type"], error["param"], error["code"]) == (kind, param, status)
    assert needle in error["message"]
    assert method3.worker.process.poll() is None
    assert _runsync(method3.worker, _chat3([{"role": "user", "content": "again"}]))["output"][0]["status_code"] == 200


def test_method3_a_failure_while_streaming_is_the_last_event(method3: Running) -> None:
    body = _chat3([{"role": "user", "content": "__standin_fail__"}], stream=True)
    [output] = _runsync(method3.worker, body)["output"]
    assert output["status_code"] == 200  # the status line was sent before generation began
    *_, error, done = output["body"]
    assert done == "[DONE]"
    assert error["error"]["code"] == 500 and "caused by RuntimeError" in error["error"]["message"]


def test_method3_malformed_job_fails_the_job(method3: Running) -> None:
    response = _runsync(method3.worker, {"method": "BREW", "path": "/v1/models"})
    # An item with "error": RunPod fails the job (runpod/serverless/modules/rp_job.py handle_job);
    # the SDK's local test server hands the item back as it is.
    [item] = response["output"]
    assert "method must be one of" in item["error"]
    assert method3.worker.process.poll() is None


# --- both: parity with `vllm serve` -----------------------------------------------------------


@pytest.fixture(scope="module", params=[2, 3], ids=["custom-handler", "fastapi"])
def tuned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Running]]:
    """A worker whose model (in the HF cache) ships sampling defaults and a BOS-adding tokenizer."""
    folder = tmp_path_factory.mktemp(f"tuned{request.param}")
    hub = folder / "hub"
    cached_model(
        hub,
        MODEL,
        {
            "config.json": {"model_type": "standin", "max_position_embeddings": 32768},
            "generation_config.json": {"temperature": 0.6, "top_p": 0.9, "do_sample": True, "eos_token_id": 2},
            "tokenizer_config.json": {"bos_token": BOS, "eos_token": "<|eot_id|>", "add_bos_token": True},
        },
    )
    with _running(folder, request.param, {"HF_HUB_CACHE": str(hub)}) as running:
        yield request.param, running


def _ask(method: int, worker: LocalWorker, sampling: dict[str, Any], *, chat: bool) -> None:
    if method == 2:
        key = {"messages": [{"role": "user", "content": "hello"}]} if chat else {"prompt": "hello"}
        body = _runsync(worker, {**key, "sampling_params": sampling})
        assert "error" not in body["output"][-1], body
    else:
        if chat:
            job = _chat3([{"role": "user", "content": "hello"}], **sampling)
        else:
            job = {"method": "POST", "path": "/v1/completions", "body": {"prompt": "hello", **sampling}}
        assert _runsync(worker, job)["output"][0]["status_code"] == 200


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "prompt"])
def test_the_models_generation_config_sets_the_defaults(tuned: tuple[int, Running], chat: bool) -> None:
    """Acceptance: temperature 0.6 / top_p 0.9 from generation_config.json when the request sets none."""
    method, running = tuned
    _ask(method, running.worker, {}, chat=chat)
    sampling = running.last_request()["sampling"]
    assert (sampling["temperature"], sampling["top_p"]) == (0.6, 0.9)
    assert (sampling["top_k"], sampling["min_p"], sampling["repetition_penalty"]) == (0, 0.0, 1.0)  # vLLM's own
    _ask(method, running.worker, {"temperature": 0.2}, chat=chat)
    sampling = running.last_request()["sampling"]
    assert (sampling["temperature"], sampling["top_p"]) == (0.2, 0.9)  # the request wins, per parameter


def test_special_tokens_are_added_once(tuned: tuple[int, Running]) -> None:
    method, running = tuned
    _ask(method, running.worker, {"max_tokens": 5}, chat=True)
    chat = running.last_request()
    assert chat["prompt"].startswith(BOS)  # the chat template writes BOS itself...
    _ask(method, running.worker, {"max_tokens": 5}, chat=False)
    prompt = running.last_request()
    bos_id = prompt["prompt_token_ids"][0]
    assert prompt["prompt"] == "hello" and prompt["prompt_token_ids"] == [bos_id, prompt["prompt_token_ids"][1]]
    # ...so tokenizing the chat text must not add another one (the plain prompt gets exactly one).
    assert chat["prompt_token_ids"][0] == bos_id and chat["prompt_token_ids"][1] != bos_id


# --- both: a dead engine ------------------------------------------------------------------


@pytest.mark.parametrize("method", [2, 3], ids=["custom-handler", "fastapi"])
def test_a_dead_engine_makes_the_worker_exit(tmp_path: Path, method: int) -> None:
    with _running(tmp_path, method) as running:
        worker = running.worker
        if method == 2:
            [item] = _runsync(worker, {"prompt": "__standin_die__"})["output"]
            message = item["error"]
        else:
            [output] = _runsync(worker, _chat3([{"role": "user", "content": "__standin_die__"}]))["output"]
            assert output["status_code"] == 500
            message = output["body"]["error"]["message"]
        assert "engine died" in message and "EngineDeadError" in message
        deadline = time.monotonic() + 20
        while worker.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.process.returncode == 1, worker.log.read_text()[-2000:]
        assert "exiting in 3 s so RunPod replaces this worker" in worker.log.read_text()


def test_the_cli_helper_is_used(cli: CliRunnerFn) -> None:
    # Keep the shared fixture honest: this module's workers were written by `rpdeploy init`.
    assert "worker" in cli("init", "--help").stdout
