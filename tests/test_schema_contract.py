"""Every GraphQL operation rpdeploy sends, with the variables it builds, against RunPod's schema.

The schema is ``rpdeploy/runpod/schema.graphql`` (generated from RunPod's own artifacts; the
emulator serves the same file). Each request the real client makes is captured from the
wire (``httpx.MockTransport``: this is a unit test of the client) and checked with
graphql-core the way a GraphQL server checks it: the document validates, and the variables
coerce to the declared types. A misspelt field, a wrong input type name or an unknown
input field fails here instead of on RunPod.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rpdeploy.runpod import graphql_ops as ops
from rpdeploy.runpod.schema import schema
from rpdeploy.secrets import Secret

KEY = Secret("rpa_TEST_contract_key_0000000000", "test")

TEMPLATE = {
    "id": "abcdefghij",
    "name": "qwen-template",
    "imageName": "runpod/worker-v1-vllm:v2.25.2",
    "dockerArgs": "",
    "containerDiskInGb": 50,
    "volumeInGb": 0,
    "volumeMountPath": "/workspace",
    "ports": "",
    "env": [{"key": "MODEL_NAME", "value": "Qwen/Qwen2.5-7B-Instruct"}],
    "isServerless": True,
    "isPublic": False,
    "readme": "",
    "startSsh": False,
    "startJupyter": True,
    "containerRegistryAuthId": "",
}
#: An endpoint as RunPod returns it, with settings made outside rpdeploy (volumes, a CPU-less
#: GPU endpoint with instance ids would not exist, but every echoed field must survive).
ENDPOINT = {
    "id": "abcdefghijklmn",
    "name": "qwen",
    "templateId": "abcdefghij",
    "gpuIds": "AMPERE_24,-NVIDIA RTX A5000,-NVIDIA GeForce RTX 3090",
    "gpuCount": 1,
    "idleTimeout": 5,
    "scalerType": "QUEUE_DELAY",
    "scalerValue": 4,
    "workersMin": 0,
    "workersMax": 2,
    "workersPFBTarget": 0,
    "locations": None,
    "networkVolumeId": "vol0000001",
    "networkVolumeIds": [{"networkVolumeId": "vol0000001", "dataCenterId": "EU-RO-1"}],
    "executionTimeoutMs": 600000,
    "allowedCudaVersions": "13.0",
    "minCudaVersion": "12.8",
    "flashBootType": "FLASHBOOT",
    "modelReferences": ["https://huggingface.co/Qwen/Qwen2.5-7B-Instruct:main"],
    "compliance": ["GDPR"],
    "flashEnvironmentId": None,
    "type": "QB",
    "version": 3,
    "createdAt": "2026-08-01T10:00:00.000Z",
    "instanceIds": ["cpu3g-4-16"],
    "requestTTL": 86400000,
}
ANSWERS: dict[str, dict[str, Any]] = {
    "Myself": {"myself": {"id": "user_1", "email": "a@b.c"}},
    "ServerlessGpuPools": {
        "serverlessGpuPools": [{"id": "AMPERE_24", "gpuTypeIds": ["NVIDIA L4", "NVIDIA RTX A5000"]}]
    },
    "PodTemplates": {"myself": {"podTemplates": [TEMPLATE]}},
    "Endpoints": {"myself": {"endpoints": [ENDPOINT]}},
    "Endpoint": {"myself": {"endpoint": ENDPOINT}},
    "SaveTemplate": {"saveTemplate": TEMPLATE},
    "DeleteTemplate": {"deleteTemplate": None},
    "SaveEndpoint": {"saveEndpoint": ENDPOINT},
    "UpdateEndpointTemplate": {"updateEndpointTemplate": ENDPOINT},
    "DeleteEndpoint": {"deleteEndpoint": None},
    "RegistryCreds": {"myself": {"containerRegistryCreds": [{"id": "c1", "name": "rpdeploy-x"}]}},
    "SaveRegistryAuth": {"saveRegistryAuth": {"id": "c1", "name": "rpdeploy-x"}},
    "UpdateRegistryAuth": {"updateRegistryAuth": {"id": "c1", "name": "rpdeploy-x"}},
    "Secrets": {"myself": {"secrets": [{"id": "s1", "name": "rpdeploy_f00dfeedcafe0001_hf_token"}]}},
    "SecretCreate": {"secretCreate": {"id": "s1", "name": "rpdeploy_f00dfeedcafe0001_hf_token"}},
    "SecretValueUpdate": {"secretValueUpdate": {"id": "s1", "name": "rpdeploy_f00dfeedcafe0001_hf_token"}},
}


def problems(query: str, variables: dict[str, Any] | None) -> list[str]:
    """What a GraphQL server would reject in this request (empty: it is valid)."""
    from graphql import GraphQLError, get_operation_ast, parse, validate
    from graphql.execution.values import get_variable_values

    try:
        document = parse(query)
    except GraphQLError as exc:
        return [exc.message]
    found = [error.message for error in validate(schema(), document)]
    if found:
        return found
    operation = get_operation_ast(document)
    assert operation is not None
    coerced = get_variable_values(schema(), operation.variable_definitions or (), variables or {})
    return [error.message for error in coerced] if isinstance(coerced, list) else []


def capture() -> tuple[Any, list[dict[str, Any]]]:
    """rpdeploy's real client over a transport that records each request body."""
    from rpdeploy.runpod.controlplane import GraphQLControlPlane

    sent: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        return httpx.Response(200, json={"data": ANSWERS[body["operationName"]]})

    client = GraphQLControlPlane(KEY, api_url="https://api.runpod.io", transport=httpx.MockTransport(answer))
    return client, sent


