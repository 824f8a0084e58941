"""The real runpod SDK (1.12) against the emulator: its inline-literal GraphQL and its client.

runpod-python builds GraphQL by string interpolation and calls the invoke API with
``requests``; if the emulator accepts what it sends and answers in shapes it reads, the
emulator is at least as lenient and as strict as the requests a real client makes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from emulator_support import MODEL, VLLM_IMAGE

from rpdeploy.emulator import Emulator


def test_control_plane_helpers(runpod_sdk: Any, emulator: Emulator) -> None:
    runpod = runpod_sdk
    auth = runpod.create_container_registry_auth("hub", "acme", "token-1")
    template = runpod.create_template(
        name="sdk-template",
        image_name=VLLM_IMAGE,
        docker_start_cmd='python -u "handler.py"',
        container_disk_in_gb=20,
        env={"MODEL_NAME": MODEL, "MAX_MODEL_LEN": "8192"},
        is_serverless=True,
        registry_auth_id=auth["id"],
    )
    endpoint = runpod.create_endpoint(
        name="sdk-endpoint",
        template_id=template["id"],
        gpu_ids="AMPERE_24",
        workers_max=2,
        flashboot=True,
        allowed_cuda_versions="13.0",
        gpu_count=1,
    )

    assert template["dockerArgs"] == 'python -u "handler.py"'
    assert template["env"] == [
        {"key": "MODEL_NAME", "value": MODEL},
        {"key": "MAX_MODEL_LEN", "value": "8192"},
    ]
    assert endpoint["flashBootType"] == "FLASHBOOT"
    assert endpoint["allowedCudaVersions"] == "13.0"
    assert emulator.state.templates[template["id"]].container_registry_auth_id == auth["id"]
    listed = runpod.get_endpoints()
    assert [(e["id"], e["templateId"], e["workersMax"]) for e in listed] == [(endpoint["id"], template["id"], 2)]
    assert listed[0]["env"][0] == {"key": "MODEL_NAME", "value": MODEL}

    other = runpod.create_template(name="sdk-template-2", image_name=VLLM_IMAGE, is_serverless=True)
    swapped = runpod.update_endpoint_template(endpoint["id"], other["id"])
    assert swapped == {"id": endpoint["id"], "templateId": other["id"]}

    assert runpod.update_container_registry_auth(auth["id"], "acme", "token-2")["id"] == auth["id"]
    assert emulator.state.registry_auths[auth["id"]].password == "token-2"
    assert runpod.delete_container_registry_auth(auth["id"]) is None

    # Every request was an inline-literal query without variables, as runpod 1.12 sends.
    assert all(r.variables is None for r in emulator.requests.graphql())


def test_catalogue_and_user_helpers(runpod_sdk: Any, emulator: Emulator) -> None:
    runpod = runpod_sdk
    gpus = runpod.get_gpus()
    l4 = runpod.get_gpu("NVIDIA L4")
    user = runpod.get_user()

    assert {"id": "NVIDIA L4", "displayName": "L4", "memoryInGb": 24} in gpus
    assert l4["id"] == "NVIDIA L4" and l4["memoryInGb"] == 24
    assert set(l4["lowestPrice"]) == {"minimumBidPrice", "uninterruptablePrice"}
    with pytest.raises(ValueError):
        runpod.get_gpu("NVIDIA GeForce GTX 480")
    assert user["id"] == emulator.state.account.id and user["networkVolumes"] == []


def test_errors_surface_as_the_sdks_exceptions(runpod_sdk: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    runpod = runpod_sdk
    template = runpod.create_template(name="t", image_name=VLLM_IMAGE, is_serverless=True)

    with pytest.raises(runpod.error.QueryError, match="unique"):
        runpod.create_template(name="t", image_name=VLLM_IMAGE, is_serverless=True)
    with pytest.raises(runpod.error.QueryError, match="GPU type, not a pool"):
        runpod.create_endpoint(name="bad-gpu", template_id=template["id"], gpu_ids="NVIDIA L4")
    with pytest.raises(runpod.error.QueryError, match="3 to 191"):
        runpod.create_endpoint(name="ab", template_id=template["id"], gpu_ids="AMPERE_24")
    # runpod-python does not escape quotes in env values: the query no longer parses.
    with pytest.raises(runpod.error.QueryError, match="Syntax Error"):
        runpod.create_template(name="q", image_name=VLLM_IMAGE, env={"A": 'say "hi"'})

    monkeypatch.setattr(runpod, "api_key", "rpa_WRONG")
    with pytest.raises(runpod.error.AuthenticationError):
        runpod.get_endpoints()


@pytest.fixture
def sdk_endpoint(runpod_sdk: Any) -> Any:
    template = runpod_sdk.create_template(
        name="vllm", image_name=VLLM_IMAGE, env={"MODEL_NAME": MODEL}, is_serverless=True
    )
    created = runpod_sdk.create_endpoint(name="vllm-ep", template_id=template["id"], gpu_ids="AMPERE_24", workers_max=1)
    return runpod_sdk.Endpoint(created["id"])


def test_endpoint_run_sync_and_health(sdk_endpoint: Any) -> None:
    output = sdk_endpoint.run_sync({"prompt": "Hello there", "sampling_params": {"max_tokens": 4}}, timeout=10)

    assert isinstance(output, list) and output[0]["object"] == "text_completion"
    assert output[0]["choices"][0]["finish_reason"] == "length"
    assert output[0]["usage"] == {
        "prompt_tokens": 2,
        "total_tokens": 6,
        "completion_tokens": 4,
        "prompt_tokens_details": None,
    }
    health = sdk_endpoint.health()
    assert health["jobs"]["completed"] == 1
    assert health["workers"]["idle"] == 1


def test_endpoint_run_then_status_and_output(sdk_endpoint: Any) -> None:
    job = sdk_endpoint.run({"messages": [{"role": "user", "content": "Hi"}]})

    assert job.job_id.endswith("-u1") and not job.job_id.startswith("sync-")
    assert job.status() in ("IN_QUEUE", "IN_PROGRESS")
    output = job.output(timeout=10)
    assert output[0]["object"] == "chat.completion"
    assert job.status() == "COMPLETED"


def test_endpoint_cancel_and_purge(sdk_endpoint: Any, emulator: Emulator) -> None:
    # One worker (workersMax 1) running one job at a time, and that job never ends.
    emulator.faults.concurrency(1, endpoint_id=sdk_endpoint.endpoint_id)
    emulator.faults.job_hang(endpoint_id=sdk_endpoint.endpoint_id, count=None)
    running = sdk_endpoint.run({"prompt": "forever"})
    deadline = time.monotonic() + 5
    while running.status() != "IN_PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.02)
    queued = [sdk_endpoint.run({"prompt": f"q{i}"}) for i in range(2)]

    purged = sdk_endpoint.purge_queue()
    cancelled = running.cancel()

    assert purged == {"removed": 2, "status": "completed"}
    assert all(job.job_id not in emulator.state.jobs for job in queued)
    assert cancelled["id"] == running.job_id and cancelled["status"] == "CANCELLED"
    assert emulator.state.jobs[running.job_id].status.value == "CANCELLED"


@pytest.mark.slow
def test_endpoint_stream(runpod_sdk: Any, emulator: Emulator) -> None:
    template = runpod_sdk.create_template(
        name="own", image_name="acme/worker:1", env={"MODEL_NAME": MODEL}, is_serverless=True
    )
    created = runpod_sdk.create_endpoint(name="own-ep", template_id=template["id"], gpu_ids="AMPERE_24")
    endpoint = runpod_sdk.Endpoint(created["id"])

    job = endpoint.run({"prompt": "stream me", "stream": True})
    pieces = list(job.stream())

    assert [piece["finish_reason"] for piece in pieces[:-1]] == [None] * (len(pieces) - 1)
    assert pieces[-1]["finish_reason"] == "stop" and pieces[-1]["usage"]["completion_tokens"] == len(pieces) - 1
    assert "".join(piece["text"] for piece in pieces[:-1]).startswith("The emulator's stand-in model")
