"""POST /graphql as a protocol: auth, validation, both request styles, fault switches, log."""

from __future__ import annotations

import time

import httpx
import pytest
from emulator_support import SAVE_TEMPLATE, Api

from rpdeploy.emulator import Emulator
from rpdeploy.emulator.faults import GENERIC_ERROR


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer wrong"}, {"Authorization": "wrong"}])
def test_invalid_key_is_401(api: Api, headers: dict[str, str]) -> None:
    response = api.http.post("/graphql", json={"query": "{ myself { id } }"}, headers=headers)

    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Unauthorized"}]}


def test_no_key_is_no_account_not_an_error(api: Api, emulator: Emulator) -> None:
    # runpodctl issue 46; mcp endpoint-gpu-ids.ts: "HTTP 200 with `myself: null` and no `errors`".
    response = api.http.post("/graphql", json={"query": "{ myself { id email endpoints { id } } }"})

    assert response.status_code == 200
    assert response.json() == {"data": {"myself": None}}
    api.endpoint(name="not-yours")
    template = api.http.post("/graphql", json={"query": '{ podTemplate(id: "x") { id } }'})
    assert template.json() == {"data": {"podTemplate": None}}


def test_no_key_cannot_change_anything(api: Api, emulator: Emulator) -> None:
    query = 'mutation { deleteTemplate(templateName: "x") }'
    response = api.http.post("/graphql", json={"query": query})

    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Unauthorized"}]}


def test_key_in_query_string_and_bare_header(api: Api, emulator: Emulator) -> None:
    by_query = api.http.post(f"/graphql?api_key={emulator.api_key}", json={"query": "{ myself { id } }"})
    bare = api.http.post("/graphql", json={"query": "{ myself { id } }"}, headers={"Authorization": emulator.api_key})

    assert by_query.status_code == 200 and by_query.json()["data"]["myself"]["id"] == emulator.state.account.id
    assert bare.status_code == 200
    # The key never lands in the request log.
    assert all("api_key" not in r.query for r in emulator.requests)
    assert emulator.api_key not in str([r.to_dict() for r in emulator.requests])


def test_catalogue_answers_without_a_key(api: Api) -> None:
    response = api.http.post("/graphql", json={"query": "{ gpuTypes { id } }"})

    assert response.status_code == 200
    assert {"id": "NVIDIA L4"} in response.json()["data"]["gpuTypes"]


def test_inline_literal_mutation_parses(api: Api, emulator: Emulator) -> None:
    query = """
    mutation {
        saveTemplate(input: { name: "inline", imageName: "acme/w:1", dockerArgs: "python -u \\"handler.py\\"",
            containerDiskInGb: 20, volumeInGb: 0, ports: "", env: [{ key: "A", value: "b c" }],
            isServerless: true, containerRegistryAuthId : "", startSsh: true, isPublic: false, readme: "" }) {
            id dockerArgs env { key value }
        }
    }
    """
    data = api.gql(query).ok()["saveTemplate"]

    assert data["dockerArgs"] == 'python -u "handler.py"'
    assert data["env"] == [{"key": "A", "value": "b c"}]
    template_id = data["id"]
    endpoint = api.gql(
        f"""mutation {{ saveEndpoint(input: {{ flashBootType: FLASHBOOT, name: "inline-ep",
        templateId: "{template_id}", gpuIds: "AMPERE_24", networkVolumeId: "", locations: "", idleTimeout: 5,
        scalerType: "QUEUE_DELAY", scalerValue: 4, workersMin: 0, workersMax: 2, gpuCount: 1 }})
        {{ id flashBootType }} }}"""
    ).ok()["saveEndpoint"]
    assert endpoint["flashBootType"] == "FLASHBOOT"
    assert emulator.state.endpoints[endpoint["id"]].flash_boot_type == "FLASHBOOT"


def test_unescaped_quote_in_inline_literal_is_a_syntax_error(api: Api) -> None:
    # What runpod-python 1.12 sends for an env value with a quote: it does not escape it.
    result = api.gql('mutation { saveTemplate(input: { name: "a"b", imageName: "x", dockerArgs: "" }) { id } }')

    assert result.status == 400
    assert result.message.startswith("Syntax Error")


def test_unknown_input_field_is_rejected_like_graphql(api: Api, emulator: Emulator) -> None:
    inline = api.gql(
        'mutation { saveEndpoint(input: { name: "abc", gpuIds: "AMPERE_24", '
        'networkVolumeIds: [{ networkVolumeId: "v", dataCenterId: "EU-RO-1" }] }) { id } }'
    )
    by_variables = api.save_template(gpuTypeIds=["NVIDIA L4"])

    assert inline.status == 400
    assert "dataCenterId" in inline.message and "NetworkVolumeIdsInput" in inline.message
    assert by_variables.status == 400
    assert "gpuTypeIds" in by_variables.message
    assert by_variables.data is None
    assert emulator.state.templates == {}


def test_enum_must_be_a_known_unquoted_value(api: Api) -> None:
    template_id = api.template(name="t")["id"]
    base = f'name: "abc", templateId: "{template_id}", gpuIds: "AMPERE_24"'

    quoted = api.gql(f'mutation {{ saveEndpoint(input: {{ {base}, flashBootType: "FLASHBOOT" }}) {{ id }} }}')
    unknown = api.gql(f"mutation {{ saveEndpoint(input: {{ {base}, flashBootType: ON }}) {{ id }} }}")
    lower_compliance = api.save_endpoint(name="abc", templateId=template_id, gpuIds="AMPERE_24", compliance=["gdpr"])
    bool_flashboot = api.save_endpoint(name="abc", templateId=template_id, gpuIds="AMPERE_24", flashBootType=True)

    for result in (quoted, unknown, lower_compliance, bool_flashboot):
        assert result.status == 400, result.body
        assert "FlashBootType" in result.message or "Compliance" in result.message


