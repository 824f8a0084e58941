"""Rolling releases: a template update replaces workers while the old ones serve on (emulator/rolling.py).

RunPod's documented behaviour (docs serverless/endpoints/rolling-releases.mdx): the endpoint
keeps taking requests, old workers are replaced, new requests go to new workers "when
available", and there is a short overlap in which old and new versions both answer.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from emulator_support import MODEL, OWN_IMAGE, Api

from rpdeploy.emulator import Emulator

OLD, NEW = "rel-000000000001-aaaaaaaaaaaa", "rel-000000000002-bbbbbbbbbbbb"
ROLLOUT = "query r($id: String!) { myself { endpoint(id: $id) { version pods { id desiredStatus slsVersion } } } }"


def _env(release: str) -> list[dict[str, str]]:
    return [{"key": "MODEL_NAME", "value": MODEL}, {"key": "RPDEPLOY_RELEASE", "value": release}]


def _answered_by(api: Api, endpoint_id: str) -> str:
    response = api.invoke("POST", endpoint_id, "runsync", json={"input": {"prompt": "Hi"}})
    body: dict[str, Any] = response.json()
    assert body["status"] == "COMPLETED", body
    return str(body["output"][-1]["release"])


def _warm(api: Api, emulator: Emulator, release: str, **endpoint: Any) -> tuple[str, str]:
    """An endpoint of ``release`` with one ready worker; (endpoint id, template id)."""
    template = api.template(name="rolling", imageName=OWN_IMAGE, env=_env(release))
    endpoint_id = api.endpoint(template_id=template["id"], name="rolling", workersMin=1, **endpoint)["id"]
    assert _answered_by(api, endpoint_id) == release
    return endpoint_id, template["id"]


def _update(api: Api, template_id: str, release: str) -> None:
    api.template(id=template_id, name="rolling", imageName=OWN_IMAGE, env=_env(release))


def test_old_workers_answer_until_the_new_release_is_ready(api: Api, emulator: Emulator) -> None:
    endpoint_id, template_id = _warm(api, emulator, OLD)
    emulator.faults.cold_start(1.0, endpoint_id=endpoint_id)

    _update(api, template_id, NEW)
    started = time.monotonic()
    answers = []
    while (release := _answered_by(api, endpoint_id)) != NEW:
        answers.append(release)
        assert time.monotonic() - started < 5, answers
        time.sleep(0.1)
    drained = time.monotonic() - started

    # The warm worker of the old release answered while the new one started (1 s), then left.
    assert answers and set(answers) == {OLD}
    assert 0.8 <= drained < 3
    rollout = api.gql(ROLLOUT, {"id": endpoint_id}).ok()["myself"]["endpoint"]
    assert rollout["version"] == 1
    assert [pod["slsVersion"] for pod in rollout["pods"]] == [1]


def test_the_rollout_is_visible_in_graphql_while_it_happens(api: Api, emulator: Emulator) -> None:
    endpoint_id, template_id = _warm(api, emulator, OLD)
    emulator.faults.cold_start(30.0, endpoint_id=endpoint_id)

    _update(api, template_id, NEW)
    rollout = api.gql(ROLLOUT, {"id": endpoint_id}).ok()["myself"]["endpoint"]
    assert rollout["version"] == 1
    assert sorted(pod["slsVersion"] for pod in rollout["pods"]) == [0, 1]  # the old one and its replacement
    assert emulator.fleet.health(emulator.state.endpoints[endpoint_id])["workers"]["initializing"] == 1


def test_a_release_that_cannot_start_leaves_the_old_workers_answering(api: Api, emulator: Emulator) -> None:
    endpoint_id, template_id = _warm(api, emulator, OLD)
    emulator.faults.release_start_fail(endpoint_id=endpoint_id)

    _update(api, template_id, NEW)
    time.sleep(0.5)  # well past the 0.1 s cold start: the new worker's start has failed
    health = api.invoke("GET", endpoint_id, "health").json()
    assert health["workers"]["unhealthy"] == 1 and health["workers"]["idle"] == 1
    for _ in range(3):
        assert _answered_by(api, endpoint_id) == OLD

    # Once the release can start, the next replacement takes over.
    emulator.faults.clear("release_start_fail")
    deadline = time.monotonic() + 10
    while _answered_by(api, endpoint_id) != NEW:
        assert time.monotonic() < deadline, api.invoke("GET", endpoint_id, "health").json()
        time.sleep(0.2)
    pods = api.gql(ROLLOUT, {"id": endpoint_id}).ok()["myself"]["endpoint"]["pods"]
    assert [pod["slsVersion"] for pod in pods] == [1]


def test_old_workers_leave_after_the_grace_even_without_a_replacement() -> None:
    with Emulator("rpa_TEST_release_key_000000000000", cold_start=0.1, runsync_wait=2.0) as emu:
        emu.fleet.config = dataclasses.replace(emu.fleet.config, stale_grace=0.5)
        client = Api(emu)
        try:
            endpoint_id, template_id = _warm(client, emu, OLD)
            emu.faults.release_start_fail(endpoint_id=endpoint_id)
            _update(client, template_id, NEW)
            time.sleep(0.8)
            workers = emu.state.snapshot()["endpoints"][0]["workers"]
            assert [w["release"] for w in workers] == [NEW] and workers[0]["status"] == "unhealthy"
        finally:
            client.close()


def test_a_scaling_change_is_no_new_release(api: Api, emulator: Emulator) -> None:
    endpoint_id, template_id = _warm(api, emulator, OLD, workersMax=2)
    before = emulator.state.snapshot()["endpoints"][0]["workers"]

    api.save_endpoint(
        id=endpoint_id, name="rolling", templateId=template_id, gpuIds="AMPERE_24", workersMin=1, workersMax=3
    )

    after = emulator.state.snapshot()["endpoints"][0]
    assert after["version"] == 0 and [w["id"] for w in after["workers"]] == [w["id"] for w in before]
    assert _answered_by(api, endpoint_id) == OLD
