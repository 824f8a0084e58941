"""`rpdeploy deploy`, plan, status and destroy against the emulator over HTTP (worker-vllm).

The RunPod side runs over both control-plane APIs (the ``runpod_api`` fixture: GraphQL and
REST v2); every REST exchange is checked against RunPod's OpenAPI document by the emulator
fixture. What each API is sent differs (GraphQL saves a template and binds the endpoint to
it; REST v2 puts the container on the endpoint), what RunPod ends up holding does not.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rpdeploy.deploy.ledger import Ledger
from rpdeploy.deploy.lock import DeployLock
from rpdeploy.emulator import Emulator
from tests.conftest import ROOT, CliRunnerFn, mutations

METHOD1_STAGES = ["account", "template", "gpu", "endpoint", "smoke-test"]
#: What a first deploy sends, per API. Under REST the cached model (deploy.yaml's default
#: weights) still goes over GraphQL: v2 has no field for it.
CREATES = {"graphql": ["SaveTemplate", "SaveEndpoint"], "rest": ["createEndpoint", "SaveEndpoint"]}
pytestmark = pytest.mark.usefixtures("runpod_api")


@pytest.fixture
def reference(project: Path) -> Path:
    shutil.copy(ROOT / "deploy.yaml", project / "deploy.yaml")
    return project


def _ledger(project: Path) -> Ledger:
    return Ledger.load(project / ".rpdeploy")


def _statuses(document: list[dict[str, Any]]) -> dict[str, str]:
    """Last status per stage from a --json event stream."""
    out: dict[str, str] = {}
    for event in document:
        if event.get("event") == "stage":
            out[event["stage"]] = event["status"]
    return out


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_first_deploy_creates_one_template_and_endpoint(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, runpod_api: str
) -> None:
    events = _events(cli("deploy", "--json").stdout)
    assert _statuses(events) == dict.fromkeys(METHOD1_STAGES, "done")
    result = events[-1]
    assert result["event"] == "result" and result["ok"] is True
    state = runpod_emulator.state.snapshot()
    [template] = state["templates"]
    [endpoint] = state["endpoints"]
    assert template["imageName"] == "runpod/worker-v1-vllm:v2.25.2"
    env = {e["key"]: e["value"] for e in template["env"]}
    assert env["MODEL_NAME"] == "Qwen/Qwen2.5-7B-Instruct"
    assert env["MAX_MODEL_LEN"] == "8192" and env["GPU_MEMORY_UTILIZATION"] == "0.9"
    assert endpoint["templateId"] == template["id"]
    assert endpoint["gpuIds"] == "AMPERE_24,-NVIDIA GeForce RTX 3090,-NVIDIA RTX A5000"
    assert (endpoint["workersMin"], endpoint["workersMax"]) == (0, 2)
    assert endpoint["allowedCudaVersions"] == "13.0"
    assert endpoint["flashBootType"] == "FLASHBOOT" and endpoint["executionTimeoutMs"] == 600_000
    assert result["endpoint_id"] == endpoint["id"]
    assert mutations(runpod_emulator) == CREATES[runpod_api]
    if runpod_api == "rest":
        # GraphQL only for what v2 lacks: the account check and the cached model.
        assert {r.operation for r in runpod_emulator.requests.graphql()} == {"Myself", "Endpoint", "SaveEndpoint"}
        [cache] = runpod_emulator.requests.graphql("SaveEndpoint")
        assert cache.variables is not None and cache.variables["input"]["id"] == endpoint["id"]
        assert cache.variables["input"]["modelReferences"] == ["https://huggingface.co/Qwen/Qwen2.5-7B-Instruct:main"]
        # The container went with the endpoint (v2 keeps no template link).
        [create] = [r for r in runpod_emulator.requests if r.operation == "createEndpoint"]
        assert create.body["image"] == "runpod/worker-v1-vllm:v2.25.2" and create.body["type"] == "QUEUE"
        assert create.body["gpu"]["excludedTypes"] == ["NVIDIA GeForce RTX 3090", "NVIDIA RTX A5000"]
        assert _ledger(reference).output("template", "template_id") == ""
    smoke = _ledger(reference).output("smoke-test", "answer")
    assert smoke and smoke.startswith("The emulator's stand-in model")


def test_a_rerun_changes_nothing(cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator) -> None:
    cli("deploy")
    runpod_emulator.requests.clear()
    events = _events(cli("deploy", "--json").stdout)
    assert _statuses(events) == dict.fromkeys(METHOD1_STAGES, "skipped")
    assert mutations(runpod_emulator) == []
    assert not [r for r in runpod_emulator.requests if "/runsync" in r.path]  # no new smoke job either


def test_a_config_change_updates_in_place_and_keeps_the_rest(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, runpod_api: str
) -> None:
    cli("deploy")
    before = runpod_emulator.state.snapshot()["endpoints"][0]
    config = reference / "deploy.yaml"
    config.write_text(config.read_text().replace("workers_max: 2", "workers_max: 3"))
    runpod_emulator.requests.clear()
    cli("deploy")
    [after] = runpod_emulator.state.snapshot()["endpoints"]
    assert after["id"] == before["id"]
    assert after["workersMax"] == 3
    for key in (
        "templateId",
        "gpuIds",
        "idleTimeout",
        "scalerType",
        "scalerValue",
        "flashBootType",
        "executionTimeoutMs",
    ):
        assert after[key] == before[key], key
    if runpod_api == "graphql":
        assert mutations(runpod_emulator) == ["SaveEndpoint"]
        [update] = [r for r in runpod_emulator.requests.graphql("SaveEndpoint")]
        assert update.variables is not None and update.variables["input"]["id"] == before["id"]
    else:
        # A sparse PATCH of what changed; the GPU exclusions stay (pools were not sent).
        assert mutations(runpod_emulator) == ["updateEndpoint"]
        [update] = [r for r in runpod_emulator.requests if r.operation == "updateEndpoint"]
        assert update.path == f"/v2/serverless/{before['id']}" and update.method == "PATCH"
        assert update.body == {"workers": {"min": 0, "max": 3, "idleTimeout": 5}}
    assert after["gpuIds"] == "AMPERE_24,-NVIDIA GeForce RTX 3090,-NVIDIA RTX A5000"


def test_without_the_ledger_a_rerun_finds_everything_by_name(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator
) -> None:
    cli("deploy")
    shutil.rmtree(reference / ".rpdeploy")
    runpod_emulator.requests.clear()
    cli("deploy")
    state = runpod_emulator.state.snapshot()
    assert len(state["templates"]) == 1 and len(state["endpoints"]) == 1
    assert mutations(runpod_emulator) == []


def test_a_failed_stage_is_named_and_the_next_run_resumes_there(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, runpod_api: str
) -> None:
    if runpod_api == "graphql":
        runpod_emulator.faults.graphql_errors(count=1, operation="SaveEndpoint", message="Something went wrong.")
    else:
        runpod_emulator.faults.rest_errors(status=400, operation="createEndpoint", message="Something went wrong.")
    result = cli("deploy", expected_code=7)
    assert "stage 'endpoint' failed" in result.stderr and "Something went wrong." in result.stderr
    ledger = _ledger(reference)
    assert ledger.stages["endpoint"].status == "failed"
    assert ledger.stages["template"].status == "done"
    events = _events(cli("deploy", "--json").stdout)
    statuses = _statuses(events)
    assert [statuses[s] for s in METHOD1_STAGES] == ["skipped", "skipped", "skipped", "done", "done"]
    assert len(runpod_emulator.state.snapshot()["endpoints"]) == 1


def test_a_failing_smoke_test_fails_the_deploy_with_exit_10(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator
) -> None:
    runpod_emulator.faults.job_fail(message="CUDA out of memory", count=1)
    result = cli("deploy", expected_code=10)
    assert "stage 'smoke-test' failed" in result.stderr and "CUDA out of memory" in result.stderr
    events = _events(cli("deploy", "--json").stdout)
    assert _statuses(events)["smoke-test"] == "done"
    assert _statuses(events)["endpoint"] == "skipped"


def test_only_and_from(cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator) -> None:
    result = cli("deploy", "--only", "endpoint", expected_code=3)
    assert "has not run yet" in result.stderr
    cli("deploy")
    events = _events(cli("deploy", "--json", "--only", "smoke-test", "--force").stdout)
    statuses = _statuses(events)
    assert statuses["smoke-test"] == "done"
    events = _events(cli("deploy", "--json", "--from", "endpoint").stdout)
    assert _statuses(events)["endpoint"] == "skipped"  # unchanged: --from selects, it does not force
    assert "no such stage" in cli("deploy", "--from", "bogus", expected_code=3).stderr
    assert "does not apply" in cli("deploy", "--only", "build", expected_code=3).stderr


def test_a_second_deploy_waits_for_the_lock(cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator) -> None:
    with DeployLock(reference / ".rpdeploy", command="deploy"):
        result = cli("deploy", expected_code=12)
    assert "another rpdeploy process" in result.stderr
    cli("deploy")


def test_a_model_that_cannot_fit_stops_before_anything_is_created(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator
) -> None:
    config = reference / "deploy.yaml"
    config.write_text(config.read_text().replace("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-32B-Instruct"))
    result = cli("deploy", expected_code=11)
    assert "stage 'gpu' failed" in result.stderr and "--skip-fit-check" in result.stderr
    assert list(runpod_emulator.requests) == []
    cli("deploy", "--skip-fit-check")
    assert len(runpod_emulator.state.snapshot()["endpoints"]) == 1


def test_plan_shows_pending_changes_and_sends_no_mutation(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, runpod_api: str
) -> None:
    first = json.loads(cli("plan", "--json").stdout)
    assert first["changes_pending"] is True
    kinds = [op["kind"] for op in first["operations"]]
    assert kinds == (["create-template", "create-endpoint"] if runpod_api == "graphql" else ["create-endpoint"])
    cli("plan", "--detailed-exitcode", expected_code=20)
    assert mutations(runpod_emulator) == []

    cli("deploy")
    assert json.loads(cli("plan", "--json").stdout)["changes_pending"] is False
    cli("plan", "--detailed-exitcode")
    config = reference / "deploy.yaml"
    config.write_text(config.read_text().replace("workers_max: 2", "workers_max: 4"))
    plan = json.loads(cli("plan", "--json").stdout)
    [operation] = plan["operations"]
    assert operation["kind"] == "update-endpoint"
    assert operation["changes"] == [{"field": "workers_max", "old": 2, "new": 4}]
    text = cli("plan").stdout
    assert "workers_max: 2 -> 4" in text and "Changes pending." in text


def test_status_shows_stages_and_live_health(cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator) -> None:
    cli("deploy")
    status = json.loads(cli("status", "--json").stdout)
    assert {s["name"]: s["status"] for s in status["stages"]} == dict.fromkeys(METHOD1_STAGES, "done")
    assert status["health"]["jobs"]["completed"] >= 1
    assert "Endpoint" in cli("status").stdout


def test_destroy_removes_everything_and_is_idempotent(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, runpod_api: str
) -> None:
    config = reference / "deploy.yaml"
    config.write_text(config.read_text().replace("workers_min: 0", "workers_min: 1"))
    cli("deploy", "--yes")
    assert cli("destroy", expected_code=3, env={"CI": "true"}).exit_code == 3  # no confirmation in CI
    runpod_emulator.requests.clear()
    document = json.loads(cli("destroy", "--yes", "--json").stdout)
    state = runpod_emulator.state.snapshot()
    assert state["endpoints"] == [] and state["templates"] == []
    sent = mutations(runpod_emulator)
    if runpod_api == "graphql":
        assert document["done"][0].startswith("scale-to-zero")
        # Scale to zero, delete, then the template, asked again while RunPod holds it (0.3 s here).
        assert sent[:3] == ["SaveEndpoint", "DeleteEndpoint", "DeleteTemplate"]
        assert set(sent[3:]) <= {"DeleteTemplate"}
    else:
        # v2 deletes the endpoint with its template, and terminates its workers itself.
        assert [d.split(" ")[0] for d in document["done"]] == ["delete-endpoint"]
        assert sent == ["deleteEndpoint"]
    assert json.loads(cli("destroy", "--yes", "--json").stdout)["done"] == []
    cli("deploy", "--yes")  # and it can be deployed again
    assert len(runpod_emulator.state.snapshot()["endpoints"]) == 1


def test_always_on_workers_need_a_confirmation(cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator) -> None:
    config = reference / "deploy.yaml"
    config.write_text(config.read_text().replace("workers_min: 0", "workers_min: 1"))
    result = cli("deploy", expected_code=3, env={"CI": "true"})
    assert "workers_min > 0" in result.stderr and "--yes" in result.stderr
    assert list(runpod_emulator.requests) == []


def test_deploy_with_a_throwaway_emulator(cli: CliRunnerFn, reference: Path) -> None:
    result = cli("deploy", "--emulator")
    assert "Deployed 'qwen25-7b-instruct'" in result.stdout
    assert (reference / ".rpdeploy" / "emulator" / "state.json").exists()
    assert not (reference / ".rpdeploy" / "state.json").exists()


def test_status_lists_workers_and_the_rollout_and_logs_show_the_cold_start(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, runpod_api: str
) -> None:
    cli("deploy")  # the smoke test starts a worker (workers min 0: it stays idle a while)
    status = json.loads(cli("status", "--json").stdout)
    fleet = status["fleet"]
    [worker] = fleet["workers"]
    assert worker["gpu_type"] == "NVIDIA L4" and worker["status"] in ("IDLE", "RUNNING")
    assert worker["data_center"] and worker["is_stale"] is False and worker["version"] == fleet["endpoint_version"]
    assert fleet["release"]["version"] == fleet["endpoint_version"] and fleet["rollout"]["in_progress"] is False
    text = cli("status").stdout
    assert f"    {worker['id']}" in text and "rollout: done: 1 of 1 worker(s) on the latest version" in text

    lines = [json.loads(line) for line in cli("logs", "--json").stdout.splitlines()]
    assert {line["worker"] for line in lines} == {worker["id"]}
    said = [line["line"] for line in lines]
    assert said[:3] == [
        f"worker {worker['id']} assigned to a NVIDIA L4 host in {worker['data_center']}",
        "pulling image runpod/worker-v1-vllm:v2.25.2",
        "cold start: Qwen/Qwen2.5-7B-Instruct",
    ]
    assert any(s.startswith("Worker ready (cold start ") for s in said)
    assert any(s.endswith(" started") for s in said)  # the smoke test's jobs
    recent = cli("logs", "--worker", worker["id"], "--since", "1h", "--tail", "2").stdout.splitlines()
    assert len(recent) == len(said)  # --since wins over --tail (v2: since overrides tail)
    missing = cli("logs", "--worker", "nosuchworker00", expected_code=7)
    assert "no worker nosuchworker00" in missing.stderr
    # Read over REST v2 whichever API deploy.yaml picks (the key is the same).
    assert [r for r in runpod_emulator.requests if r.operation == "listEndpointWorkers"]


def _set_api(config: Path, api: str) -> None:
    import yaml

    data = yaml.safe_load(config.read_text())
    data.setdefault("runpod", {})["api"] = api
    config.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize("first, then", [("graphql", "rest"), ("rest", "graphql")])
def test_switching_the_api_finds_and_keeps_the_same_endpoint(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, runpod_api: str, first: str, then: str
) -> None:
    if runpod_api != first:
        pytest.skip("deploy.yaml picks the API here; one run per order is enough")
    config = reference / "deploy.yaml"
    _set_api(config, first)
    cli("deploy")
    [endpoint] = runpod_emulator.state.snapshot()["endpoints"]

    _set_api(config, then)
    runpod_emulator.requests.clear()
    events = _events(cli("deploy", "--json").stdout)
    # The RunPod stages run again (their inputs name the API), find the same endpoint, change nothing.
    assert _statuses(events)["endpoint"] == "done" and events[-1]["endpoint_id"] == endpoint["id"]
    if then == "rest":
        assert mutations(runpod_emulator) == []
    else:
        # GraphQL keeps the endpoint's own template (v2 named it after the endpoint): renamed, not replaced.
        assert mutations(runpod_emulator) == ["SaveTemplate"]
        [renamed] = runpod_emulator.state.snapshot()["templates"]
        assert renamed["name"] == "qwen25-7b-instruct-template" and renamed["id"] == endpoint["templateId"]
    state = runpod_emulator.state.snapshot()
    assert [e["id"] for e in state["endpoints"]] == [endpoint["id"]] and len(state["templates"]) == 1
    assert state["endpoints"][0]["templateId"] == endpoint["templateId"]

    _set_api(config, first)  # and back: the same endpoint, nothing to send
    runpod_emulator.requests.clear()
    events = _events(cli("deploy", "--json").stdout)
    assert events[-1]["endpoint_id"] == endpoint["id"] and mutations(runpod_emulator) == []
    assert [e["id"] for e in runpod_emulator.state.snapshot()["endpoints"]] == [endpoint["id"]]


def test_rollback_puts_the_previous_image_back_in_place(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, runpod_api: str
) -> None:
    """Method 2 without a build: the endpoint runs image B, the history says A came before it."""
    from tests.test_smoke import write_config

    write_config(project, 2)
    a, b = (f"registry.example/acme/qwen-worker@sha256:{c * 64}" for c in "ab")
    created = json.loads(cli("endpoint", "create", "--image", b, "--json").stdout)["endpoint"]
    ledger = _ledger(project)
    common = {"method": "custom-handler", "template_id": created["template_id"], "endpoint_id": created["endpoint_id"]}
    ledger.history = [{"at": 1.0, "image": a, **common}, {"at": 2.0, "image": b, **common}]
    ledger.save()
    [before] = runpod_emulator.state.snapshot()["endpoints"]
    runpod_emulator.requests.clear()

    done = json.loads(cli("rollback", "--yes", "--json").stdout)

    assert (done["image"], done["previous_image"]) == (b, a)
    [after] = runpod_emulator.state.snapshot()["endpoints"]
    template = next(t for t in runpod_emulator.state.snapshot()["templates"] if t["id"] == after["templateId"])
    assert after["id"] == before["id"] and template["imageName"] == a
    assert after["version"] == before["version"] + 1  # a new release of the same endpoint
    if runpod_api == "graphql":
        assert mutations(runpod_emulator) == ["SaveTemplate"]
    else:
        # v2: the image goes back on the endpoint itself with the release it makes (the env's
        # RPDEPLOY_RELEASE; the rest of the env as it was), and nothing else is sent.
        assert mutations(runpod_emulator) == ["updateEndpoint"]
        [patch] = [r for r in runpod_emulator.requests if r.operation == "updateEndpoint"]
        assert set(patch.body) == {"image", "env"} and patch.body["image"] == a
        env_before = {item["key"]: item["value"] for item in before["env"]}
        assert {k: v for k, v in patch.body["env"].items() if k != "RPDEPLOY_RELEASE"} == {
            k: v for k, v in env_before.items() if k != "RPDEPLOY_RELEASE"
        }
        assert patch.body["env"]["RPDEPLOY_RELEASE"].startswith("rel-aaaaaaaaaaaa-")
    assert _ledger(project).extra["rolled_back"]["to"] == a
