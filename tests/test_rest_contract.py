"""REST v2 against RunPod's OpenAPI document: the validator is live, the client's requests match
it, the emulator's v2 shares its account with GraphQL, and GraphQL's retirement is handled.

The document (``rpdeploy/runpod/openapi-v2.json``) is RunPod's own; openapi-core checks
requests and answers against it (``tests/support/openapi_check.py``). Every test that uses the
``runpod_emulator`` fixture has all its REST exchanges checked that way; these tests show the
check would catch a wrong one.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from rpdeploy.deploy.ledger import Ledger
from rpdeploy.emulator import Emulator
from rpdeploy.preflight.gpus import GpuSelection
from rpdeploy.runpod.models import EndpointSpec, EnvVar, TemplateSpec
from rpdeploy.runpod.rest import RestControlPlane, endpoint_create_body, endpoint_patch_body
from rpdeploy.secrets import Secret
from tests.conftest import ROOT, CliRunnerFn, mutations
from tests.support.openapi_check import DOCUMENT, RestChecker, check_request, check_sse_events

KEY = "rpa_TEST_emulator_key_0123456789"
L4 = GpuSelection(frozenset({"AMPERE_24"}), frozenset({"NVIDIA RTX A5000", "NVIDIA GeForce RTX 3090"}))
CONTAINER = TemplateSpec(
    name="",
    image="runpod/worker-v1-vllm:v2.25.2",
    env=(EnvVar("MODEL_NAME", "Qwen/Qwen2.5-0.5B-Instruct"), EnvVar("RPDEPLOY_DEPLOYMENT", "d1")),
    container_disk_gb=20,
)
SPEC = EndpointSpec(
    name="contract",
    template_id="",
    gpus=L4,
    gpu_count=1,
    workers_min=0,
    workers_max=2,
    idle_timeout=5,
    scaler_type="QUEUE_DELAY",
    scaler_value=4,
    flashboot=True,
    execution_timeout_ms=600_000,
    allowed_cuda_versions=("13.0",),
    locations=(),
    container=CONTAINER,
)
JSON = {"content-type": "application/json", "authorization": "Bearer <masked>"}


def _post(path: str, body: object) -> str | None:
    return check_request("POST", path, "", JSON, json.dumps(body).encode())


# --- the document and the validator ---------------------------------------------------------------


def test_the_committed_document_is_runpods() -> None:
    """rpdeploy/runpod/openapi-v2.json is the shared reference copy, byte for byte."""
    for folder in (ROOT.parent, ROOT.parent.parent):
        reference = folder / "shared" / "reference" / "runpod-openapi-v2.json"
        if reference.exists():
            assert DOCUMENT.read_bytes() == reference.read_bytes()
            break
    else:
        pytest.skip("no shared/reference beside the repository to compare with")
    document = json.loads(DOCUMENT.read_text())
    assert document["openapi"] == "3.1.0" and "/v2/serverless/{id}/workers/{workerId}/logs" in document["paths"]


def test_the_validator_catches_a_wrong_field_in_a_request() -> None:
    body = endpoint_create_body(SPEC)
    assert _post("/v2/serverless", body) is None  # what the client sends is valid...
    for wrong, word in (
        ({**body, "gpuIds": "AMPERE_24"}, "gpuIds"),  # GraphQL's name: v2 has unevaluatedProperties: false
        ({**body, "workers": {"min": 0, "max": 2, "workersMax": 2}}, "workersMax"),
        ({**body, "gpu": {**body["gpu"], "excludedTypes": ["-NVIDIA RTX A5000"]}}, "excludedTypes"),
    ):
        found = _post("/v2/serverless", wrong)
        assert found is not None and word in found, found  # ...and a wrong one is not
    missing = {key: value for key, value in body.items() if key != "scaling"}
    assert "scaling" in (_post("/v2/serverless", missing) or "")


def test_the_validator_catches_a_wrong_answer() -> None:
    """A response missing a required field, or with a wrong type, is a finding."""
    from rpdeploy.emulator.server import Exchange

    checker = RestChecker()
    good = {"endpoints": []}
    for body in (good, {"endpoints": [{"id": "x", "name": "n"}]}, {"endpoints": "none"}):
        checker(
            Exchange("GET", "/v2/serverless", "", dict(JSON), b"", 200, {"Content-Type": "application/json"},
                     json.dumps(body).encode())
        )  # fmt: skip
    assert checker.checked == 3 and len(checker.problems) == 2
    assert "required" in checker.problems[0] and "createdAt" in checker.problems[0]


def test_every_body_the_client_builds_matches_the_document() -> None:
    created = endpoint_create_body(SPEC)
    assert _post("/v2/serverless", created) is None
    from rpdeploy.runpod.rest import endpoint_from_rest

    live = endpoint_from_rest({**created, "id": "ep1", "dataCenterIds": [], "networkVolumes": [], "createdAt": "x"})
    for changed in (
        replace(SPEC, workers_max=3),
        replace(SPEC, gpus=GpuSelection(frozenset({"ADA_24"}), frozenset())),
        replace(SPEC, container=replace(CONTAINER, image="other:1", env=(EnvVar("A", "b"),))),
        replace(SPEC, scaler_type="REQUEST_COUNT", scaler_value=2),
        replace(SPEC, locations=("EU-RO-1",), flashboot=False, execution_timeout_ms=30_000),
    ):
        patch = endpoint_patch_body(live, changed)
        assert patch, changed
        found = check_request("PATCH", "/v2/serverless/ep1", "", JSON, json.dumps(patch).encode())
        assert found is None, (patch, found)
        if "gpu" in patch:
            assert "excludedTypes" in patch["gpu"]  # pools alone would clear the exclusions
    assert endpoint_patch_body(live, SPEC) == {}  # nothing changed: nothing to send


# --- the emulator's v2 ----------------------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    checker = RestChecker()
    with Emulator(KEY, cold_start=0.1, execution_time=0.05, runsync_wait=2.0) as emu:
        emu.rest_observer = checker
        yield emu
    checker.assert_clean()


@pytest.fixture
def rest(emulator: Emulator) -> Iterator[RestControlPlane]:
    with RestControlPlane(Secret(KEY, "test"), api_url=emulator.api_url) as cp:
        yield cp


def test_a_wrong_field_sent_to_the_emulator_is_a_422_in_runpods_words(emulator: Emulator) -> None:
    body = {**endpoint_create_body(SPEC), "bogus": 1}
    answer = httpx.post(f"{emulator.api_url}/v2/serverless", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json() == {
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "Request validation failed.",
        "errors": ["$: additional properties 'bogus' not allowed"],
    }
    assert emulator.state.snapshot()["endpoints"] == []
    keyless = httpx.get(f"{emulator.api_url}/v2/serverless")
    assert keyless.status_code == 401 and keyless.json()["detail"] == "missing bearer token"
    wrong = httpx.get(f"{emulator.api_url}/v2/serverless", params={"api_key": KEY})
    assert wrong.status_code == 401  # v2 takes the key in the header only


def test_one_account_two_apis(emulator: Emulator, rest: RestControlPlane) -> None:
    from rpdeploy.runpod.controlplane import GraphQLControlPlane

    made = rest.create_endpoint(SPEC)
    with GraphQLControlPlane(Secret(KEY, "test"), api_url=emulator.api_url) as graphql:
        [seen] = graphql.list_endpoints()
        [bound] = graphql.list_templates()
        # GraphQL sees the endpoint bound to a template that holds the container.
        assert seen.id == made.id and seen.template_id == bound.id and bound.image == CONTAINER.image
        assert bound.env_map()["RPDEPLOY_DEPLOYMENT"] == "d1" and seen.gpus == L4
        # A GraphQL endpoint shows its template's container over v2, and no template link.
        template = graphql.save_template(replace(CONTAINER, name="gql-template", image="acme/own:2"))
        other = graphql.create_endpoint(replace(SPEC, name="from-graphql", template_id=template.id, container=None))
    found = rest.get_endpoint(other.id)
    assert found is not None and found.template_id == "" and found.container is not None
    assert found.container.image == "acme/own:2" and found.container.env_map()["MODEL_NAME"] == CONTAINER.env[0].value
    # A PATCH of the container writes the endpoint's template (what GraphQL reads) and makes a release.
    patched = rest.update_endpoint(found, replace(SPEC, name="from-graphql", container=replace(CONTAINER, image="x:3")))
    assert patched.container is not None and patched.container.image == "x:3"
    assert emulator.state.templates[template.id].image_name == "x:3"
    history = rest.releases(other.id)
    assert history.latest is not None and ("image", "acme/own:2", "x:3") in history.latest.diff
    # Deleting over v2 deletes the endpoint's template too.
    rest.delete_endpoint(made.id)
    assert bound.id not in emulator.state.templates


def test_pools_without_exclusions_clear_them_as_v2_documents(emulator: Emulator, rest: RestControlPlane) -> None:
    made = rest.create_endpoint(SPEC)
    headers = {"Authorization": f"Bearer {KEY}"}
    answer = httpx.patch(f"{emulator.api_url}/v2/serverless/{made.id}", json={"gpu": {"pools": ["AMPERE_24"]}},
                         headers=headers)  # fmt: skip
    assert answer.status_code == 200 and answer.json()["gpu"]["excludedTypes"] == []
    # rpdeploy's client always restates them, so a PATCH keeps the pin.
    live = rest.get_endpoint(made.id)
    assert live is not None
    kept = rest.update_endpoint(live, SPEC)
    assert kept.gpus == L4
    bad = httpx.patch(f"{emulator.api_url}/v2/serverless/{made.id}",
                      json={"gpu": {"pools": ["AMPERE_24"], "excludedTypes": ["NVIDIA GeForce RTX 4090"]}},
                      headers=headers)  # fmt: skip
    assert bad.status_code == 400  # "not a GPU type in one of pools"


def test_worker_logs_stream_replay_and_resume(emulator: Emulator, rest: RestControlPlane) -> None:
    made = rest.create_endpoint(replace(SPEC, workers_min=1))
    deadline = time.monotonic() + 5
    while not [w for w in rest.workers(made.id).workers if w.status == "IDLE"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [worker] = rest.workers(made.id).workers
    assert worker.gpu_type == "NVIDIA L4" and not worker.is_stale and worker.data_center
    lines = list(rest.worker_logs(made.id, worker.id, tail=100))
    texts = [line.line for line in lines]
    assert texts[0].startswith(f"worker {worker.id} assigned to a NVIDIA L4 host")
    assert "pulling image runpod/worker-v1-vllm:v2.25.2" in texts  # the cold start is in the log
    assert any(t.startswith("Worker ready (cold start ") for t in texts)
    # tail, and Last-Event-ID resuming after a line (exclusive), over raw HTTP and SSE.
    url = f"{emulator.api_url}/v2/serverless/{made.id}/workers/{worker.id}/logs"
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.stream("GET", url, params={"tail": 2}, headers=headers, timeout=httpx.Timeout(5, read=0.5)) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
        text = ""
        try:
            for chunk in response.iter_text():
                text += chunk
        except httpx.ReadTimeout:
            pass
    assert check_sse_events(text) == [] and text.count("data: ") == 2
    resumed = list(rest.worker_logs(made.id, worker.id, tail=100, since=None))
    assert [line.line for line in resumed] == texts
    # The worker goes: so do its logs (docs serverless/development/logs.mdx).
    rest.update_endpoint(rest.get_endpoint(made.id) or made, replace(SPEC, workers_min=0, workers_max=0))
    from rpdeploy.runpod.rest import NotFound

    with pytest.raises(NotFound):
        list(rest.worker_logs(made.id, worker.id))


def _rolling_container(release: str, image: str = "runpod/worker-v1-vllm:v2.25.2") -> TemplateSpec:
    return replace(CONTAINER, image=image, env=(*CONTAINER.env, EnvVar("RPDEPLOY_RELEASE", release)))


def _wait_for(condition: object, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_rolling_release_is_seen_through_v2_workers_and_releases(emulator: Emulator, rest: RestControlPlane) -> None:
    """The emulator's rolling releases (emulator/rolling.py) as v2 reports them, every answer
    checked against RunPod's document: the old worker isStale until its replacement is ready."""
    made = rest.create_endpoint(replace(SPEC, workers_min=1, container=_rolling_container("rel-old")))
    _wait_for(lambda: [w for w in rest.workers(made.id).workers if w.status == "IDLE"], "a warm worker")
    [old] = rest.workers(made.id).workers
    emulator.faults.cold_start(30.0, endpoint_id=made.id)

    new_image = "runpod/worker-v1-vllm:v2.25.2-next"
    live = rest.get_endpoint(made.id) or made
    rest.update_endpoint(live, replace(SPEC, workers_min=1, container=_rolling_container("rel-new", new_image)))

    listed = rest.workers(made.id)
    by_id = {w.id: w for w in listed.workers}
    assert by_id[old.id].is_stale and by_id[old.id].status == "IDLE" and by_id[old.id].image == CONTAINER.image
    [fresh] = [w for w in listed.workers if w.id != old.id]
    assert not fresh.is_stale and fresh.status == "INITIALIZING" and fresh.image == new_image
    assert fresh.version == listed.endpoint_version == (old.version or 0) + 1
    history = rest.releases(made.id)
    assert history.rollout.in_progress and (history.rollout.workers_on_latest, history.rollout.workers_total) == (1, 2)
    assert history.latest is not None and history.latest.version == listed.endpoint_version
    assert history.latest.worker_count == 1 and ("image", CONTAINER.image, new_image) in history.latest.diff
    view = rest.rollout(made.id)  # what the deploy's endpoint check waits on under runpod.api: rest
    assert not view.done and [w.id for w in view.stale] == [old.id] and view.in_progress

    # The replacement is ready: the old worker goes, the rollout is over.
    emulator.faults.clear("cold_start")
    with emulator.state.lock:
        for worker in emulator.state.endpoints[made.id].workers:
            worker.ready_at = min(worker.ready_at, emulator.state.clock())
    _wait_for(lambda: rest.rollout(made.id).done, "the rollout to end")
    [only] = rest.workers(made.id).workers
    assert only.id == fresh.id and only.status == "IDLE" and not rest.releases(made.id).rollout.in_progress


