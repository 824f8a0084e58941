"""`rpdeploy smoke-test --url` against rendered method-2 and method-3 workers running for real.

Each worker is what `rpdeploy init` writes, run as `python handler.py --rp_serve_api` by the
runpod SDK with the stand-in vLLM (no GPU). The SDK's local server differs from RunPod
(reference 6.5): no endpoint id in the path, no ``/health`` or ``/cancel``, ``/status`` is a
POST that runs the job. A prompt containing ``__standin_fail__`` makes the stand-in's generation
fail (vLLM's EngineGenerateError, caused by a RuntimeError).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import Result

from tests.conftest import CliRunnerFn
from tests.workers import LocalWorker, local_worker

pytestmark = pytest.mark.slow

PROMPT = "Reply with one short sentence: what is RunPod?"
ANSWER = f"Hello from the vLLM stand-in. You said: {PROMPT}"


def _init(folder: Path, method: int) -> Path:
    from typer.testing import CliRunner

    from rpdeploy.cli import app

    result = CliRunner().invoke(app, ["init", "--method", str(method), "--yes", "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module", params=[2, 3], ids=["custom-handler", "fastapi"])
def worker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, Path, LocalWorker]]:
    method: int = request.param
    folder = _init(tmp_path_factory.mktemp(f"m{method}"), method)
    with local_worker(folder / "worker") as running:
        yield method, folder, running


def _smoke(cli: CliRunnerFn, *args: object, expected_code: int = 0) -> tuple[dict[str, Any], Result]:
    result = cli("smoke-test", "--json", *args, expected_code=expected_code)
    document: dict[str, Any] = json.loads(result.stdout)
    return document, result


def test_the_rendered_worker_passes(
    cli: CliRunnerFn, worker: tuple[int, Path, LocalWorker], monkeypatch: pytest.MonkeyPatch
) -> None:
    method, folder, running = worker
    monkeypatch.chdir(folder)  # the project `init` wrote: its deploy.yaml says the method
    junit = folder / "smoke.xml"
    document, _ = _smoke(cli, "--url", running.url, "--junit", junit, "--stream")
    summary = document["summary"]
    assert summary["passed"] is True
    assert summary["answer"] == ANSWER[:80]
    assert summary["output_tokens"] == 15  # the stand-in's usage: one token per word
    # The local server reports no queue or execution time: the request itself is the execution.
    assert summary["cold_start_ms"] is None and summary["execution_ms"] is None
    assert summary["tokens_per_second"] is not None and summary["tokens_per_second"] > 0
    check, models, chat, streamed = document["result"]["checks"]
    assert check["name"] == ("runsync handler" if method == 2 else "runsync /v1/chat/completions")
    assert check["job_id"].startswith("test-") and check["status"] == "COMPLETED"
    # The OpenAI route, as the jobs RunPod makes of /openai/v1 requests (smoke_test.stream is
    # off in the written deploy.yaml, so the streamed check comes from --stream below).
    assert (models["name"], models["message"]) == ("openai models", "serves Qwen/Qwen2.5-7B-Instruct")
    assert chat["name"] == "openai chat completion" and chat["answer"] == ANSWER[:80]
    assert streamed["name"] == "openai streamed completion" and streamed["answer"] == ANSWER[:80]
    assert all(c["passed"] for c in (models, chat, streamed))
    # One POST /runsync per check: no /health watcher, no polling.
    assert document["result"]["requests"] == 4
    assert document["result"]["method"] == ("custom-handler" if method == 2 else "fastapi")
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("4", "0")
    assert running.process.poll() is None


def test_without_deploy_yaml_the_method_is_given(
    cli: CliRunnerFn, worker: tuple[int, Path, LocalWorker], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    method, _, running = worker
    monkeypatch.chdir(tmp_path)
    missing = cli("smoke-test", "--url", running.url, expected_code=2)
    assert "--method" in missing.stderr
    result = cli("smoke-test", "--url", running.url, "--method", str(method))
    assert result.stdout.splitlines()[0] == (
        f"Smoke test of {running.url} ({'custom-handler' if method == 2 else 'fastapi'}): PASSED"
    )
    assert f"  answer            {ANSWER[:80]!r}" in result.stdout.splitlines()


def test_a_worker_error_fails_the_smoke_test(
    cli: CliRunnerFn, worker: tuple[int, Path, LocalWorker], monkeypatch: pytest.MonkeyPatch
) -> None:
    method, folder, running = worker
    monkeypatch.chdir(folder)
    document, _ = _smoke(cli, "--url", running.url, "--prompt", "please __standin_fail__", expected_code=10)
    [check] = document["result"]["checks"]
    assert check["passed"] is False
    if method == 2:
        # The handler yields {"error": ...}; the local server returns it as COMPLETED output.
        assert check["status"] == "COMPLETED"
        assert check["message"].startswith(
            "job COMPLETED but the worker returned an error: generation failed: EngineGenerateError (caused by "
            "RuntimeError: stand-in: the model failed while generating"
        )
    else:
        # The FastAPI app answers 500 in vLLM's error shape, naming the cause; the job itself completes.
        assert check["message"] == (
            "the app answered HTTP 500: generation failed: EngineGenerateError (caused by RuntimeError: "
            "stand-in: the model failed while generating (__standin_fail__))"
        )
    assert document["error"]["message"] == f"smoke test of {running.url} failed: {check['name']}: {check['message']}"
    assert "the worker's own output" in document["error"]["hint"]
    assert running.process.poll() is None  # the worker survives, and answers the next one
    _smoke(cli, "--url", running.url)


def test_the_local_servers_routes(worker: tuple[int, Path, LocalWorker]) -> None:
    from rpdeploy.runpod.invoke import InvokeClient, detect_local

    method, _, running = worker
    assert detect_local(running.url) is True
    job_input: dict[str, Any] = (
        {"prompt": "later"}
        if method == 2
        else {"method": "POST", "path": "/v1/completions", "body": {"prompt": "later", "max_tokens": 2}}
    )
    # /run stores the job without running it; our /status is a POST, which runs it.
    queued = httpx.post(f"{running.url}/run", json={"input": job_input}, timeout=10).json()
    with InvokeClient(running.url, api_key=None, local=True) as client:
        done = client.status(queued["id"])
        assert done["status"] == "COMPLETED"
        assert client.health() is None and client.cancel(queued["id"]) is None
        assert client.requests == 1  # nothing sent for the routes the local server lacks
    assert httpx.get(f"{running.url}/status/{queued['id']}", timeout=10).status_code == 405


def test_a_runpod_endpoint_url_is_not_taken_for_a_local_worker(runpod_emulator: Any) -> None:
    from rpdeploy.runpod.invoke import detect_local

    assert detect_local(runpod_emulator.invoke_url("abcdefghijklmn")) is False
