"""saveTemplate / deleteTemplate / registry credentials: RunPod's rules over real GraphQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
from emulator_support import Api

from rpdeploy.emulator import Emulator

SAVE_REGISTRY = "mutation($input: SaveRegistryAuthInput!) { saveRegistryAuth(input: $input) { id name } }"


def test_create_returns_runpod_shaped_template(api: Api, emulator: Emulator) -> None:
    template = api.template(name="qwen-worker", env=[{"key": "MODEL_NAME", "value": "Qwen/Qwen2.5-7B-Instruct"}])

    assert re.fullmatch(r"[a-z0-9]{10}", template["id"])
    assert template == {
        "id": template["id"],
        "name": "qwen-worker",
        "imageName": "runpod/worker-v1-vllm:v2.24.0",
        "dockerArgs": "",
        "containerDiskInGb": 20,
        "volumeInGb": 0,
        "env": [{"key": "MODEL_NAME", "value": "Qwen/Qwen2.5-7B-Instruct"}],
        "isServerless": True,
    }
    stored = emulator.state.templates[template["id"]]
    assert stored.name == "qwen-worker" and stored.is_serverless


def test_names_are_unique_per_account(api: Api, emulator: Emulator) -> None:
    api.template(name="same")

    result = api.save_template(name="same")

    assert result.status == 200
    assert "unique" in result.message
    assert result.data == {"saveTemplate": None}
    assert result.errors[0]["path"] == ["saveTemplate"]
    assert len(emulator.state.templates) == 1


@pytest.mark.parametrize("field", ["name", "imageName"])
@pytest.mark.parametrize("value", ["", "   "])
def test_name_and_image_must_not_be_blank(api: Api, emulator: Emulator, field: str, value: Any) -> None:
    result = api.save_template(**{field: value})

    assert result.status == 200
    assert result.message == f"{field} is required"
    assert emulator.state.templates == {}


def test_image_is_required_although_the_schema_lets_it_be_null(api: Api, emulator: Emulator, omit: Any) -> None:
    # imageName is nullable in RunPod's schema (models_gen.go) but a required field in its
    # docs (sdks/graphql/manage-pod-templates.mdx): a resolver error, not a validation one.
    result = api.save_template(imageName=omit)

    assert (result.status, result.message) == (200, "imageName is required")
    assert emulator.state.templates == {}


@pytest.mark.parametrize("field", ["name", "containerDiskInGb", "dockerArgs", "env", "volumeInGb"])
def test_schema_required_fields_fail_validation(api: Api, emulator: Emulator, omit: Any, field: str) -> None:
    # Non-null in RunPod's schema (models_gen.go SaveTemplateInput): left out, the request is
    # rejected before any resolver runs. (Before dockerArgs became non-null, leaving it out
    # got "Something went wrong": pulumi-runpod-native issue 18.)
    result = api.save_template(**{field: omit})

    assert result.status == 400
    assert f"required field '{field}'" in result.message
    assert emulator.state.templates == {}


def test_serverless_template_needs_no_volume(api: Api) -> None:
    result = api.save_template(volumeInGb=10)

    assert "volume" in result.message and result.data == {"saveTemplate": None}
    # A pod template may have one.
    assert api.template(name="pod-template", volumeInGb=10, isServerless=False)["volumeInGb"] == 10


def test_registry_auth_must_exist(api: Api) -> None:
    assert "not found" in api.save_template(containerRegistryAuthId="cnotthere000000000000000000").message

    auth = api.gql(SAVE_REGISTRY, {"input": {"name": "hub", "username": "acme", "password": "s3cret"}}).ok()
    auth_id = auth["saveRegistryAuth"]["id"]
    template = api.gql(
        "mutation($input: SaveTemplateInput) { saveTemplate(input: $input) { containerRegistryAuthId } }",
        {
            "input": {
                "name": "private",
                "imageName": "acme/worker:1",
                "dockerArgs": "",
                "containerDiskInGb": 10,
                "volumeInGb": 0,
                "env": [],
                "isServerless": True,
                "containerRegistryAuthId": auth_id,
            }
        },
    ).ok()
    assert template["saveTemplate"]["containerRegistryAuthId"] == auth_id


def test_registry_auth_lifecycle(api: Api, emulator: Emulator) -> None:
    created = api.gql(SAVE_REGISTRY, {"input": {"name": "hub", "username": "acme", "password": "pw1"}}).ok()
    auth_id = created["saveRegistryAuth"]["id"]
    assert re.fullmatch(r"c[a-z0-9]{24}", auth_id)
    assert "unique" in api.gql(SAVE_REGISTRY, {"input": {"name": "hub", "username": "x", "password": "y"}}).message

    updated = api.gql(
        "mutation($input: UpdateRegistryAuthInput!) { updateRegistryAuth(input: $input) { id name } }",
        {"input": {"id": auth_id, "username": "acme2", "password": "pw2"}},
    ).ok()
    assert updated["updateRegistryAuth"] == {"id": auth_id, "name": "hub"}
    assert emulator.state.registry_auths[auth_id].password == "pw2"

    listed = api.gql("{ myself { containerRegistryCreds { id name } } }").ok()
    assert listed["myself"]["containerRegistryCreds"] == [{"id": auth_id, "name": "hub"}]

    template_id = api.template(name="uses-auth", containerRegistryAuthId=auth_id)["id"]
    deleted = api.gql("mutation($id: String!) { deleteRegistryAuth(registryAuthId: $id) }", {"id": auth_id})
    assert deleted.ok() == {"deleteRegistryAuth": None}
    assert emulator.state.templates[template_id].container_registry_auth_id == ""
    again = api.gql("mutation($id: String!) { deleteRegistryAuth(registryAuthId: $id) }", {"id": auth_id})
    assert "not found" in again.message


def test_update_is_a_full_replace_by_id(api: Api) -> None:
    template = api.template(name="t1", env=[{"key": "A", "value": "1"}], containerDiskInGb=30)

    updated = api.template(id=template["id"], name="t1-renamed", imageName="acme/other:2", dockerArgs="python -u h.py")

    assert updated["id"] == template["id"]
    assert updated["name"] == "t1-renamed"
    assert updated["dockerArgs"] == "python -u h.py"
    # Omitted fields went back to their defaults (the reference default env is sent by the helper).
    assert updated["containerDiskInGb"] == 20
    listed = api.gql("{ myself { podTemplates { id name } } }").ok()["myself"]["podTemplates"]
    assert listed == [{"id": template["id"], "name": "t1-renamed"}]


def test_update_unknown_id_and_rename_onto_another(api: Api) -> None:
    api.template(name="a")
    b = api.template(name="b")

    assert "not found" in api.save_template(id="zzzzzzzzzz", name="c").message
    assert "unique" in api.save_template(id=b["id"], name="a").message


def test_pod_template_query_and_not_found_is_null(api: Api) -> None:
    template = api.template(name="lookup")

    found = api.gql(
        "query($id: String!) { podTemplate(id: $id) { id name isServerless boundEndpointId } }",
        {"id": template["id"]},
    ).ok()
    missing = api.gql("query($id: String!) { podTemplate(id: $id) { id } }", {"id": "nope000000"})

    assert found["podTemplate"] == {
        "id": template["id"],
        "name": "lookup",
        "isServerless": True,
        "boundEndpointId": None,
    }
    assert missing.status == 200 and missing.body == {"data": {"podTemplate": None}}


def test_delete_template_by_name(api: Api, emulator: Emulator) -> None:
    api.template(name="to-delete")

    assert api.gql('mutation { deleteTemplate(templateName: "to-delete") }').ok() == {"deleteTemplate": None}
    assert emulator.state.templates == {}
    assert "not found" in api.gql('mutation { deleteTemplate(templateName: "to-delete") }').message


HOSTILE = [
    'quote " and backslash \\ and \\"escaped\\"',
    "new\nline\r\nand\ttab",
    "unicode: Grüße, 日本語, emoji 🚀, RTL \u202e",
    "dollar $input and ${HOME} and $(rm -rf /)",
    "braces { } [ ] ) ( and # comment",
    "x" * 10_240,
]


@pytest.mark.parametrize("text", HOSTILE, ids=["quotes", "newlines", "unicode", "dollar", "braces", "10kB"])
def test_hostile_strings_round_trip_through_variables(api: Api, emulator: Emulator, text: str) -> None:
    name = text[:200]
    env = [{"key": "HOSTILE", "value": text}, {"key": "MODEL_NAME", "value": "m"}]

    created = api.template(name=name, env=env, dockerArgs=text, readme=text)

    assert created["name"] == name
    assert created["dockerArgs"] == text
    assert created["env"] == env
    read = api.gql(
        "query($id: String!) { podTemplate(id: $id) { name dockerArgs readme env { key value } } }",
        {"id": created["id"]},
    ).ok()["podTemplate"]
    assert read == {"name": name, "dockerArgs": text, "readme": text, "env": env}
    assert emulator.state.templates[created["id"]].env_dict()["HOSTILE"] == text