def config(tmp_path: Path, **endpoint: Any) -> Any:
    """A deploy.yaml with everything that reaches a template or an endpoint set."""
    from rpdeploy.config import load_config

    document = {
        "method": "worker-vllm",
        "deployment_id": "f00dfeedcafe0001",
        "model": {"name": "Qwen/Qwen2.5-7B-Instruct", "max_model_len": 8192, "hf_token": "HF_TOKEN"},
        "endpoint": {
            "name": "qwen",
            "gpu": "L4",
            "workers_max": 2,
            "locations": ["EU-RO-1", "US-KS-2"],
            "env": {"QUOTE": 'say "hi"\nnext line', "SECRET": {"env": "APP_SECRET"}},
            **endpoint,
        },
    }
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return load_config(path)


def every_operation(cfg: Any, environ: dict[str, str]) -> list[dict[str, Any]]:
    """Drive every ControlPlane method the way rpdeploy's own code builds its arguments."""
    from rpdeploy.runpod.controlplane import endpoint_from_graphql, template_from_graphql
    from rpdeploy.runpod.deployment import (
        desired_endpoint,
        desired_template,
        hf_token_secret,
        resolve_gpus,
        spec_from_live,
    )

    cp, sent = capture()
    with cp:
        cp.account()
        selection = resolve_gpus(cp, cfg)
        [live_template] = cp.list_templates()
        [live_endpoint] = cp.list_endpoints()
        assert cp.get_endpoint(live_endpoint.id) is not None
        spec = desired_template(cfg, image="registry.example/acme/worker@sha256:" + "ab" * 32, environ=environ)
        cp.save_template(spec)
        cp.save_template(spec, template=template_from_graphql(TEMPLATE))
        endpoint_spec = desired_endpoint(cfg, template_id=live_template.id, gpus=selection)
        cp.create_endpoint(endpoint_spec)
        cp.update_endpoint(endpoint_from_graphql(ENDPOINT), endpoint_spec)
        zero = spec_from_live(live_endpoint)
        cp.update_endpoint(live_endpoint, zero)
        cp.set_endpoint_template(live_endpoint.id, "klmnopqrst")
        cp.delete_endpoint(live_endpoint.id)
        cp.delete_template(live_template)
        cp.list_registry_auths()
        cp.save_registry_auth("rpdeploy-x", "acme", Secret("pw", "test"))
        cp.update_registry_auth("c1", "acme", Secret("pw", "test"))
        # The HF token's secret: created, then its value set again, as deploy does.
        name, token = hf_token_secret(cfg, environ) or ("", Secret("", ""))
        [found] = cp.list_secrets()
        cp.create_secret(name, token, description="rpdeploy")
        cp.update_secret_value(found.id, token)
        # An update that must change the gated fields: no cached model any more, a volume.
        download = replace(endpoint_spec, model_references=(), network_volume_ids=("vol0000002",))
        cp.update_endpoint(endpoint_from_graphql(ENDPOINT), download)
    return sent