def test_non_null_name_is_enforced_by_the_schema(api: Api, omit: object) -> None:
    result = api.save_endpoint(name=omit, gpuIds="AMPERE_24")

    assert result.status == 400
    assert "name" in result.message


def test_bad_bodies_are_400(api: Api) -> None:
    not_json = api.http.post("/graphql", content=b"{nope", headers=api.headers)
    no_query = api.http.post("/graphql", json={"variables": {}}, headers=api.headers)
    unknown_field = api.gql("{ myself { creditBalance } }")

    assert not_json.status_code == 400 and not_json.json()["errors"]
    assert no_query.status_code == 400
    assert unknown_field.status == 400 and "creditBalance" in unknown_field.message


# --- fault switches ----------------------------------------------------------------------------


def test_errors_on_next_requests(api: Api, emulator: Emulator) -> None:
    emulator.faults.graphql_errors(count=2)

    first, second, third = (api.gql("{ myself { id } }") for _ in range(3))

    assert (first.status, first.message, first.data) == (200, GENERIC_ERROR, None)
    assert second.message == GENERIC_ERROR
    assert third.ok()["myself"]["id"]
    assert emulator.faults.active() == []


def test_errors_on_one_operation_only(api: Api, emulator: Emulator) -> None:
    emulator.faults.graphql_errors(operation="saveEndpoint", message="Something else broke")
    template_id = api.template(name="t")["id"]  # another operation: untouched

    failed = api.save_endpoint(name="abc", templateId=template_id, gpuIds="AMPERE_24")
    # runpod-python's anonymous `mutation { saveEndpoint(...) }` matches by its field.
    assert failed.message == "Something else broke"
    assert emulator.state.endpoints == {}
    assert api.save_endpoint(name="abc", templateId=template_id, gpuIds="AMPERE_24").ok()


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_status_fault(api: Api, emulator: Emulator, status: int) -> None:
    emulator.faults.graphql_http_status(status, count=1)

    failed = api.http.post("/graphql", json={"query": "{ myself { id } }"}, headers=api.headers)

    assert failed.status_code == status
    assert api.gql("{ myself { id } }").status == 200


def test_rate_limit_fault_sends_retry_after(api: Api, emulator: Emulator) -> None:
    emulator.faults.graphql_rate_limit(count=1, retry_after=2)

    limited = api.http.post("/graphql", json={"query": "{ myself { id } }"}, headers=api.headers)

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert api.gql("{ myself { id } }").status == 200


def test_delay_fault(api: Api, emulator: Emulator) -> None:
    emulator.faults.graphql_delay(0.3, count=1)

    started = time.monotonic()
    api.gql("{ myself { id } }").ok()
    slow = time.monotonic() - started
    started = time.monotonic()
    api.gql("{ myself { id } }").ok()
    fast = time.monotonic() - started

    assert slow >= 0.3 > fast


def test_read_only_key_fails_mutations_with_unauthorized(api: Api, emulator: Emulator) -> None:
    emulator.faults.read_only()

    write = api.save_template(name="t")
    read = api.gql("{ myself { id } }")

    assert write.status == 200
    assert write.message == "Unauthorized"
    assert write.data == {"saveTemplate": None}
    assert read.ok()["myself"]["id"]
    assert emulator.state.templates == {}


def test_faults_can_be_set_over_http(api: Api, emulator: Emulator) -> None:
    response = api.http.post(
        "/_emulator/faults",
        json=[
            {"fault": "graphql_errors", "count": 1, "message": "boom"},
            {"fault": "graphql_delay", "seconds": 0},
        ],
        headers=api.headers,
    )

    assert response.status_code == 200
    assert response.json()["faults"] == [
        {"fault": "graphql_errors", "remaining": 1, "message": "boom"},
        {"fault": "graphql_delay", "remaining": None, "seconds": 0.0},
    ]
    assert api.gql("{ myself { id } }").message == "boom"
    bad = api.http.post("/_emulator/faults", json={"fault": "no_such_fault"}, headers=api.headers)
    assert bad.status_code == 400 and "unknown fault" in bad.json()["error"]


# --- request log -------------------------------------------------------------------------------


def test_requests_are_recorded_with_operation_and_variables(api: Api, emulator: Emulator) -> None:
    api.template(name="logged", env=[{"key": "K", "value": "V"}])
    httpx.post(
        f"{emulator.api_url}/graphql",
        json={"query": 'mutation { deleteTemplate(templateName: "x") }'},
        headers=api.headers,
        verify=False,
    )

    recorded = emulator.requests.graphql()

    assert [r.operation for r in recorded] == ["saveTemplate", "deleteTemplate"]
    first = recorded[0]
    assert first.method == "POST" and first.path == "/graphql" and first.status == 200
    assert first.body["query"] == SAVE_TEMPLATE
    assert first.variables is not None and first.variables["input"]["name"] == "logged"
    assert recorded[1].fields == ("deleteTemplate",)
    assert emulator.requests.graphql("saveTemplate") == [first]
