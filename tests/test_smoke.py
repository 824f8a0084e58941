"""`rpdeploy smoke-test` against the emulator over real HTTP (issue 5): verdicts, diagnoses, numbers.

The emulator's fixture holds ``/runsync`` for 2 s (RunPod: ~90 s), cold-starts a worker in
0.2 s and runs a job in 0.05 s, so its timings are exact and the reported numbers can be
pinned. What was sent and what became of each job are read from its request log and state.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from rpdeploy.deploy.ledger import Ledger
from rpdeploy.emulator import Emulator
from rpdeploy.emulator.model import full_answer
from tests.conftest import ROOT, CliRunnerFn

IMAGE = "registry.example/acme/qwen-worker@sha256:" + "cd" * 32
PROMPT = "Reply with one short sentence: what is RunPod?"  # deploy.yaml's default smoke prompt
ANSWER = " ".join(full_answer(PROMPT))  # what the emulator's stand-in model says to it (14 words)
SUMMARY_KEYS = {
    "passed", "cold_start_ms", "execution_ms", "latency_s", "output_tokens", "tokens_per_second", "answer",
    "release", "release_proven_by", "old_answers", "drain_seconds",
}  # fmt: skip


def _invoke(path: str) -> bool:
    """A request to the serverless invoke API (not REST v2's control plane, also under /v2/)."""
    from rpdeploy.emulator.rest import is_rest

    return path.startswith("/v2/") and not is_rest(path)


CHECK_KEYS = {
    "name", "passed", "seconds", "message", "job_id", "status", "delay_ms", "execution_ms", "output_tokens",
    "tokens_per_second", "answer", "release", "worker_id",
}  # fmt: skip


def write_config(folder: Path, method: int, **endpoint: Any) -> None:
    if method == 1:
        document = yaml.safe_load((ROOT / "deploy.yaml").read_text())
    else:
        document = {
            "method": method,
            "model": {"name": "Qwen/Qwen2.5-7B-Instruct", "max_model_len": 8192},
            "image": {"registry": "registry.example", "repository": "acme/qwen-worker"},
            "endpoint": {"name": f"smoke-method-{method}", "gpu": "L4", "workers_min": 0, "workers_max": 2},
        }
    document["endpoint"].update(endpoint)
    (folder / "deploy.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def create(cli: CliRunnerFn, method: int) -> str:
    """Create the endpoint the way a user would; methods 2/3 run an image we name (no build here)."""
    args = ["endpoint", "create", "--json"] + (["--image", IMAGE] if method != 1 else [])
    endpoint_id: str = json.loads(cli(*args).stdout)["endpoint"]["endpoint_id"]
    return endpoint_id


def smoke(cli: CliRunnerFn, *args: object, expected_code: int = 0) -> tuple[dict[str, Any], Result]:
    result = cli("smoke-test", "--json", *args, expected_code=expected_code)
    document: dict[str, Any] = json.loads(result.stdout)
    return document, result


def runsyncs(emulator: Emulator) -> list[Any]:
    return [r for r in emulator.requests if r.path.endswith("/runsync")]


def job(emulator: Emulator, job_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [j for j in emulator.state.snapshot()["jobs"] if j["id"] == job_id]
    assert len(found) == 1, job_id
    return found[0]


def no_secret(emulator: Emulator, *texts: str) -> None:
    for text in texts:
        assert emulator.api_key not in text


@pytest.fixture
def method1(project: Path, runpod_emulator: Emulator, cli: CliRunnerFn) -> str:
    write_config(project, 1)
    return create(cli, 1)


# --- healthy endpoints ------------------------------------------------------------------------


def test_worker_vllm_passes_with_every_check_and_the_stream(
    cli: CliRunnerFn, method1: str, runpod_emulator: Emulator, project: Path
) -> None:
    junit = project / "smoke.xml"
    document, result = smoke(cli, "--stream", "--junit", junit)
    assert set(document) == {"ok", "summary", "result"} and document["ok"] is True
    summary = document["summary"]
    assert set(summary) == SUMMARY_KEYS
    # A fresh endpoint: the job waited for one cold start (0.2 s) and ran 0.05 s.
    assert summary["passed"] is True
    assert summary["cold_start_ms"] == 200 and summary["execution_ms"] == 50
    assert 0.25 <= summary["latency_s"] < 1.5
    assert summary["output_tokens"] == 14 and summary["tokens_per_second"] == 280.0  # 14 tokens in 0.05 s
    assert summary["answer"] == ANSWER[:80]

    run = document["result"]
    assert set(run) == {"target", "method", "checks", "requests", "seconds", "release"}
    assert run["target"] == method1 and run["method"] == "worker-vllm"
    checks = run["checks"]
    assert all(set(c) == CHECK_KEYS for c in checks)
    assert [c["name"] for c in checks] == [
        "runsync chat",
        "openai models",
        "openai chat completion",
        "openai streamed completion",
    ]
    assert all(c["passed"] for c in checks)
    assert checks[0]["status"] == "COMPLETED" and checks[0]["job_id"].startswith("sync-")
    assert checks[1]["message"] == "serves Qwen/Qwen2.5-7B-Instruct"
    assert checks[2]["answer"] == ANSWER[:80] and checks[2]["output_tokens"] == 14
    # The stream: a role chunk, one chunk per word (the last with finish_reason, as vLLM sends
    # it), then [DONE] (not a chunk).
    assert checks[3]["message"] == "15 chunks" and checks[3]["answer"] == ANSWER[:80]

    sent = [(r.method, r.path.removeprefix(f"/v2/{method1}")) for r in runpod_emulator.requests if _invoke(r.path)]
    assert sent == [
        ("POST", "/runsync"),
        ("GET", "/openai/v1/models"),
        ("POST", "/openai/v1/chat/completions"),
        ("POST", "/openai/v1/chat/completions"),
    ]
    [chat_job] = runsyncs(runpod_emulator)
    assert chat_job.body["input"] == {
        "messages": [{"role": "user", "content": PROMPT}],
        "sampling_params": {"max_tokens": 32, "temperature": 0},
    }
    chat, streamed = [r.body for r in runpod_emulator.requests if r.path.endswith("/chat/completions")]
    assert chat["max_tokens"] == 32 and chat["model"] == "Qwen/Qwen2.5-7B-Instruct" and "stream" not in chat
    assert streamed["stream"] is True

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "0", "0")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c["name"] for c in checks]
    assert all(c.get("classname") == "smoke.worker-vllm" and c.find("failure") is None for c in cases)
    assert cases[0].findtext("system-out") == ANSWER[:80]
    no_secret(runpod_emulator, result.stdout, result.stderr, junit.read_text())


def test_the_text_report(cli: CliRunnerFn, method1: str, runpod_emulator: Emulator) -> None:
    result = cli("smoke-test")
    lines = result.stdout.splitlines()
    assert lines[0] == f"Smoke test of {method1} (worker-vllm): PASSED"
    assert [line.split(" (")[0] for line in lines[1:4]] == [
        "  ok   runsync chat",
        "  ok   openai models",
        "  ok   openai chat completion",
    ]
    assert "  queue/cold start  0.20s" in lines and "  execution         0.05s" in lines
    assert "  output tokens     14 (280.0 tokens/s)" in lines
    assert f"  answer            {ANSWER[:80]!r}" in lines
    assert lines[-1].startswith("  3 HTTP request(s) in ")
    assert "runsync chat: ok" in result.stderr  # progress goes to stderr


@pytest.mark.parametrize(
    ("method", "check", "job_input"),
    [
        (
            2,
            "runsync handler",
            {
                "messages": [{"role": "user", "content": PROMPT}],
                "sampling_params": {"max_tokens": 32, "temperature": 0},
            },
        ),
        (
            3,
            "runsync /v1/chat/completions",
            {
                "method": "POST",
                "path": "/v1/chat/completions",
                "body": {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 32, "temperature": 0},
            },
        ),
    ],
)
def test_own_image_methods_pass(
    cli: CliRunnerFn,
    project: Path,
    runpod_emulator: Emulator,
    method: int,
    check: str,
    job_input: dict[str, Any],
) -> None:
    write_config(project, method)
    endpoint_id = create(cli, method)
    assert runpod_emulator.state.snapshot()["templates"][0]["imageName"] == IMAGE
    document, _ = smoke(cli)
    summary = document["summary"]
    assert summary == {
        "passed": True,
        "cold_start_ms": 200,
        "execution_ms": 50,
        "latency_s": summary["latency_s"],
        "output_tokens": 14,
        "tokens_per_second": 280.0,
        "answer": ANSWER[:80],
        # The release `endpoint create` made (in the ledger), named by the answers themselves.
        "release": summary["release"],
        "release_proven_by": "answers",
        "old_answers": 0,
        "drain_seconds": None,
    }
    assert summary["release"].startswith("rel-cdcdcdcdcdcd-")
    checks = document["result"]["checks"]
    # The method's own job, then the route the backend uses, the same for every method.
    assert [c["name"] for c in checks] == [check, "openai models", "openai chat completion"]
    assert all(c["passed"] for c in checks) and document["result"]["target"] == endpoint_id
    assert checks[1]["message"] == "serves Qwen/Qwen2.5-7B-Instruct"
    assert checks[2]["answer"] == ANSWER[:80]
    [sent] = runsyncs(runpod_emulator)
    assert sent.body == {"input": job_input}
    invoked = [(r.method, r.path) for r in runpod_emulator.requests if "/openai/" in r.path]
    assert invoked == [
        ("GET", f"/v2/{endpoint_id}/openai/v1/models"),
        ("POST", f"/v2/{endpoint_id}/openai/v1/chat/completions"),
    ]


def test_the_endpoint_is_found_by_id_by_the_ledger_or_by_name(
    cli: CliRunnerFn, method1: str, runpod_emulator: Emulator, project: Path
) -> None:
    assert smoke(cli, "--endpoint-id", method1)[0]["result"]["target"] == method1
    shutil.rmtree(project / ".rpdeploy")  # no ledger: found by its name on RunPod
    runpod_emulator.requests.clear()
    assert smoke(cli)[0]["result"]["target"] == method1
    assert [r.operation for r in runpod_emulator.requests.graphql()] == ["Endpoints"]
    cli("endpoint", "create")  # back in the ledger
    cli("endpoint", "delete", "--yes")  # and out of it again
    result = cli("smoke-test", expected_code=7)
    assert "no endpoint named 'qwen25-7b-instruct' on RunPod" in result.stderr


# --- cold starts --------------------------------------------------------------------------------


def test_a_cold_start_longer_than_the_runsync_hold_passes_by_polling(
    cli: CliRunnerFn, method1: str, runpod_emulator: Emulator
) -> None:
    runpod_emulator.faults.cold_start(3.5)  # the fixture's /runsync hands back after 2 s
    document, result = smoke(cli, "--timeout", "120")
    summary = document["summary"]
    assert summary["passed"] is True
    assert summary["cold_start_ms"] == 3500 and summary["execution_ms"] == 50
    # Noticed soon after the job ended at 3.55 s: polled at least once a second after the hand-back.
    assert 3.55 <= summary["latency_s"] < 3.55 + 1.5
    [submitted] = runsyncs(runpod_emulator)
    assert submitted.query == {}  # no ?wait: RunPod's own hold, since our deadline is further away
    polls = [r for r in runpod_emulator.requests if "/status/" in r.path]
    assert 2 <= len(polls) <= 6 and all(r.method == "GET" and r.status == 200 for r in polls)
    assert job(runpod_emulator, document["result"]["checks"][0]["job_id"])["status"] == "COMPLETED"
    assert "IN_QUEUE" in result.stderr  # the waiting was shown


def test_a_deadline_shorter_than_the_hold_asks_runsync_for_less(
    cli: CliRunnerFn, method1: str, runpod_emulator: Emulator
) -> None:
    document, _ = smoke(cli, "--timeout", "30")
    assert document["ok"] is True
    [submitted] = runsyncs(runpod_emulator)
    assert 29_000 <= int(submitted.query["wait"]) <= 30_000


def test_a_rate_limited_submit_is_sent_again_after_retry_after(
    cli: CliRunnerFn, method1: str, runpod_emulator: Emulator
) -> None:
    runpod_emulator.faults.invoke_rate_limit(count=1, retry_after=1)
    document, result = smoke(cli)
    assert document["ok"] is True
    assert [r.status for r in runsyncs(runpod_emulator)] == [429, 200]
    chat_jobs = [j for j in runpod_emulator.state.snapshot()["jobs"] if "messages" in j["input"]]
    assert len(chat_jobs) == 1  # the refused one made no job
    assert "rate-limiting requests (HTTP 429); retrying in 1s" in result.stderr


def test_a_failing_status_poll_is_asked_again(method1: str, runpod_emulator: Emulator) -> None:
    import time

    from rpdeploy.deploy.smoke import SmokeSettings, run_smoke
    from rpdeploy.methods import Method
    from rpdeploy.runpod.invoke import InvokeClient
    from rpdeploy.secrets import Secret

    runpod_emulator.faults.cold_start(3.5)
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        if not pauses:  # the first pause comes after /runsync handed the job back: break the next poll
            runpod_emulator.faults.invoke_rate_limit(count=1, retry_after=1)
        pauses.append(seconds)
        time.sleep(seconds)

    key = Secret(runpod_emulator.api_key, "test")
    with InvokeClient(runpod_emulator.invoke_url(method1), api_key=key) as client:
        result = run_smoke(
            client, Method.WORKER_VLLM, SmokeSettings(PROMPT, 32, 120), model="Qwen/Qwen2.5-7B-Instruct",
            target=method1, sleep=sleep,
        )  # fmt: skip
    assert result.passed and result.checks[0].delay_ms == 3500
    polls = [r.status for r in runpod_emulator.requests if "/status/" in r.path]
    assert polls[0] == 429 and polls[-1] == 200 and set(polls[1:]) == {200}
    assert 1.0 in pauses  # the pause after the 429 honoured its Retry-After


# --- failures: the verdict, the message and exit code 10 ---------------------------------------


def _failed(cli: CliRunnerFn, *args: object) -> tuple[dict[str, Any], Result]:
    document, result = smoke(cli, *args, expected_code=10)
    assert document["ok"] is False and document["summary"]["passed"] is False
    assert document["error"]["type"] == "SmokeTestError" and document["error"]["exit_code"] == 10
    return document, result


def test_a_failed_job_fails_with_the_workers_message(
    cli: CliRunnerFn, method1: str, runpod_emulator: Emulator, project: Path
) -> None:
    runpod_emulator.faults.job_fail(message="CUDA out of memory. Tried to allocate 2.00 GiB")
    junit = project / "smoke.xml"
    document, result = _failed(cli, "--junit", junit)
    [check] = document["result"]["checks"]  # the OpenAI checks are not tried after this
    assert check["status"] == "FAILED"
    assert check["message"] == "job FAILED: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert document["error"]["message"] == (
        f"smoke test of {method1} failed: runsync chat: job FAILED: CUDA out of memory. Tried to allocate 2.00 GiB"
    )
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("1", "1")
    failure = suite.find("testcase/failure")
    assert failure is not None and failure.get("message") == check["message"]
    no_secret(runpod_emulator, result.stdout, result.stderr, junit.read_text())