def test_every_operation_validates_against_runpods_schema(tmp_path: Path) -> None:
    environ = {"HF_TOKEN": "hf_x", "APP_SECRET": "s"}
    sent = every_operation(config(tmp_path), environ)

    for body in sent:
        assert problems(body["query"], body["variables"]) == [], body["operationName"]
    # Every document graphql_ops defines was sent (a new one must be driven above).
    documents = {value for name, value in vars(ops).items() if name.isupper() and _is_operation(value)}
    assert documents == {body["query"] for body in sent}
    # The update sent what RunPod would otherwise reset, never what it writes only when sent,
    # unless deploy.yaml wants it changed: the cached model reference was already there.
    *updates, gated = [
        b["variables"]["input"]
        for b in sent
        if b["operationName"] == "SaveEndpoint" and "id" in b["variables"]["input"]
    ]
    for update in updates:
        assert update["requestTTL"] == 86400000 and update["minCudaVersion"] == "12.8"
        assert update["instanceIds"] == ["cpu3g-4-16"]
        assert not {"templateId", "modelReferences", "compliance", "networkVolumeIds", "type"} & set(update)
    assert gated["modelReferences"] == [] and gated["networkVolumeIds"] == [{"networkVolumeId": "vol0000002"}]
    assert not {"templateId", "compliance", "type"} & set(gated)
    # A create asks for the cached model (RunPod's form, runpodctl --model-reference).
    [create] = [
        b["variables"]["input"]
        for b in sent
        if b["operationName"] == "SaveEndpoint" and "id" not in b["variables"]["input"]
    ]
    assert create["modelReferences"] == ["https://huggingface.co/Qwen/Qwen2.5-7B-Instruct:main"]
    # The template carries a reference to the token's secret; the value went only to secretCreate.
    saved = [b["variables"]["input"] for b in sent if b["operationName"] == "SaveTemplate"]
    for template in saved:
        env = {item["key"]: item["value"] for item in template["env"]}
        assert env["HUGGING_FACE_HUB_TOKEN"] == "{{ RUNPOD_SECRET_rpdeploy_f00dfeedcafe0001_hf_token }}"
        assert "HF_TOKEN" not in env and "hf_x" not in json.dumps(template)
    [created] = [b["variables"]["input"] for b in sent if b["operationName"] == "SecretCreate"]
    assert (created["name"], created["value"]) == ("rpdeploy_f00dfeedcafe0001_hf_token", "hf_x")


def _is_operation(value: Any) -> bool:
    from graphql import GraphQLError, OperationDefinitionNode, parse

    if not isinstance(value, str):
        return False
    try:
        return any(isinstance(d, OperationDefinitionNode) for d in parse(value).definitions)
    except GraphQLError:
        return False  # a field list, not a document


MISTAKES: list[tuple[str, Callable[[str], str], str]] = [
    ("misspelt field", lambda q: q.replace("flashBootType", "flashbootType"), "Cannot query field 'flashbootType'"),
    ("wrong input type", lambda q: q.replace("EndpointInput!", "EndpointsInput!"), "Unknown type 'EndpointsInput'"),
    ("nullable where required", lambda q: q.replace("EndpointInput!", "EndpointInput"), "used in position"),
]


@pytest.mark.parametrize(("change", "message"), [(c, m) for _, c, m in MISTAKES], ids=[n for n, _, _ in MISTAKES])
def test_a_mistake_in_a_document_fails(change: Callable[[str], str], message: str) -> None:
    variables = {"input": {"name": "qwen", "gpuIds": "AMPERE_24", "templateId": "abcdefghij"}}
    assert problems(ops.SAVE_ENDPOINT, variables) == []

    found = problems(change(ops.SAVE_ENDPOINT), variables)

    assert found and any(message in text for text in found), found


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"input": {"name": "qwen", "gpuIds": "AMPERE_24", "workerMax": 2}}, "unknown field 'workerMax'"),
        ({"input": {"name": "qwen", "flashBootType": "flashboot"}}, "does not exist in 'FlashBootType'"),
        (
            {"input": {"name": "qwen", "networkVolumeIds": [{"networkVolumeId": "v", "dataCenterId": "X"}]}},
            "dataCenterId",
        ),
        ({"input": {"gpuIds": "AMPERE_24"}}, "required field 'name'"),
    ],
    ids=["unknown input field", "enum value", "read shape as write shape", "missing required"],
)
def test_a_mistake_in_the_variables_fails(variables: dict[str, Any], message: str) -> None:
    found = problems(ops.SAVE_ENDPOINT, variables)
    assert found and any(message in text for text in found), found


def test_a_template_without_what_runpod_requires_fails() -> None:
    # RunPod's SaveTemplateInput requires name, containerDiskInGb, dockerArgs, env and volumeInGb.
    found = problems(ops.SAVE_TEMPLATE, {"input": {"name": "t", "imageName": "a/b:1"}})
    for field in ("containerDiskInGb", "dockerArgs", "env", "volumeInGb"):
        assert any(f"required field '{field}'" in text for text in found), (field, found)


def test_the_emulator_serves_the_same_schema() -> None:
    from graphql import print_schema

    from rpdeploy.emulator import Emulator

    with Emulator("k") as emu:
        assert print_schema(emu.control.schema) == print_schema(schema())
