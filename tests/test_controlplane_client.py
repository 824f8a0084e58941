"""The GraphQL client in isolation (httpx.MockTransport): variables only, retries, error mapping."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from rpdeploy.errors import ApiError, AuthError
from rpdeploy.runpod.controlplane import MAX_ATTEMPTS, GraphQLControlPlane
from rpdeploy.runpod.models import EnvVar, TemplateSpec
from rpdeploy.secrets import Secret, redact

KEY = "rpa_TESTKEY_0123456789abcdef"
Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> tuple[GraphQLControlPlane, list[float]]:
    sleeps: list[float] = []
    cp = GraphQLControlPlane(
        Secret(KEY, "env:RUNPOD_API_KEY"),
        api_url="https://api.example.test",
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
    )
    return cp, sleeps


def _ok(data: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"data": data})


SPEC = TemplateSpec(
    name='tpl "quoted" $name',
    image="runpod/worker-v1-vllm:v2.25.2",
    env=(
        EnvVar("GREETING", 'he said "hi"\n}\nmutation { deleteEndpoint(id: "x") }'),
        EnvVar("HF_TOKEN", Secret("hf_SECRET", "t")),
    ),
    container_disk_gb=50,
)


def test_values_travel_as_variables_with_a_bearer_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = json.loads(request.content)
        return _ok({"saveTemplate": {"id": "abc1234567", **body["variables"]["input"]}})

    cp, _ = _client(handler)
    template = cp.save_template(SPEC)
    [request] = seen
    assert request.url == "https://api.example.test/graphql"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(request.content)
    assert body["operationName"] == "SaveTemplate"
    variables = body["variables"]["input"]
    assert variables["name"] == SPEC.name
    assert variables["env"] == [
        {"key": "GREETING", "value": SPEC.env[0].reveal()},
        {"key": "HF_TOKEN", "value": "hf_SECRET"},
    ]
    assert variables["volumeInGb"] == 0 and variables["isServerless"] is True and variables["dockerArgs"] == ""
    # No value is pasted into the document itself.
    for value in (SPEC.name, "hf_SECRET", "deleteEndpoint(id", "runpod/worker"):
        assert value not in body["query"]
    assert template.id == "abc1234567"
    assert cp.sent == [("SaveTemplate", True)]


def test_bad_key_is_an_auth_error_without_the_key() -> None:
    cp, sleeps = _client(lambda r: httpx.Response(401, json={"errors": [{"message": "Unauthorized"}]}))
    with pytest.raises(AuthError) as caught:
        cp.list_endpoints()
    assert caught.value.exit_code == 8 and caught.value.status == 401
    assert KEY not in str(caught.value) + (caught.value.hint or "")
    assert sleeps == []  # a bad key is not retried


def test_permission_error_arrives_as_200_with_errors() -> None:
    cp, _ = _client(
        lambda r: httpx.Response(200, json={"data": {"saveEndpoint": None}, "errors": [{"message": "Unauthorized"}]})
    )
    with pytest.raises(AuthError, match="not allowed to run SaveTemplate"):
        cp.save_template(SPEC)


def test_resolver_error_is_an_api_error_with_the_message() -> None:
    cp, _ = _client(lambda r: httpx.Response(200, json={"errors": [{"message": "Template name must be unique"}]}))
    with pytest.raises(ApiError) as caught:
        cp.save_template(SPEC)
    assert caught.value.exit_code == 7
    assert str(caught.value) == "RunPod refused SaveTemplate: Template name must be unique"


def test_invalid_query_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(
            400, json={"errors": [{"message": 'Field "bogus" is not defined by type "EndpointInput".'}]}
        )

    cp, _ = _client(handler)
    with pytest.raises(ApiError, match=r"invalid \(HTTP 400\).*bogus"):
        cp.list_endpoints()
    assert len(calls) == 1


def test_429_storm_is_retried_honouring_retry_after_then_fails() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(429, headers={"Retry-After": "7"}, json={"errors": [{"message": "Too many requests"}]})

    cp, sleeps = _client(handler)
    with pytest.raises(ApiError, match="rate-limited") as caught:
        cp.save_template(SPEC)  # a mutation refused with 429 was not applied: safe to retry
    assert len(calls) == MAX_ATTEMPTS
    assert sleeps == [7.0] * (MAX_ATTEMPTS - 1)
    assert caught.value.status == 429


def test_429_then_success() -> None:
    answers = [httpx.Response(429, headers={"Retry-After": "1"}), _ok({"myself": {"id": "user_1", "email": "a@b"}})]
    cp, sleeps = _client(lambda r: answers.pop(0))
    assert cp.account().id == "user_1"
    assert sleeps == [1.0]


def test_5xx_on_a_read_is_retried() -> None:
    answers = [httpx.Response(502), httpx.Response(503), _ok({"myself": {"endpoints": []}})]
    cp, sleeps = _client(lambda r: answers.pop(0))
    assert cp.list_endpoints() == []
    assert len(sleeps) == 2 and all(0 < s < 5 for s in sleeps)


def test_5xx_on_a_mutation_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(500, text="oops")

    cp, _ = _client(handler)
    with pytest.raises(ApiError, match=r"HTTP 500"):
        cp.delete_endpoint("abc")
    assert len(calls) == 1


def test_timeout_on_a_read_is_retried_but_not_on_a_mutation() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        operation = json.loads(request.content)["operationName"]
        calls.append(operation)
        raise httpx.ReadTimeout("slow", request=request)

    cp, _ = _client(handler)
    with pytest.raises(ApiError, match="did not answer Endpoints in time"):
        cp.list_endpoints()
    assert calls == ["Endpoints"] * MAX_ATTEMPTS
    calls.clear()
    with pytest.raises(ApiError, match="did not answer SaveTemplate"):
        cp.save_template(SPEC)
    assert calls == ["SaveTemplate"]


def test_unreachable_api_names_the_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    cp, sleeps = _client(handler)
    with pytest.raises(ApiError) as caught:
        cp.account()
    assert "https://api.example.test/graphql" in str(caught.value)
    assert "RUNPOD_API_BASE_URL" in (caught.value.hint or "")
    assert len(sleeps) == MAX_ATTEMPTS - 1


def test_an_error_message_that_echoes_the_key_is_redacted() -> None:
    cp, _ = _client(lambda r: httpx.Response(200, json={"errors": [{"message": f"bad key {KEY}"}]}))
    with pytest.raises(ApiError) as caught:
        cp.account()
    assert KEY not in str(caught.value)
    assert redact(f"x {KEY}") == "x ****"
