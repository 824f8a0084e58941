"""The rendered workers answer jobs for real under the runpod SDK (stand-in vLLM, no GPU)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CliRunnerFn
from tests.workers import LocalWorker, local_worker

pytestmark = pytest.mark.slow


def _runsync(worker: LocalWorker, job_input: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{worker.url}/runsync", json={"input": job_input}, timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def method2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalWorker, Path]]:
    folder = _init(tmp_path_factory.mktemp("m2"), 2)
    record = folder / "engine-args.json"
    env = {"VLLM_STANDIN_RECORD": str(record), "MAX_MODEL_LEN": "4096", "MAX_CONCURRENCY": "3"}
    with local_worker(folder / "worker", env=env) as worker:
        yield worker, record


@pytest.fixture(scope="module")
def method3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalWorker]:
    folder = _init(tmp_path_factory.mktemp("m3"), 3)
    with local_worker(folder / "worker") as worker:
        yield worker


def _init(folder: Path, method: int) -> Path:
    from typer.testing import CliRunner

    from rpdeploy.cli import app

    result = CliRunner().invoke(app, ["init", "--method", str(method), "--yes", "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def test_method2_engine_is_built_from_env(method2: tuple[LocalWorker, Path]) -> None:
    _, record = method2
    args = json.loads(record.read_text())
    assert args["model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert args["max_model_len"] == 4096  # the endpoint's env wins over the rendered default
    assert args["gpu_memory_utilization"] == 0.9
    assert args["tensor_parallel_size"] == 1


def test_method2_prompt(method2: tuple[LocalWorker, Path]) -> None:
    body = _runsync(method2[0], {"prompt": "Tell me about GPUs", "sampling_params": {"max_tokens": 64}})
    assert body["status"] == "COMPLETED"
    [answer] = body["output"]
    assert answer["text"].endswith("You said: Tell me about GPUs")
    assert answer["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 4, "completion_tokens": 11, "total_tokens": 15}
    assert answer["model"] == "Qwen/Qwen2.5-7B-Instruct"


def test_method2_messages_go_through_the_chat_template(method2: tuple[LocalWorker, Path]) -> None:
    body = _runsync(method2[0], {"messages": [{"role": "user", "content": "hi there"}]})
    [answer] = body["output"]
    assert answer["text"] == "Hello from the vLLM stand-in. You said: hi there"


def test_method2_sampling_params_are_passed_through(method2: tuple[LocalWorker, Path]) -> None:
    body = _runsync(method2[0], {"prompt": "one two three", "sampling_params": {"max_tokens": 3, "temperature": 0}})
    [answer] = body["output"]
    assert answer["text"] == "Hello from the"
    assert answer["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 3


def test_method2_streams_pieces(method2: tuple[LocalWorker, Path]) -> None:
    body = _runsync(method2[0], {"prompt": "x", "stream": True, "sampling_params": {"max_tokens": 4}})
    pieces = body["output"]
    assert "".join(p["text"] for p in pieces) == "Hello from the vLLM"
    assert [p["finish_reason"] for p in pieces] == [None, None, None, None, "length"]
    assert pieces[-1]["usage"]["completion_tokens"] == 4


@pytest.mark.parametrize(
    ("job_input", "message"),
    [
        ({"prompt": "x", "sampling_params": {"max_tokens": 2, "temprature": 1}}, "invalid sampling_params: Unexpected"),
        ({"prompt": "x", "sampling_params": {"max_tokens": 0}}, "max_tokens must be at least 1"),
        ({"prompt": "x", "sampling_params": "hot"}, "'sampling_params' must be an object"),
        ({"nothing": True}, "input needs 'prompt'"),
        ({"prompt": "x", "messages": []}, "either 'prompt' or 'messages'"),
        ({"messages": [{"content": "no role"}]}, "messages[0] must be an object"),
        ({"prompt": "__standin_fail__"}, "generation failed"),
    ],
)
def test_method2_errors_are_returned_and_the_worker_lives_on(
    method2: tuple[LocalWorker, Path], job_input: dict[str, Any], message: str
) -> None:
    worker = method2[0]
    body = _runsync(worker, job_input)
    # The local test server aggregates generator output as-is; RunPod itself turns an
    # item with "error" into a FAILED job. Either way the error text reaches the caller.
    [item] = body["output"]
    assert message in item["error"]
    assert worker.process.poll() is None
    assert _runsync(worker, {"prompt": "still alive?"})["output"][0]["finish_reason"] == "stop"


def test_method2_run_then_status(method2: tuple[LocalWorker, Path]) -> None:
    worker = method2[0]
    job = httpx.post(f"{worker.url}/run", json={"input": {"prompt": "later"}}, timeout=10).json()
    assert job["status"] == "IN_PROGRESS"
    status = httpx.post(f"{worker.url}/status/{job['id']}", timeout=30).json()
    assert status["status"] == "COMPLETED"
    assert status["output"][0]["text"].endswith("You said: later")


def test_method3_chat_completion(method3: LocalWorker) -> None:
    body = _runsync(
        method3,
        {
            "method": "POST",
            "path": "/v1/chat/completions",
            "body": {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 20},
        },
    )
    assert body["status"] == "COMPLETED"
    output = body["output"]
    assert output["status_code"] == 200
    completion = output["body"]
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "Hello from the vLLM stand-in. You said: ping"
    assert completion["usage"]["completion_tokens"] == 8


def test_method3_completion_models_and_health(method3: LocalWorker) -> None:
    completion = _runsync(
        method3, {"method": "POST", "path": "/v1/completions", "body": {"prompt": "a b", "max_tokens": 2}}
    )
    assert completion["output"]["body"]["choices"][0]["text"] == "Hello from"
    models = _runsync(method3, {"path": "/v1/models"})["output"]["body"]
    assert [m["id"] for m in models["data"]] == ["Qwen/Qwen2.5-7B-Instruct"]
    health = _runsync(method3, {"method": "GET", "path": "/health"})["output"]
    assert health["status_code"] == 200 and health["body"]["engine_loaded"] is True


def test_method3_stream_is_collected_as_events(method3: LocalWorker) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 3, "stream": True}
    output = _runsync(method3, {"method": "POST", "path": "/v1/chat/completions", "body": body})["output"]
    events = output["body"]
    assert output["headers"]["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == "Hello from the"
    assert events[-2]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"messages": [], "max_tokens": 5}, 400, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, 400, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "temprature": 2}, 400, "temprature"),
        ({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}, 404, "not served here"),
    ],
)
def test_method3_http_errors_come_back_as_status_codes(
    method3: LocalWorker, body: dict[str, Any], status: int, needle: str
) -> None:
    output = _runsync(method3, {"method": "POST", "path": "/v1/chat/completions", "body": body})["output"]
    assert output["status_code"] == status
    assert needle in output["body"]["error"]["message"]


def test_method3_malformed_job_fails_the_job(method3: LocalWorker) -> None:
    response = _runsync(method3, {"method": "BREW", "path": "/v1/models"})
    assert response["status"] == "FAILED"
    assert "method must be one of" in response["error"]
    assert method3.process.poll() is None


def test_the_cli_helper_is_used(cli: CliRunnerFn) -> None:
    # Keep the shared fixture honest: this module's workers were written by `rpdeploy init`.
    assert "worker" in cli("init", "--help").stdout