def test_the_human_report_of_a_failure(cli: CliRunnerFn, method1: str, runpod_emulator: Emulator) -> None:
    runpod_emulator.faults.job_fail(message="CUDA out of memory")
    result = cli("smoke-test", expected_code=10)
    lines = result.stdout.splitlines()
    assert lines[0] == f"Smoke test of {method1} (worker-vllm): FAILED"
    assert lines[1].startswith("  FAIL runsync chat (") and lines[1].endswith("s): job FAILED: CUDA out of memory")
    release = Ledger.load(Path(".rpdeploy")).extra["release"]
    assert lines[2] == f"  release {release}: not proven: no answer passed the check", lines
    assert lines[-1] == "  1 HTTP request(s) in " + lines[-1].split(" in ")[1]  # no numbers for a failed job
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: smoke test of {method1} failed: runsync chat: job FAILED: CUDA out of memory"]


def test_a_completed_job_with_an_error_in_its_output_fails(
    cli: CliRunnerFn, method1: str, runpod_emulator: Emulator
) -> None:
    runpod_emulator.faults.job_error_output(message="KV cache is full: lower max_model_len")
    document, _ = _failed(cli)
    [check] = document["result"]["checks"]
    assert check["status"] == "COMPLETED"
    assert check["message"] == "job COMPLETED but the worker returned an error: KV cache is full: lower max_model_len"