def test_a_release_that_cannot_start_is_unhealthy_in_v2_with_its_log(
    emulator: Emulator, rest: RestControlPlane
) -> None:
    made = rest.create_endpoint(replace(SPEC, workers_min=1, container=_rolling_container("rel-old")))
    _wait_for(lambda: [w for w in rest.workers(made.id).workers if w.status == "IDLE"], "a warm worker")
    emulator.faults.release_start_fail(endpoint_id=made.id)
    live = rest.get_endpoint(made.id) or made
    rest.update_endpoint(live, replace(SPEC, workers_min=1, container=_rolling_container("rel-new")))

    def unhealthy() -> list[Any]:
        return [w for w in rest.workers(made.id).workers if w.status == "UNHEALTHY"]

    _wait_for(unhealthy, "the new release's worker to fail its start")
    listed = rest.workers(made.id)
    assert sorted((w.status, w.is_stale) for w in listed.workers) == [("IDLE", True), ("UNHEALTHY", False)]
    [failing] = unhealthy()
    texts = [line.line for line in rest.worker_logs(made.id, failing.id, tail=20)]
    assert "release rel-new" in texts and texts[-1] == "error: the worker failed to start: engine exited with code 1"
    assert not any(t.startswith("Worker ready") for t in texts)
    assert "1 of the current version unhealthy" in rest.rollout(made.id).describe()


