"""The invoke API and the simulated workers: job lifecycle, scaling, faults, health."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from emulator_support import OWN_IMAGE, Api

from rpdeploy.emulator import Emulator

UUID_JOB = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-u1"
PROMPT = {"prompt": "Say hello"}


@pytest.fixture
def endpoint_id(api: Api) -> str:
    endpoint_id: str = api.endpoint(name="invoke-ep", workersMax=2)["id"]
    return endpoint_id


# --- requests the API refuses ------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_unauthorized(api: Api, endpoint_id: str, headers: dict[str, str]) -> None:
    response = api.invoke("POST", endpoint_id, "run", json={"input": PROMPT}, headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized"}


def test_bare_key_header_is_accepted(api: Api, emulator: Emulator, endpoint_id: str) -> None:
    response = api.invoke("GET", endpoint_id, "health", headers={"Authorization": emulator.api_key})

    assert response.status_code == 200


def test_unknown_endpoint_is_404(api: Api) -> None:
    assert api.invoke("POST", "zzzzzzzzzzzzzz", "run", json={"input": PROMPT}).status_code == 404


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"input": "text"}', b'{"input": null}', b'{"prompt": "no input wrapper"}'],
)
def test_body_without_an_input_object_is_400(api: Api, endpoint_id: str, body: bytes) -> None:
    response = api.invoke(
        "POST", endpoint_id, "run", content=body, headers={**api.headers, "Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert "input" in response.json()["error"] or "JSON" in response.json()["error"]


def test_wrong_method_and_unknown_route(api: Api, endpoint_id: str) -> None:
    assert api.invoke("GET", endpoint_id, "run").status_code == 405
    assert api.invoke("POST", endpoint_id, "health").status_code == 405
    assert api.invoke("GET", endpoint_id, "nope").status_code == 404


def test_unknown_job_is_404(api: Api, endpoint_id: str) -> None:
    assert api.invoke("GET", endpoint_id, "status/00000000-0000-4000-8000-000000000000-u1").status_code == 404


# --- lifecycle ----------------------------------------------------------------------------------


def test_run_lifecycle_with_cold_start(api: Api, emulator: Emulator, endpoint_id: str) -> None:
    response = api.invoke("POST", endpoint_id, "run", json={"input": PROMPT})
    job_id = response.json()["id"]

    assert response.json() == {"id": job_id, "status": "IN_QUEUE"}
    assert re.fullmatch(UUID_JOB, job_id)
    assert api.status(endpoint_id, job_id) == {"id": job_id, "status": "IN_QUEUE"}  # worker is cold-starting
    assert api.health(endpoint_id)["workers"]["initializing"] == 1

    running = api.wait_status(endpoint_id, job_id, lambda b: b["status"] != "IN_QUEUE")
    assert running["status"] in ("IN_PROGRESS", "COMPLETED")
    done = api.wait_done(endpoint_id, job_id)

    assert done["status"] == "COMPLETED"
    assert set(done) == {"id", "status", "delayTime", "executionTime", "workerId", "output"}
    assert done["delayTime"] >= 100  # the cold start
    assert 40 <= done["executionTime"] <= 500
    assert re.fullmatch(r"[a-z0-9]{14}", done["workerId"])
    assert done["output"][0]["object"] == "text_completion"


def test_runsync_completes_within_its_wait(api: Api, endpoint_id: str) -> None:
    response = api.invoke("POST", endpoint_id, "runsync", json={"input": PROMPT})
    body = response.json()

    assert response.status_code == 200
    assert body["status"] == "COMPLETED"
    assert re.fullmatch("sync-" + UUID_JOB, body["id"])
    assert body["output"][0]["choices"][0]["text"].startswith("The emulator's")


def test_runsync_hands_back_a_running_job_when_the_cold_start_is_longer() -> None:
    with Emulator("k", cold_start=0.6, execution_time=0.05, runsync_wait=0.2) as emu:
        api = Api(emu)
        try:
            endpoint_id = api.endpoint(name="slow-start")["id"]
            started = time.monotonic()
            body = api.invoke("POST", endpoint_id, "runsync", json={"input": PROMPT}).json()
            waited = time.monotonic() - started

            assert body == {"id": body["id"], "status": "IN_QUEUE"}
            assert 0.2 <= waited < 0.6
            done = api.wait_done(endpoint_id, body["id"])
            assert done["status"] == "COMPLETED" and done["delayTime"] >= 600
        finally:
            api.close()


def test_runsync_honours_wait_query(api: Api, emulator: Emulator, endpoint_id: str) -> None:
    emulator.faults.cold_start(1.5, endpoint_id=endpoint_id)

    started = time.monotonic()
    body = api.invoke("POST", endpoint_id, "runsync?wait=1000", json={"input": PROMPT}).json()
    waited = time.monotonic() - started

    assert body["status"] == "IN_QUEUE" and set(body) == {"id", "status"}
    assert 1.0 <= waited < 1.5
    for bad in ("500", "300001", "soon"):
        assert api.invoke("POST", endpoint_id, f"runsync?wait={bad}", json={"input": PROMPT}).status_code == 400


def test_workers_max_zero_keeps_jobs_in_queue(api: Api) -> None:
    endpoint_id = api.endpoint(name="no-workers", workersMax=0)["id"]

    job_id = api.run(endpoint_id, PROMPT)
    time.sleep(0.4)

    assert api.status(endpoint_id, job_id) == {"id": job_id, "status": "IN_QUEUE"}
    health = api.health(endpoint_id)
    assert health["jobs"]["inQueue"] == 1
    assert set(health["workers"].values()) == {0}


def test_no_capacity_fault_keeps_jobs_in_queue(api: Api, emulator: Emulator, endpoint_id: str) -> None:
    emulator.faults.no_capacity(endpoint_id=endpoint_id)
    job_id = api.run(endpoint_id, PROMPT)
    time.sleep(0.4)
    assert api.status(endpoint_id, job_id)["status"] == "IN_QUEUE"
    assert set(api.health(endpoint_id)["workers"].values()) == {0}

    emulator.faults.clear("no_capacity")
    assert api.wait_done(endpoint_id, job_id)["status"] == "COMPLETED"


def test_cancel_queued_and_running_jobs(api: Api, emulator: Emulator, endpoint_id: str) -> None:
    emulator.faults.job_hang(endpoint_id=endpoint_id, count=None)
    running = api.run(endpoint_id, PROMPT)
    api.wait_status(endpoint_id, running, lambda b: b["status"] == "IN_PROGRESS")
    emulator.faults.no_capacity(endpoint_id=endpoint_id)
    emulator.faults.concurrency(1, endpoint_id=endpoint_id)

    cancelled = api.invoke("POST", endpoint_id, f"cancel/{running}").json()

    assert cancelled["status"] == "CANCELLED" and cancelled["id"] == running
    assert "executionTime" in cancelled
    assert api.status(endpoint_id, running)["status"] == "CANCELLED"
    assert api.health(endpoint_id)["jobs"]["inProgress"] == 0

    # Cancelling a finished job changes nothing.
    again = api.invoke("POST", endpoint_id, f"cancel/{running}").json()
    assert again["status"] == "CANCELLED"


def test_cancel_before_a_worker_starts(api: Api, endpoint_id: str) -> None:
    job_id = api.run(endpoint_id, PROMPT)

    cancelled = api.invoke("POST", endpoint_id, f"cancel/{job_id}").json()

    assert cancelled["status"] == "CANCELLED" and "executionTime" not in cancelled
    time.sleep(0.3)
    assert api.status(endpoint_id, job_id)["status"] == "CANCELLED"
    assert api.health(endpoint_id)["jobs"] == {
        "completed": 0,
        "failed": 0,
        "inProgress": 0,
        "inQueue": 0,
        "retried": 0,
    }


def test_execution_timeout_from_endpoint(api: Api, emulator: Emulator) -> None:
    endpoint_id = api.endpoint(name="timeouts", executionTimeoutMs=300)["id"]
    emulator.faults.job_hang(endpoint_id=endpoint_id)

    job_id = api.run(endpoint_id, PROMPT)
    done = api.wait_done(endpoint_id, job_id)

    assert done["status"] == "TIMED_OUT"
    assert 300 <= done["executionTime"] < 400
    assert "output" not in done
    assert api.health(endpoint_id)["jobs"]["failed"] == 1


def test_execution_timeout_from_job_policy_wins(api: Api, emulator: Emulator) -> None:
    endpoint_id = api.endpoint(name="timeouts", executionTimeoutMs=300)["id"]
    emulator.faults.execution_time(0.5, endpoint_id=endpoint_id)

    job_id = api.run(endpoint_id, PROMPT, policy={"executionTimeout": 5000})

    assert api.wait_done(endpoint_id, job_id)["status"] == "COMPLETED"
    bad = api.invoke("POST", endpoint_id, "run", json={"input": PROMPT, "policy": {"executionTimeout": 100}})
    assert bad.status_code == 400 and "executionTimeout" in bad.json()["error"]


def test_scaling_concurrency_and_health(api: Api, emulator: Emulator) -> None:
    endpoint_id = api.endpoint(name="scaling", workersMax=2)["id"]
    emulator.faults.concurrency(2, endpoint_id=endpoint_id)
    emulator.faults.execution_time(2.0, endpoint_id=endpoint_id)  # wide windows: CI machines are slow

    jobs = [api.run(endpoint_id, {"prompt": f"p{i}"}) for i in range(5)]
    health = api.health(endpoint_id)
    assert health["workers"]["initializing"] == 2  # 5 jobs / 2 per worker, capped at workersMax
    assert health["jobs"]["inQueue"] == 5

    api.wait_status(endpoint_id, jobs[0], lambda b: b["status"] == "IN_PROGRESS")
    # The two workers finish starting independently: wait (bounded) for the second one.
    deadline = time.monotonic() + 1.5
    health = api.health(endpoint_id)
    while health["workers"]["running"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
        health = api.health(endpoint_id)
    assert health["workers"] == {
        "idle": 0,
        "initializing": 0,
        "ready": 2,
        "running": 2,
        "throttled": 0,
        "unhealthy": 0,
    }
    assert (health["jobs"]["inProgress"], health["jobs"]["inQueue"]) == (4, 1)

    for job_id in jobs:
        assert api.wait_done(endpoint_id, job_id)["status"] == "COMPLETED"
    health = api.health(endpoint_id)
    assert health["jobs"] == {"completed": 5, "failed": 0, "inProgress": 0, "inQueue": 0, "retried": 0}
    assert health["workers"]["idle"] == 2
    assert len({api.status(endpoint_id, j)["workerId"] for j in jobs}) == 2


def test_idle_workers_stop_after_idle_timeout_down_to_workers_min(api: Api, emulator: Emulator) -> None:
    emulator.faults.concurrency(1)  # before the endpoint exists: its first worker starts at once
    endpoint_id = api.endpoint(name="idle", workersMin=1, workersMax=2, idleTimeout=1)["id"]

    jobs = [api.run(endpoint_id, PROMPT) for _ in range(2)]
    for job_id in jobs:
        api.wait_done(endpoint_id, job_id)
    deadline = time.monotonic() + 1
    while api.health(endpoint_id)["workers"]["initializing"] and time.monotonic() < deadline:
        time.sleep(0.02)  # the second worker may still be starting after both jobs ran on the first
    assert api.health(endpoint_id)["workers"]["idle"] == 2

    time.sleep(1.1)
    workers = api.health(endpoint_id)["workers"]
    assert (workers["idle"], workers["running"], workers["initializing"]) == (1, 0, 0)
    assert len(emulator.state.endpoints[endpoint_id].workers) == 1


def test_workers_min_starts_active_workers(api: Api) -> None:
    endpoint_id = api.endpoint(name="active", workersMin=2, workersMax=3)["id"]

    assert api.health(endpoint_id)["workers"]["initializing"] == 2
    time.sleep(0.3)
    assert api.health(endpoint_id)["workers"]["idle"] == 2


# --- faults, retry, purge, stream ------------------------------------------------------------------


def test_job_fail_fault_then_retry(api: Api, emulator: Emulator, endpoint_id: str) -> None:
    emulator.faults.job_fail("CUDA out of memory", endpoint_id=endpoint_id)

    job_id = api.run(endpoint_id, PROMPT)
    failed = api.wait_done(endpoint_id, job_id)
    assert failed["status"] == "FAILED" and failed["error"] == "CUDA out of memory"
    assert "output" not in failed

    retried = api.invoke("POST", endpoint_id, f"retry/{job_id}").json()
    assert retried == {"id": job_id, "status": "IN_QUEUE"}
    done = api.wait_done(endpoint_id, job_id)
    assert done["status"] == "COMPLETED" and done["retries"] == 1
    health = api.health(endpoint_id)["jobs"]
    assert (health["failed"], health["completed"], health["retried"]) == (1, 1, 1)
    not_retryable = api.invoke("POST", endpoint_id, f"retry/{job_id}")
    assert not_retryable.status_code == 400


def test_job_error_output_fault_completes_with_output_error(api: Api, emulator: Emulator, endpoint_id: str) -> None:
    emulator.faults.job_error_output("vLLM engine died", endpoint_id=endpoint_id)

    done = api.wait_done(endpoint_id, api.run(endpoint_id, PROMPT))

    assert done["status"] == "COMPLETED"
    assert done["output"] == {"error": {"message": "vLLM engine died", "type": "worker_error", "code": None}}


def test_invoke_rate_limit_fault(api: Api, emulator: Emulator, endpoint_id: str) -> None:
    emulator.faults.invoke_rate_limit(count=1, retry_after=3, endpoint_id=endpoint_id)

    limited = api.invoke("POST", endpoint_id, "run", json={"input": PROMPT})
    passed = api.invoke("POST", endpoint_id, "run", json={"input": PROMPT})

    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert passed.status_code == 200


def test_purge_queue_removes_only_queued_jobs(api: Api, emulator: Emulator, endpoint_id: str) -> None:
    emulator.faults.concurrency(1, endpoint_id=endpoint_id)
    emulator.faults.execution_time(0.4, endpoint_id=endpoint_id)
    emulator.faults.no_capacity(endpoint_id=endpoint_id)
    jobs = [api.run(endpoint_id, PROMPT) for _ in range(3)]

    purged = api.invoke("POST", endpoint_id, "purge-queue").json()

    assert purged == {"removed": 3, "status": "completed"}
    assert all(api.invoke("GET", endpoint_id, f"status/{j}").status_code == 404 for j in jobs)


def test_stream_returns_new_chunks_per_poll(api: Api) -> None:
    endpoint_id = api.endpoint(name="own-stream", image=OWN_IMAGE)["id"]
    api.emulator.faults.execution_time(0.5, endpoint_id=endpoint_id)
    job_id = api.run(endpoint_id, {"prompt": "stream this", "stream": True})

    polls: list[dict[str, Any]] = []
    while not polls or polls[-1]["status"] != "COMPLETED":
        polls.append(api.invoke("GET", endpoint_id, f"stream/{job_id}").json())
        time.sleep(0.05)
    chunks = [item["output"] for poll in polls for item in poll["stream"]]

    assert sum(1 for poll in polls if poll["stream"]) > 1  # delivered over several polls
    assert chunks == api.status(endpoint_id, job_id)["output"]
    assert chunks[-1]["finish_reason"] == "stop"
    assert api.invoke("GET", endpoint_id, f"stream/{job_id}").json()["stream"] == []


def test_finished_jobs_expire_after_retention() -> None:
    with Emulator("k", cold_start=0, execution_time=0.01, runsync_wait=2, run_retention=0.3) as emu:
        api = Api(emu)
        try:
            endpoint_id = api.endpoint(name="retention")["id"]
            job_id = api.run(endpoint_id, PROMPT)
            assert api.wait_done(endpoint_id, job_id)["status"] == "COMPLETED"
            time.sleep(0.4)
            assert api.invoke("GET", endpoint_id, f"status/{job_id}").status_code == 404
        finally:
            api.close()


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_webhook_gets_the_status_payload(
    api: Api, endpoint_id: str, webhook_receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook_receiver

    job_id = api.run(endpoint_id, PROMPT, webhook=url)
    done = api.wait_done(endpoint_id, job_id)
    deadline = time.monotonic() + 3
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)

    assert received == [done]


def test_chunked_request_body(api: Api, endpoint_id: str) -> None:
    pieces = iter([b'{"input": ', b'{"prompt": "chunked"}}'])

    response = api.invoke(
        "POST",
        endpoint_id,
        "run",
        content=pieces,
        headers={**api.headers, "Content-Type": "application/json"},
    )
    after = api.invoke("GET", endpoint_id, "health")  # same keep-alive connection, still in sync

    assert response.status_code == 200, response.text
    assert after.status_code == 200
    assert api.emulator.state.jobs[response.json()["id"]].input == {"prompt": "chunked"}