def test_a_hanging_job_times_out_and_is_cancelled(cli: CliRunnerFn, method1: str, runpod_emulator: Emulator) -> None:
    runpod_emulator.faults.job_hang()
    document, result = _failed(cli, "--timeout", "2")
    [check] = document["result"]["checks"]
    assert check["status"] == "TIMED_OUT"
    assert check["message"].startswith("no answer within 2s (job cancelled): a worker took the job but did not finish")
    # The 2 s are the whole check's: reading the release's rollout first took a few ms of them.
    assert 1.9 <= check["seconds"] < 3.5
    assert job(runpod_emulator, check["job_id"])["status"] == "CANCELLED"
    invoke = [(r.method, r.path.split("/")[3]) for r in runpod_emulator.requests if _invoke(r.path)]
    # Asked for a hold that ends at the deadline, asked /health why, then cancelled.
    assert invoke == [("POST", "runsync"), ("GET", "health"), ("POST", "cancel")]
    # ...and showed the last lines of the worker that had the job (read over REST v2; the newest
    # worker's: a job given up on reports no worker).
    assert "log line(s) of worker" in result.stderr
    assert f"job {check['job_id']} started" in result.stderr
    # The hold ends at the deadline: what is left of the 2 s once the rollout was read (loaded CI: ~0.3 s).
    assert 1_500 <= int(runsyncs(runpod_emulator)[0].query["wait"]) <= 2_000
    assert f"/cancel/{check['job_id']}" in [r.path.removeprefix(f"/v2/{method1}") for r in runpod_emulator.requests]
    no_secret(runpod_emulator, result.stdout, result.stderr)