def test_following_a_worker_reconnects_without_repeats_and_ends_when_it_stops(
    emulator: Emulator, rest: RestControlPlane
) -> None:
    import threading

    emulator.rest.stream_idle = 0.5  # the emulator closes a quiet stream; a follower reconnects
    made = rest.create_endpoint(replace(SPEC, workers_min=1))
    deadline = time.monotonic() + 5
    while not [w for w in rest.workers(made.id).workers if w.status == "IDLE"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [worker] = rest.workers(made.id).workers

    def later() -> None:
        time.sleep(0.8)
        httpx.post(f"{emulator.endpoint_url}/{made.id}/runsync", json={"input": {"prompt": "hi"}},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=10)  # fmt: skip
        time.sleep(1.2)  # past a reconnect
        live = rest.get_endpoint(made.id)
        assert live is not None
        rest.update_endpoint(live, replace(SPEC, workers_min=0, workers_max=0))  # the worker stops

    helper = threading.Thread(target=later)
    helper.start()
    started = time.monotonic()
    followed = list(rest.worker_logs(made.id, worker.id, follow=True))
    helper.join()
    assert time.monotonic() - started < 10
    texts = [line.line for line in followed]
    assert len(texts) == len(set((line.id, line.line) for line in followed))  # nothing twice
    assert texts[0].startswith(f"worker {worker.id} assigned") and any(" started" in t for t in texts)
    assert sum(1 for r in emulator.requests if r.operation == "getWorkerLogs") >= 3  # it reconnected


def test_the_invoke_api_keeps_its_v2_routes(emulator: Emulator, rest: RestControlPlane) -> None:
    made = rest.create_endpoint(SPEC)
    health = httpx.get(f"{emulator.endpoint_url}/{made.id}/health", headers={"Authorization": f"Bearer {KEY}"})
    assert health.status_code == 200 and "workers" in health.json()
    assert emulator.requests[-1].operation is None  # not a control-plane call


# --- GraphQL's retirement -------------------------------------------------------------------------


@pytest.fixture
def reference(project: Path) -> Path:
    shutil.copy(ROOT / "deploy.yaml", project / "deploy.yaml")
    return project


def test_a_retired_graphql_is_one_line_with_the_fix(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator
) -> None:
    runpod_emulator.faults.graphql_retired()
    result = cli("deploy", expected_code=7)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == ["Error: stage 'account' failed: RunPod's GraphQL API is retired (HTTP 410)"]
    assert "Hint: set `runpod.api: rest` in deploy.yaml (or RPDEPLOY_RUNPOD_API=rest)" in result.stderr


def test_under_rest_a_retired_graphql_degrades_with_warnings(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RPDEPLOY_RUNPOD_API", "rest")
    runpod_emulator.faults.graphql_retired()
    result = cli("deploy")
    assert "REST v2 has no account query" in result.stderr
    assert "REST v2 has no cached-model field" in result.stderr
    [endpoint] = runpod_emulator.state.snapshot()["endpoints"]
    assert endpoint["modelReferences"] == []  # could not be set: said so, not failed
    assert mutations(runpod_emulator) == ["createEndpoint"]
    assert all(r.status == 410 for r in runpod_emulator.requests.graphql())


def test_an_old_ledger_is_migrated_on_read(tmp_path: Path) -> None:
    folder = tmp_path / ".rpdeploy"
    folder.mkdir()
    gpu_ids = "AMPERE_24,-NVIDIA GeForce RTX 3090,-NVIDIA RTX A5000"
    (folder / "state.json").write_text(
        json.dumps(
            {
                "version": 1,
                "stages": {
                    "account": {"status": "done", "fingerprint": "f", "outputs": {"gpu_ids": gpu_ids}},
                    "gpu": {"status": "done", "fingerprint": "g", "outputs": {"gpu_ids": gpu_ids, "fit": "fits"}},
                    "endpoint": {"status": "done", "outputs": {"endpoint_id": "abc", "template_id": "t1"}},
                },
                "history": [{"image": "a", "template_id": "t1", "endpoint_id": "abc"}],
            }
        )
    )
    ledger = Ledger.load(folder)
    wanted = {"pools": ["AMPERE_24"], "excluded": ["NVIDIA GeForce RTX 3090", "NVIDIA RTX A5000"]}
    assert ledger.stages["account"].outputs == {"gpus": wanted}
    assert ledger.stages["gpu"].outputs == {"gpus": wanted, "fit": "fits"}
    assert ledger.output("endpoint", "endpoint_id") == "abc" and ledger.history[0]["endpoint_id"] == "abc"
    ledger.save()
    saved = json.loads((folder / "state.json").read_text())
    assert saved["version"] == 2 and "gpu_ids" not in json.dumps(saved)
    # A broken old one is still refused with the fix.
    (folder / "state.json").write_text(json.dumps({"version": 1, "stages": {"account": {"status": "done",
                                                   "outputs": {"gpu_ids": 5}}}}))  # fmt: skip
    from rpdeploy.errors import ConfigError

    with pytest.raises(ConfigError, match="gpu_ids"):
        Ledger.load(folder)
