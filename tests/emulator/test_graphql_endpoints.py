"""saveEndpoint / updateEndpointTemplate / deleteEndpoint and the catalogue queries."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

import pytest
from emulator_support import ENDPOINT_FIELDS, OWN_IMAGE, Api

from rpdeploy.emulator import Emulator
from rpdeploy.preflight import gpus


def test_create_returns_endpoint_with_defaults(api: Api, emulator: Emulator) -> None:
    template_id = api.template(name="t")["id"]

    endpoint = api.endpoint(template_id, name="qwen-l4", gpuIds="AMPERE_24,-NVIDIA RTX A5000,-NVIDIA GeForce RTX 3090")

    assert re.fullmatch(r"[a-z0-9]{14}", endpoint["id"])
    assert datetime.strptime(endpoint["createdAt"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", endpoint["createdAt"])
    expected = {
        "name": "qwen-l4",
        "templateId": template_id,
        "gpuIds": "AMPERE_24,-NVIDIA RTX A5000,-NVIDIA GeForce RTX 3090",
        "gpuCount": 1,
        # The schema's input default (RunPod's MCP measured 10; the console and SDKs send 5).
        "idleTimeout": 10,
        "scalerType": "QUEUE_DELAY",
        "scalerValue": 4,
        "workersMin": 0,
        "workersMax": 2,
        "executionTimeoutMs": 600000,
        "flashBootType": "OFF",
        "modelReferences": [],
        "compliance": [],
        "version": 0,
        "type": "QB",
    }
    assert {key: endpoint[key] for key in expected} == expected
    assert emulator.state.endpoints[endpoint["id"]].template_id == template_id
    bound = api.gql("query($id: String!) { podTemplate(id: $id) { boundEndpointId } }", {"id": template_id}).ok()
    assert bound["podTemplate"]["boundEndpointId"] == endpoint["id"]


def test_all_writable_fields_round_trip(api: Api, emulator: Emulator) -> None:
    volume = emulator.state.add_network_volume("models", 100, "EU-RO-1")
    template_id = api.template(name="t")["id"]

    endpoint = api.endpoint(
        template_id,
        name="full",
        gpuIds="ADA_24,AMPERE_24",
        gpuCount=2,
        workersMin=1,
        workersMax=5,
        idleTimeout=60,
        scalerType="REQUEST_COUNT",
        scalerValue=3,
        locations="EU-RO-1",
        networkVolumeId=volume.id,
        executionTimeoutMs=120000,
        allowedCudaVersions="13.0,12.8",
        minCudaVersion="12.8",
        flashBootType="FLASHBOOT",
        modelReferences=["https://huggingface.co/Qwen/Qwen2.5-7B-Instruct:main"],
        compliance=["GDPR"],
    )

    read = api.get_endpoint(endpoint["id"])
    assert read == endpoint
    assert read is not None
    assert read["allowedCudaVersions"] == "13.0,12.8"
    assert read["networkVolumeId"] == volume.id
    assert read["flashBootType"] == "FLASHBOOT"


INVALID_ENDPOINTS: list[tuple[str, dict[str, Any], str]] = [
    ("short name", {"name": "ab"}, "3 to 191"),
    ("blank name", {"name": "   "}, "3 to 191"),
    ("long name", {"name": "x" * 192}, "3 to 191"),
    ("gpu type instead of pool", {"gpuIds": "NVIDIA L4"}, "GPU type, not a pool"),
    ("unknown pool", {"gpuIds": "AMPERE_25"}, "unknown GPU pool"),
    ("only exclusions", {"gpuIds": "-NVIDIA L4"}, "at least one GPU pool"),
    ("empty token", {"gpuIds": "AMPERE_24,,ADA_24"}, "empty entry"),
    ("missing gpuIds", {"gpuIds": None}, "gpuIds is required"),
    ("idle timeout 0", {"idleTimeout": 0}, "idleTimeout"),
    ("idle timeout 3601", {"idleTimeout": 3601}, "idleTimeout"),
    ("scaler value 0", {"scalerValue": 0}, "scalerValue"),
    ("scaler type", {"scalerType": "QUEUE_LENGTH"}, "scalerType"),
    ("negative min", {"workersMin": -1}, "workersMin"),
    ("negative max", {"workersMax": -1, "workersMin": 0}, "workersMax"),
    ("min above max", {"workersMin": 3, "workersMax": 2}, "cannot be greater"),
    ("gpu count 0", {"gpuCount": 0}, "gpuCount"),
    ("cuda version", {"allowedCudaVersions": "12.8,10.2"}, "CUDA version"),
    ("network volume", {"networkVolumeId": "nope000000"}, "Network volume"),
    ("unknown template", {"templateId": "zzzzzzzzzz"}, "not found"),
    ("no template", {"templateId": None}, "templateId is required"),
    (
        "template and templateId",
        {"template": {"name": "x", "imageName": "a/b:1", "dockerArgs": "", "containerDiskInGb": 5, "env": []}},
        "not both",
    ),
    ("endpoint type", {"type": "SYNC"}, "type must be"),
]


@pytest.mark.parametrize(
    ("fields", "message"),
    [(f, m) for _, f, m in INVALID_ENDPOINTS],
    ids=[case for case, _, _ in INVALID_ENDPOINTS],
)
def test_create_rejects_invalid_input(
    api: Api, emulator: Emulator, omit: Any, fields: dict[str, Any], message: str
) -> None:
    template_id = api.template(name="t")["id"]
    data = {"name": "valid-name", "templateId": template_id, "gpuIds": "AMPERE_24", "workersMax": 2}
    data.update({key: omit if value is None else value for key, value in fields.items()})

    result = api.save_endpoint(**data)

    assert result.status == 200
    assert message in result.message
    assert result.data == {"saveEndpoint": None}
    assert result.errors[0]["path"] == ["saveEndpoint"]
    assert emulator.state.endpoints == {}


def test_template_must_be_serverless_and_unbound(api: Api) -> None:
    pod_template = api.template(name="pod", isServerless=False)["id"]
    assert (
        "not a serverless template"
        in api.save_endpoint(name="ep1", templateId=pod_template, gpuIds="AMPERE_24").message
    )

    shared = api.template(name="shared")["id"]
    first = api.endpoint(shared, name="first")
    result = api.save_endpoint(name="second", templateId=shared, gpuIds="AMPERE_24")
    assert f"already bound to endpoint {first['id']}" in result.message


def test_unknown_exclusions_are_ignored_silently(api: Api, emulator: Emulator) -> None:
    # "upstream accepts unrecognized exclusions silently" (RunPod's REST v2 OpenAPI,
    # BaseEndpointGpuConfig.excludedTypes): the pin widens without a word.
    gpu_ids = "AMPERE_24,-NVIDIA H100 80GB HBM3,-NVIDIA Imaginary 9000"
    endpoint = api.endpoint(name="loose-pin", gpuIds=gpu_ids)

    assert endpoint["gpuIds"] == gpu_ids
    assert emulator.state.endpoints[endpoint["id"]].gpu_ids == gpu_ids


def test_update_is_a_full_replace_as_runpods_resolver_does_it(api: Api) -> None:
    template_id = api.template(name="t")["id"]
    created = api.endpoint(
        template_id,
        name="my-ep",
        workersMin=1,
        workersMax=7,
        idleTimeout=42,
        scalerValue=9,
        scalerType="REQUEST_COUNT",
        gpuCount=2,
        locations="EU-RO-1",
        executionTimeoutMs=30000,
        allowedCudaVersions="13.0",
        minCudaVersion="12.8",
        modelReferences=["https://huggingface.co/Qwen/Qwen2.5-7B-Instruct:main"],
        compliance=["GDPR"],
        flashBootType="FLASHBOOT",
    )

    # id + name + gpuIds only, as RunPod's MCP team measured it.
    updated = api.save_endpoint(id=created["id"], name="my-ep", gpuIds="AMPERE_24").ok()["saveEndpoint"]

    assert updated["id"] == created["id"]
    assert updated["createdAt"] == created["createdAt"]
    # The schema's input defaults reset what was left out (mcp: workersMax 7->3, idleTimeout
    # 42->10, scalerValue 9->4), and locations is nulled...
    reset = ("workersMin", "workersMax", "idleTimeout", "scalerValue", "scalerType", "gpuCount", "locations")
    assert {key: updated[key] for key in reset} == {
        "workersMin": 0,
        "workersMax": 3,
        "idleTimeout": 10,
        "scalerValue": 4,
        "scalerType": "QUEUE_DELAY",
        "gpuCount": 1,
        "locations": None,
    }
    # ...while what the resolver writes only when sent, or leaves undefined, stays.
    kept = (
        "templateId",
        "executionTimeoutMs",
        "allowedCudaVersions",
        "minCudaVersion",
        "modelReferences",
        "compliance",
        "flashBootType",
    )
    assert {key: updated[key] for key in kept} == {key: created[key] for key in kept}
    assert updated["version"] == created["version"]  # nothing version-worthy changed


def test_an_update_does_not_move_the_endpoint_to_another_template(api: Api) -> None:
    # templateId acts only on create; an update checks it but keeps the template (mcp). The
    # template of an existing endpoint changes through updateEndpointTemplate.
    endpoint = api.endpoint(name="my-ep")
    other = api.template(name="other")["id"]

    updated = api.save_endpoint(id=endpoint["id"], name="my-ep", gpuIds="AMPERE_24", templateId=other).ok()
    gone = api.save_endpoint(id=endpoint["id"], name="my-ep", gpuIds="AMPERE_24", templateId="zzzzzzzzzz")

    assert updated["saveEndpoint"]["templateId"] == endpoint["templateId"]
    assert "not found" in gone.message


def test_omitting_a_stored_request_ttl_rolls_the_workers(api: Api) -> None:
    endpoint = api.endpoint(name="my-ep", requestTTL=60000)
    same = {"id": endpoint["id"], "name": "my-ep", "gpuIds": "AMPERE_24", "workersMax": 2}

    echoed = api.save_endpoint(**same, requestTTL=60000).ok()["saveEndpoint"]
    omitted = api.save_endpoint(**same).ok()["saveEndpoint"]

    assert echoed["version"] == endpoint["version"]
    assert omitted["version"] == endpoint["version"] + 1  # mcp: "registered as a change and rolled the workers"


def test_workers_standby_follows_workers_max(api: Api) -> None:
    endpoint = api.endpoint(name="my-ep", workersMax=5)
    data = api.gql("query($id: String!) { myself { endpoint(id: $id) { workersStandby } } }", {"id": endpoint["id"]})
    assert data.ok()["myself"]["endpoint"]["workersStandby"] == 5


def test_version_bumps_on_gpu_or_template_change(api: Api) -> None:
    endpoint = api.endpoint(name="my-ep")
    same = dict(name="my-ep", gpuIds="AMPERE_24", workersMax=2)

    assert api.save_endpoint(id=endpoint["id"], **same).ok()["saveEndpoint"]["version"] == 0
    assert api.save_endpoint(id=endpoint["id"], **{**same, "gpuIds": "ADA_24"}).ok()["saveEndpoint"]["version"] == 1

    swap = api.template(name="third")["id"]
    result = api.gql(
        "mutation($input: UpdateEndpointTemplateInput) {"
        " updateEndpointTemplate(input: $input) { id templateId version } }",
        {"input": {"endpointId": endpoint["id"], "templateId": swap}},
    ).ok()
    assert result["updateEndpointTemplate"] == {"id": endpoint["id"], "templateId": swap, "version": 2}


def test_update_unknown_endpoint(api: Api) -> None:
    assert "not found" in api.save_endpoint(id="zzzzzzzzzzzzzz", name="my-ep", gpuIds="AMPERE_24").message


def test_update_endpoint_template_rules(api: Api) -> None:
    first = api.endpoint(name="first")
    second = api.endpoint(name="second")
    query = "mutation($input: UpdateEndpointTemplateInput) { updateEndpointTemplate(input: $input) { id } }"

    taken = api.gql(query, {"input": {"endpointId": first["id"], "templateId": second["templateId"]}})
    missing = api.gql(query, {"input": {"endpointId": "zzzzzzzzzzzzzz", "templateId": first["templateId"]}})

    assert "already bound" in taken.message
    assert "not found" in missing.message


def test_delete_order_scale_to_zero_then_delete_then_template(api: Api, emulator: Emulator) -> None:
    template_id = api.template(name="t")["id"]
    endpoint = api.endpoint(template_id, name="my-ep", workersMin=0, workersMax=2)
    delete_endpoint = "mutation($id: String!) { deleteEndpoint(id: $id) }"
    delete_template = 'mutation { deleteTemplate(templateName: "t") }'

    assert "must both be zero" in api.gql(delete_endpoint, {"id": endpoint["id"]}).message
    assert "in use by serverless endpoint" in api.gql(delete_template).message

    api.save_endpoint(id=endpoint["id"], name="my-ep", gpuIds="AMPERE_24", workersMin=0, workersMax=0).ok()
    assert api.gql(delete_endpoint, {"id": endpoint["id"]}).ok() == {"deleteEndpoint": None}
    assert api.get_endpoint(endpoint["id"]) is None
    assert emulator.state.endpoint_bound_to(template_id) is None

    # "It can take up to 2 minutes to delete a template after its most recent use" (docs):
    # by default the emulator holds it for the whole 2 minutes...
    held = api.gql(delete_template)
    assert "still in use" in held.message and "2 minutes" in held.message
    assert template_id in emulator.state.templates
    # ...and the fault switch shortens that for tests.
    emulator.faults.template_delete_delay(0.2)
    time.sleep(0.25)
    assert api.gql(delete_template).ok() == {"deleteTemplate": None}
    assert emulator.state.templates == {}
    assert "not found" in api.gql(delete_endpoint, {"id": endpoint["id"]}).message


def test_the_delete_delay_starts_when_an_endpoint_lets_its_template_go(api: Api, emulator: Emulator) -> None:
    emulator.faults.template_delete_delay(0.5)
    endpoint = api.endpoint(name="my-ep")
    old = emulator.state.templates[endpoint["templateId"]].name
    swap = api.template(name="new-one")["id"]
    api.gql(
        "mutation($input: UpdateEndpointTemplateInput) { updateEndpointTemplate(input: $input) { id } }",
        {"input": {"endpointId": endpoint["id"], "templateId": swap}},
    ).ok()
    delete = "mutation($name: String!) { deleteTemplate(templateName: $name) }"

    assert "still in use" in api.gql(delete, {"name": old}).message
    time.sleep(0.55)
    assert api.gql(delete, {"name": old}).ok() == {"deleteTemplate": None}
    # A template no endpoint ever used goes at once.
    api.template(name="never-used")
    assert api.gql(delete, {"name": "never-used"}).ok() == {"deleteTemplate": None}


def test_an_unknown_endpoint_id_is_an_error_not_null(api: Api) -> None:
    # The resolver throws for an id it cannot see (mcp endpoint-gpu-ids.ts).
    result = api.gql(
        f"query($id: String!) {{ myself {{ endpoint(id: $id) {{ {ENDPOINT_FIELDS} }} }} }}",
        {"id": "zzzzzzzzzzzzzz"},
    )
    assert result.status == 200
    assert result.message == "No Endpoint found"
    assert result.errors[0]["path"] == ["myself", "endpoint"]
    assert result.data == {"myself": {"endpoint": None}}


def test_the_endpoint_list_is_capped_at_400_oldest_first(api: Api, emulator: Emulator) -> None:
    first = api.endpoint(name="first-one")
    for index in range(400):
        api.endpoint(name=f"ep-{index:03d}")

    listed = api.gql("{ myself { endpoints { id name } } }").ok()["myself"]["endpoints"]

    assert len(emulator.state.endpoints) == 401
    assert len(listed) == 400
    assert listed[0]["id"] == first["id"]
    assert "ep-399" not in {e["name"] for e in listed}


def test_list_endpoints_and_myself(api: Api, emulator: Emulator) -> None:
    one = api.endpoint(name="one")
    two = api.endpoint(name="two")

    data = api.gql("{ myself { id email endpoints { id name env { key value } } serverlessDiscount { type } } }").ok()

    assert data["myself"]["id"] == emulator.state.account.id
    assert data["myself"]["email"] == emulator.state.account.email
    assert data["myself"]["serverlessDiscount"] is None
    assert {(e["id"], e["name"]) for e in data["myself"]["endpoints"]} == {
        (one["id"], "one"),
        (two["id"], "two"),
    }
    assert data["myself"]["endpoints"][0]["env"] == [{"key": "MODEL_NAME", "value": "Qwen/Qwen2.5-7B-Instruct"}]


def test_inline_template_creates_a_bound_serverless_template(api: Api, emulator: Emulator) -> None:
    result = api.gql(
        "mutation($input: EndpointInput!) {"
        " saveEndpoint(input: $input) { id templateId template { imageName isServerless } } }",
        {
            "input": {
                "name": "inline",
                "gpuIds": "AMPERE_24",
                "template": {
                    "name": "inline-template",
                    "imageName": OWN_IMAGE,
                    "dockerArgs": "",
                    "containerDiskInGb": 20,
                    "env": [],
                },
            }
        },
    ).ok()["saveEndpoint"]

    assert result["template"] == {"imageName": OWN_IMAGE, "isServerless": True}
    assert emulator.state.endpoint_bound_to(result["templateId"]) is not None


def test_cpu_endpoint_takes_instance_ids(api: Api) -> None:
    template_id = api.template(name="cpu")["id"]
    result = api.gql(
        "mutation($input: EndpointInput!) { saveEndpoint(input: $input) { instanceIds computeType gpuIds } }",
        {"input": {"name": "cpu-ep", "templateId": template_id, "instanceIds": ["cpu3g-4-16"]}},
    ).ok()
    assert result["saveEndpoint"] == {"instanceIds": ["cpu3g-4-16"], "computeType": "CPU", "gpuIds": ""}


def test_network_volume_ids_write_shape(api: Api, emulator: Emulator) -> None:
    volume = emulator.state.add_network_volume("v", 10, "US-KS-2")
    template_id = api.template(name="t")["id"]
    result = api.gql(
        "mutation($input: EndpointInput!) {"
        " saveEndpoint(input: $input) { networkVolumeIds { networkVolumeId dataCenterId } } }",
        {
            "input": {
                "name": "my-ep",
                "templateId": template_id,
                "gpuIds": "AMPERE_24",
                "networkVolumeIds": [{"networkVolumeId": volume.id}],
            }
        },
    ).ok()
    assert result["saveEndpoint"]["networkVolumeIds"] == [{"networkVolumeId": volume.id, "dataCenterId": "US-KS-2"}]


def test_the_pool_answer_can_be_changed(api: Api, emulator: Emulator) -> None:
    emulator.set_gpu_pools([("ADA_24", ["NVIDIA GeForce RTX 4090", "NVIDIA L4"]), ("AMPERE_24", ["NVIDIA RTX A5000"])])

    pools = api.gql("{ serverlessGpuPools { id gpuTypeIds } }").ok()["serverlessGpuPools"]
    assert pools == [
        {"id": "ADA_24", "gpuTypeIds": ["NVIDIA GeForce RTX 4090", "NVIDIA L4"]},
        {"id": "AMPERE_24", "gpuTypeIds": ["NVIDIA RTX A5000"]},
    ]
    template_id = api.template(name="t")["id"]
    assert "unknown GPU pool" in api.save_endpoint(name="my-ep", templateId=template_id, gpuIds="AMPERE_80").message


def test_pools_and_gpu_types_come_from_the_gpu_table(api: Api) -> None:
    data = api.gql("{ serverlessGpuPools { id gpuTypeIds } gpuTypes { id displayName memoryInGb } }").ok()

    pools = {pool["id"]: pool["gpuTypeIds"] for pool in data["serverlessGpuPools"]}
    assert set(pools) == set(gpus.POOLS)
    assert pools["AMPERE_24"] == ["NVIDIA L4", "NVIDIA RTX A5000", "NVIDIA GeForce RTX 3090"]
    types = {gpu["id"]: gpu for gpu in data["gpuTypes"]}
    assert types["NVIDIA L4"] == {"id": "NVIDIA L4", "displayName": "L4", "memoryInGb": 24}
    assert types["NVIDIA GeForce RTX 3090"]["displayName"] == "RTX 3090"
    assert types["NVIDIA H100 NVL"]["memoryInGb"] == 94
    assert len(types) == len(gpus.GPU_TYPES)

    one = api.gql('{ gpuTypes(input: {id: "NVIDIA L4"}) { id lowestPrice(input: {gpuCount: 1}) { stockStatus } } }')
    assert one.ok() == {"gpuTypes": [{"id": "NVIDIA L4", "lowestPrice": {"stockStatus": "High"}}]}
    dcs = api.gql("{ dataCenters { id gpuAvailability { gpuTypeId stockStatus } } }").ok()["dataCenters"]
    assert dcs and all(dc["gpuAvailability"] for dc in dcs)