def test_a_cold_start_past_the_timeout_says_workers_are_initializing(
    cli: CliRunnerFn, method1: str, runpod_emulator: Emulator
) -> None:
    runpod_emulator.faults.cold_start(60)
    document, _ = _failed(cli, "--timeout", "2")
    [check] = document["result"]["checks"]
    assert check["message"].startswith("no answer within 2s (job cancelled): 1 worker(s) still initializing")
    assert "raise smoke_test.timeout" in check["message"]
    assert job(runpod_emulator, check["job_id"])["status"] == "CANCELLED"


@pytest.mark.parametrize("why", ["workers_max 0", "no GPU capacity"])
def test_an_endpoint_without_workers_fails_saying_so(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, why: str
) -> None:
    write_config(project, 1, workers_max=0 if why == "workers_max 0" else 2)
    endpoint_id = create(cli, 1)
    if why == "no GPU capacity":
        runpod_emulator.faults.no_capacity(endpoint_id)
    document, _ = _failed(cli, "--timeout", "2")
    [check] = document["result"]["checks"]
    assert check["message"].startswith("no answer within 2s (job cancelled): no worker was started")
    assert "workers_max may be 0, or RunPod has no GPU capacity" in check["message"]
    [endpoint] = runpod_emulator.state.snapshot()["endpoints"]
    assert endpoint["workers"] == [] and endpoint["queue"] == []  # cancelled: nothing left waiting
    assert job(runpod_emulator, check["job_id"])["status"] == "CANCELLED"


