"""The emulator's cached models, account secrets and cold starts by where the weights come from.

Everything over real HTTP: GraphQL as RunPod's clients send it, jobs through the invoke API;
a cold start is read from the job's ``delayTime`` (the simulation is event-driven, so it is
exact).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from emulator_support import API_KEY, MODEL, OWN_IMAGE, Api

from rpdeploy.emulator import Emulator
from rpdeploy.emulator.coldstart import model_bytes
from rpdeploy.preflight import cost

REFERENCE = f"https://huggingface.co/{MODEL}:main"
SECRET_CREATE = "mutation($input: SecretCreateInput!) { secretCreate(input: $input) { id name description } }"
SECRET_VALUE_UPDATE = "mutation($input: SecretValueUpdateInput!) { secretValueUpdate(input: $input) { id name } }"
SECRET_DELETE = "mutation($id: ID!) { secretDelete(id: $id) }"
SECRETS = "query { myself { secrets { id name createdAt updatedAt } } }"
TOKEN = "hf_EMULATED_secret_value_51d0c2"


# --- cached models (modelReferences) ----------------------------------------------------------


def test_a_model_reference_comes_back_resolved_to_a_commit(api: Api) -> None:
    endpoint = api.endpoint(modelReferences=[REFERENCE])
    [resolved] = endpoint["modelReferences"]
    repo, _, commit = resolved.rpartition(":")
    # runpodctl's live test: ":main" must come back as a commit sha (e2e/cli_test.go).
    assert repo == f"https://huggingface.co/{MODEL}" and len(commit) == 40 and int(commit, 16) >= 0
    pinned = "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct:" + "7" * 40
    other = api.endpoint(name="pinned", modelReferences=[pinned])
    assert other["modelReferences"] == [pinned]


def test_an_update_keeps_changes_and_clears_the_references_as_sent(api: Api) -> None:
    endpoint = api.endpoint(modelReferences=[REFERENCE])
    base = {"id": endpoint["id"], "name": endpoint["name"], "gpuIds": "AMPERE_24", "workersMax": 2}
    kept = api.save_endpoint(**base).ok()["saveEndpoint"]  # left out: kept, no new release
    assert kept["modelReferences"] == endpoint["modelReferences"] and kept["version"] == endpoint["version"]
    same = api.save_endpoint(**base, modelReferences=[REFERENCE]).ok()["saveEndpoint"]
    assert same["modelReferences"] == endpoint["modelReferences"] and same["version"] == endpoint["version"]
    cleared = api.save_endpoint(**base, modelReferences=[]).ok()["saveEndpoint"]
    # `[]` clears them and rolls the workers (runpod-mcp endpoint-gpu-ids.ts).
    assert cleared["modelReferences"] == [] and cleared["version"] == endpoint["version"] + 1


@pytest.mark.parametrize(
    ("references", "extra", "message"),
    [
        (
            [REFERENCE, "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct:main"],
            {},
            "Each endpoint is currently limited to one cached model at a time",
        ),
        (["Qwen/Qwen2.5-7B-Instruct"], {}, "Invalid model reference 'Qwen/Qwen2.5-7B-Instruct'"),
        (["https://example.com/Qwen/x:main"], {}, "expected https://huggingface.co/<org>/<model>:<ref>"),
        ([REFERENCE], {"instanceIds": ["cpu3g-4-16"], "gpuIds": ""}, "only supported on GPU endpoints"),
    ],
    ids=["two models", "no url", "not the hub", "cpu endpoint"],
)
def test_model_references_are_checked(api: Api, references: list[str], extra: dict[str, Any], message: str) -> None:
    template = api.template(name="t-refs")
    fields = {"name": "refs", "templateId": template["id"], "gpuIds": "AMPERE_24", **extra}
    answer = api.save_endpoint(**fields, modelReferences=references)
    assert answer.status == 200 and message in answer.message
    assert api.emulator.state.snapshot()["endpoints"] == []


# --- account secrets ----------------------------------------------------------------------------


def test_secrets_are_write_only(api: Api, emulator: Emulator) -> None:
    created = api.gql(SECRET_CREATE, {"input": {"name": "hf_token", "value": TOKEN, "description": "HF"}}).ok()
    secret = created["secretCreate"]
    assert secret["name"] == "hf_token" and secret["description"] == "HF" and secret["id"]
    # The Secret type has no value field: asking for one fails validation, as on RunPod.
    asked = api.gql("query { myself { secrets { id value } } }")
    assert asked.status == 400 and "Cannot query field 'value'" in asked.message
    [listed] = api.gql(SECRETS).ok()["myself"]["secrets"]
    assert listed["id"] == secret["id"] and listed["updatedAt"] is None
    duplicate = api.gql(SECRET_CREATE, {"input": {"name": "hf_token", "value": "other"}})
    assert "Secret name must be unique" in duplicate.message

    updated = api.gql(SECRET_VALUE_UPDATE, {"input": {"id": secret["id"], "value": TOKEN + "-2"}}).ok()
    assert updated["secretValueUpdate"]["name"] == "hf_token"
    with emulator.state.lock:
        assert emulator.state.secrets[secret["id"]].value == TOKEN + "-2"
    # Neither the admin API's state nor its request answers carry a value.
    snapshot = json.dumps(emulator.state.snapshot())
    assert "hf_token" in snapshot and TOKEN not in snapshot
    missing = api.gql(SECRET_VALUE_UPDATE, {"input": {"id": "nope", "value": "x"}})
    assert "Secret nope not found" in missing.message

    assert api.gql(SECRET_DELETE, {"id": secret["id"]}).ok() == {"secretDelete": None}
    assert api.gql(SECRETS).ok()["myself"]["secrets"] == []
    assert "not found" in api.gql(SECRET_DELETE, {"id": secret["id"]}).message


def test_a_worker_starts_with_the_secret_references_replaced(api: Api, emulator: Emulator) -> None:
    secret_id = api.gql(SECRET_CREATE, {"input": {"name": "hf_token", "value": TOKEN}}).ok()["secretCreate"]["id"]
    env = [
        {"key": "MODEL_NAME", "value": MODEL},
        {"key": "HUGGING_FACE_HUB_TOKEN", "value": "{{ RUNPOD_SECRET_hf_token }}"},
    ]
    endpoint = api.endpoint(image=OWN_IMAGE, env=env, idleTimeout=1, workersMax=1)
    done = api.wait_done(endpoint["id"], api.run(endpoint["id"], {"prompt": "hi"}))
    assert done["status"] == "COMPLETED"
    with emulator.state.lock:
        [worker] = emulator.state.endpoints[endpoint["id"]].workers
        assert worker.env["HUGGING_FACE_HUB_TOKEN"] == TOKEN and worker.env["MODEL_NAME"] == MODEL
        template = emulator.state.templates[endpoint["templateId"]]
        assert template.env_dict()["HUGGING_FACE_HUB_TOKEN"] == "{{ RUNPOD_SECRET_hf_token }}"
    assert TOKEN not in json.dumps(emulator.state.snapshot())

    # A worker that starts after the secret is gone cannot run its jobs (docs secrets.mdx:
    # deleting a secret in use "will cause those deployments to fail").
    api.gql(SECRET_DELETE, {"id": secret_id}).ok()
    _until(lambda: not emulator.state.snapshot()["endpoints"][0]["workers"], timeout=5)
    failed = api.wait_done(endpoint["id"], api.run(endpoint["id"], {"prompt": "hi"}))
    assert failed["status"] == "FAILED" and "secrets that do not exist: hf_token" in failed["error"]


# --- cold starts by where the weights come from ---------------------------------------------------

BASE = 0.05
SCALE = 0.004  # 1/250 of RunPod's speed: a 7B download takes 0.33 s here


@pytest.fixture
def timed() -> Iterator[Api]:
    with Emulator(API_KEY, cold_start=BASE, weights_scale=SCALE, execution_time=0.01, runsync_wait=2.0) as emu:
        client = Api(emu)
        yield client
        client.close()


def _cold_start(api: Api, endpoint_id: str) -> float:
    done = api.wait_done(endpoint_id, api.run(endpoint_id, {"prompt": "hi"}), timeout=10)
    assert done["status"] == "COMPLETED", done
    return float(done["delayTime"]) / 1000


def _weights(api: Api, endpoint_id: str) -> str:
    with api.emulator.state.lock:
        return api.emulator.state.endpoints[endpoint_id].workers[-1].weights


def test_the_cold_start_depends_on_where_the_weights_come_from(timed: Api) -> None:
    weights = model_bytes(MODEL)
    assert weights == pytest.approx(15.23e9, rel=0.01)  # Qwen2.5-7B in bf16, from the built-in table
    load = weights / cost.LOAD_BYTES_PER_SECOND
    download = weights / cost.HUB_DOWNLOAD_BYTES_PER_SECOND
    volume = timed.emulator.state.add_network_volume("models", size=100)

    cached = timed.endpoint(name="cached", modelReferences=[REFERENCE])
    hub = timed.endpoint(name="download")
    baked = timed.endpoint(
        name="baked",
        image=OWN_IMAGE,
        env=[{"key": "MODEL_NAME", "value": MODEL}, {"key": "MODEL_PATH", "value": "/models/model"}],
    )
    on_volume = timed.endpoint(
        name="volume", networkVolumeIds=[{"networkVolumeId": volume.id}], idleTimeout=1, workersMax=1
    )

    seconds = {
        "cached": _cold_start(timed, cached["id"]),
        "download": _cold_start(timed, hub["id"]),
        "bake": _cold_start(timed, baked["id"]),
        "volume, first": _cold_start(timed, on_volume["id"]),
    }
    # The first worker is gone after its idle timeout; the next one finds the model on the volume.
    _until(lambda: not timed.emulator.state.endpoints[on_volume["id"]].workers, timeout=5)
    seconds["volume, later"] = _cold_start(timed, on_volume["id"])
    assert _weights(timed, cached["id"]) == "cached" and _weights(timed, hub["id"]) == "download"
    assert _weights(timed, baked["id"]) == "bake" and _weights(timed, on_volume["id"]) == "network-volume"

    read = weights / cost.VOLUME_READ_BYTES_PER_SECOND
    expected = {
        "cached": BASE + SCALE * load,
        "download": BASE + SCALE * (download + load),
        "bake": BASE + SCALE * (weights / cost.IMAGE_PULL_BYTES_PER_SECOND + load),
        "volume, first": BASE + SCALE * (download + read),
        "volume, later": BASE + SCALE * read,
    }
    for name, value in expected.items():
        assert seconds[name] == pytest.approx(value, abs=0.005), (name, seconds)
    assert seconds["cached"] < seconds["volume, later"] < seconds["download"] < seconds["bake"]


def test_a_download_takes_time_in_proportion_to_the_models_size(timed: Api) -> None:
    small_model = "Qwen/Qwen2.5-0.5B-Instruct"
    big = timed.endpoint(name="big")
    small = timed.endpoint(name="small", env=[{"key": "MODEL_NAME", "value": small_model}])
    extra_big = _cold_start(timed, big["id"]) - BASE
    extra_small = _cold_start(timed, small["id"]) - BASE
    assert extra_big / extra_small == pytest.approx(model_bytes(MODEL) / model_bytes(small_model), rel=0.05)


def test_without_a_weights_scale_every_worker_takes_the_cold_start(api: Api) -> None:
    # The default: timings stay what tests set (0.1 s here), whatever the model and strategy.
    assert _cold_start(api, api.endpoint(name="plain")["id"]) == pytest.approx(0.1, abs=0.002)


def _until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)