def test_an_openai_route_serving_another_model_fails_its_checks(
    cli: CliRunnerFn, method1: str, runpod_emulator: Emulator
) -> None:
    with runpod_emulator.state.lock:  # someone changed MODEL_NAME on the template in the console
        [template] = runpod_emulator.state.templates.values()
        [model] = [e for e in template.env if e.key == "MODEL_NAME"]
        model.value = "someone/else-model"
    document, _ = _failed(cli)
    chat, models, completion = document["result"]["checks"]
    assert chat["passed"] is True  # the native job does not name the model
    assert models["message"] == (
        "/openai/v1/models lists ['someone/else-model'], not 'Qwen/Qwen2.5-7B-Instruct': clients sending "
        "model='Qwen/Qwen2.5-7B-Instruct' will fail"
    )
    assert completion["passed"] is False
    assert completion["message"].endswith("not found (HTTP 404): The model `Qwen/Qwen2.5-7B-Instruct` does not exist.")
    assert document["error"]["message"].startswith(f"smoke test of {method1} failed: openai models: ")


def test_prompt_and_max_tokens_are_what_is_sent(cli: CliRunnerFn, method1: str, runpod_emulator: Emulator) -> None:
    document, _ = smoke(cli, "--prompt", "a different prompt", "--max-tokens", "3")
    assert document["summary"]["answer"] == "The emulator's stand-in" and document["summary"]["output_tokens"] == 3
    [sent] = runsyncs(runpod_emulator)
    assert sent.body["input"]["messages"] == [{"role": "user", "content": "a different prompt"}]
    assert sent.body["input"]["sampling_params"]["max_tokens"] == 3


def test_a_bad_key_exits_8_without_printing_it(
    cli: CliRunnerFn, method1: str, runpod_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_WRONG_smoke_key_1234567890")
    result = cli("smoke-test", "--endpoint-id", method1, expected_code=8)
    assert "rejected the API key (HTTP 401)" in result.stderr
    assert "rpa_WRONG_smoke_key_1234567890" not in result.stdout + result.stderr


def test_url_of_a_runpod_endpoint_outside_a_project_uses_runpod_api_key(
    cli: CliRunnerFn, method1: str, runpod_emulator: Emulator, project: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    runpod_emulator.requests.clear()
    document, _ = smoke(cli, "--url", runpod_emulator.invoke_url(method1), "--method", "1")
    assert document["ok"] is True and document["result"]["target"] == runpod_emulator.invoke_url(method1)
    # No deploy.yaml to name the model: the one /openai/v1/models lists is used.
    assert document["result"]["checks"][1]["message"] == "serves Qwen/Qwen2.5-7B-Instruct"
    [chat] = [r.body for r in runpod_emulator.requests if r.path.endswith("/chat/completions")]
    assert chat["model"] == "Qwen/Qwen2.5-7B-Instruct"


# --- the same smoke test is deploy's stage 11 ----------------------------------------------------


def test_deploy_runs_the_same_smoke_test_as_its_last_stage(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rpdeploy.deploy.smoke

    write_config(project, 1)
    calls: list[tuple[Any, Any]] = []
    real = rpdeploy.deploy.smoke.run_smoke

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        calls.append((args, result))
        return result

    monkeypatch.setattr(rpdeploy.deploy.smoke, "run_smoke", spy)
    events = [json.loads(line) for line in cli("deploy", "--json").stdout.splitlines()]
    [(args, result)] = calls
    client, method, settings = args[:3]
    endpoint_id = events[-1]["endpoint_id"]
    assert method.value == "worker-vllm" and client.base_url == runpod_emulator.invoke_url(endpoint_id)
    assert (settings.prompt, settings.max_tokens, settings.timeout) == (PROMPT, 32, 600)
    [stage] = [e for e in events if e.get("stage") == "smoke-test" and e["status"] == "done"]
    # The stage's output is the smoke test's summary, the same shape `smoke-test --json` prints, and
    # the report of the release it checked.
    report = stage["outputs"].pop("release_report")
    assert stage["outputs"] == result.summary() and set(stage["outputs"]) == SUMMARY_KEYS
    assert report == result.release.lines() and report[0].startswith(f"release {result.release.expected}: ")
    assert {**events[-1]["smoke"], "release_report": None} == {**result.summary(), "release_report": None}
    document, _ = smoke(cli)
    assert set(document["summary"]) == set(stage["outputs"])


# --- pieces that the emulator cannot make go wrong ------------------------------------------------


@pytest.mark.parametrize(
    ("health", "state", "expected"),
    [
        ({"jobs": {"failed": 3, "completed": 0}, "workers": {"idle": 1}}, "IN_QUEUE", "workers are failing"),
        ({"jobs": {}, "workers": {"unhealthy": 1}}, "IN_QUEUE", "workers are failing"),
        ({"jobs": {"inQueue": 1}, "workers": {"initializing": 2}}, "IN_QUEUE", "2 worker(s) still initializing"),
        ({"jobs": {"inQueue": 1}, "workers": {"throttled": 1}}, "IN_QUEUE", "workers are throttled"),
        ({"jobs": {"inQueue": 1}, "workers": {"idle": 0, "running": 0}}, "IN_QUEUE", "no worker was started"),
        ({"jobs": {"inProgress": 1}, "workers": {"running": 1}}, "IN_PROGRESS", "a worker took the job"),
        (None, "IN_QUEUE", "the worker did not finish in time"),
    ],
)
def test_diagnose(health: dict[str, Any] | None, state: str, expected: str) -> None:
    from rpdeploy.deploy.smoke import diagnose

    assert diagnose(health, state).startswith(expected)


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (["data: " + json.dumps({"choices": [{"delta": {"content": "hi"}}]})], "the stream did not end with [DONE]"),
        (["data: [DONE]"], "the stream carried no chunks"),
        (["data: " + json.dumps({"choices": [{"delta": {"content": " "}}]}), "data: [DONE]"], "the streamed answer is"),
    ],
)
def test_a_broken_stream_fails_its_check(events: list[str], message: str) -> None:
    import httpx

    from rpdeploy.deploy.smoke import Runner, SmokeSettings, _openai_stream
    from rpdeploy.output import NullReporter
    from rpdeploy.runpod.invoke import InvokeClient

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="\n\n".join(events) + "\n\n", headers={"Content-Type": "text/event-stream"})

    with InvokeClient("https://api.example.test/v2/x", api_key=None, transport=httpx.MockTransport(handler)) as client:
        check = _openai_stream(Runner(client, SmokeSettings("p", 4, 10, stream=True), NullReporter()), "m")
    assert check.passed is False and check.message.startswith(message)
