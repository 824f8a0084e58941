"""`rpdeploy endpoint create|update|get|list|delete` against the emulator over real HTTP (issue 3).

Every assertion about what exists reads the emulator's stored state; every assertion about
what was sent reads its request log. Secrets (the API key, the HF token, a secret env value)
must never appear in what the CLI prints, whatever happens.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from rpdeploy.emulator import Emulator
from tests.conftest import CliRunnerFn, mutations

HF_TOKEN = "hf_TEST_secret_token_9f8e7d6c5b4a"
APP_SECRET = "app-secret-value-5c4b3a29"
IMAGE = "registry.example/acme/worker@sha256:" + "ab" * 32
#: The L4's selection as rpdeploy shows it: its pool, less the pool's other cards.
POOL_TEXT = "AMPERE_24 without NVIDIA GeForce RTX 3090, NVIDIA RTX A5000"


def write_config(folder: Path, **endpoint: Any) -> Path:
    """A method-1 deploy.yaml with a secret HF token and a secret env value; ``endpoint`` overrides."""
    document: dict[str, Any] = {
        "method": "worker-vllm",
        "model": {
            "name": "Qwen/Qwen2.5-7B-Instruct",
            "max_model_len": 8192,
            "gpu_memory_utilization": 0.9,
            "hf_token": "HF_TOKEN",
        },
        "endpoint": {
            "name": "qwen25-7b-instruct",
            "gpu": "L4",
            "workers_min": 0,
            "workers_max": 2,
            "env": {"GREETING": "hello", "APP_SECRET": {"env": "APP_SECRET"}},
            **endpoint,
        },
    }
    path = folder / "deploy.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False, width=1_000_000), encoding="utf-8")
    return path


@pytest.fixture
def emulator(runpod_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    monkeypatch.setenv("APP_SECRET", APP_SECRET)
    return runpod_emulator


@pytest.fixture
def config(project: Path, emulator: Emulator) -> Path:
    return write_config(project)


def no_secrets(emulator: Emulator, *results: Result) -> None:
    for result in results:
        for text in (result.stdout, result.stderr):
            for secret in (emulator.api_key, HF_TOKEN, APP_SECRET):
                assert secret not in text


def document(result: Result) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def stored_endpoint(emulator: Emulator) -> dict[str, Any]:
    """The one endpoint the emulator holds, as RunPod would return it (no simulated fleet)."""
    [endpoint] = emulator.state.snapshot()["endpoints"]
    return {k: v for k, v in endpoint.items() if k not in ("workers", "queue", "pods")}


def distinct(names: list[str | None]) -> list[str | None]:
    """``names`` with repeats in a row collapsed (a retried request counts once)."""
    return [name for index, name in enumerate(names) if index == 0 or names[index - 1] != name]


def errors_in(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


# --- the lifecycle ----------------------------------------------------------------------------


#: The template env's reference to the RunPod secret rpdeploy keeps model.hf_token in.
HF_REFERENCE = "{{ RUNPOD_SECRET_rpdeploy_qwen25_7b_instruct_hf_token }}"


def test_create_rerun_update_delete(cli: CliRunnerFn, config: Path, emulator: Emulator) -> None:
    created = cli("endpoint", "create", "--json")
    doc = document(created)
    assert doc["ok"] is True and doc["dry_run"] is False
    assert [op["kind"] for op in doc["operations"]] == ["create-secret", "create-template", "create-endpoint"]
    state = emulator.state.snapshot()
    [template], [endpoint] = state["templates"], state["endpoints"]
    result = doc["endpoint"]
    assert set(result) == {"name", "endpoint_id", "template_id", "image", "operations", "urls"}
    assert (result["endpoint_id"], result["template_id"]) == (endpoint["id"], template["id"])
    base = f"{emulator.endpoint_url}/{endpoint['id']}"
    assert result["urls"] == {
        "run": f"{base}/run",
        "runsync": f"{base}/runsync",
        "status": f"{base}/status/{{job_id}}",
        "health": f"{base}/health",
        "openai_base": f"{base}/openai/v1",
    }
    assert endpoint["templateId"] == template["id"] and endpoint["workersMax"] == 2
    env = {e["key"]: e["value"] for e in template["env"]}
    # The HF token is a RunPod secret the template env refers to, never a value in it.
    assert env["HUGGING_FACE_HUB_TOKEN"] == HF_REFERENCE and "HF_TOKEN" not in env
    assert HF_TOKEN not in json.dumps(template)
    with emulator.state.lock:
        assert [(s.name, s.value) for s in emulator.state.secrets.values()] == [
            ("rpdeploy_qwen25_7b_instruct_hf_token", HF_TOKEN)
        ]
    assert state["secrets"][0]["name"] == "rpdeploy_qwen25_7b_instruct_hf_token" and HF_TOKEN not in json.dumps(state)
    assert env["APP_SECRET"] == APP_SECRET and env["GREETING"] == "hello"
    # The endpoint asks RunPod to cache the model (the ref comes back resolved to a commit).
    [reference] = endpoint["modelReferences"]
    repo, _, commit = reference.rpartition(":")
    assert repo == "https://huggingface.co/Qwen/Qwen2.5-7B-Instruct" and len(commit) == 40
    # The dry-run style listing in the JSON masks secret values; a reference is not one.
    shown = {c["field"]: c["new"] for op in doc["operations"] for c in op["changes"]}
    assert shown["env.HUGGING_FACE_HUB_TOKEN"] == HF_REFERENCE
    assert shown["env.APP_SECRET"] == "****" and shown["env.GREETING"] == "hello"
    assert mutations(emulator) == ["SecretCreate", "SaveTemplate", "SaveEndpoint"]
    [sent] = emulator.requests.graphql("SaveEndpoint")
    assert sent.variables is not None
    assert sent.variables["input"]["modelReferences"] == ["https://huggingface.co/Qwen/Qwen2.5-7B-Instruct:main"]
    text = cli("endpoint", "create").stdout  # a second run: found by name, nothing to send
    assert "unchanged" in text and f"id       {endpoint['id']}" in text and f"openai   {base}/openai/v1" in text
    assert mutations(emulator) == ["SecretCreate", "SaveTemplate", "SaveEndpoint"]
    rerun = document(cli("endpoint", "create", "--json"))
    assert rerun["operations"] == [] and rerun["endpoint"]["endpoint_id"] == endpoint["id"]
    assert mutations(emulator) == ["SecretCreate", "SaveTemplate", "SaveEndpoint"]
    assert len(emulator.state.snapshot()["endpoints"]) == 1 and len(emulator.state.snapshot()["templates"]) == 1

    before = stored_endpoint(emulator)
    template_before = emulator.state.snapshot()["templates"][0]
    write_config(config.parent, workers_max=3)
    emulator.requests.clear()
    planned = document(cli("endpoint", "update", "--dry-run", "--json"))
    assert planned["dry_run"] is True and planned["endpoint"] is None
    assert planned["operations"] == [
        {
            "kind": "update-endpoint",
            "target": f"qwen25-7b-instruct ({endpoint['id']})",
            "changes": [{"field": "workers_max", "old": 2, "new": 3}],
        }
    ]
    assert mutations(emulator) == []
    updated = cli("endpoint", "update")
    assert "updated (1 change(s))" in updated.stdout and "workers_max: 2 -> 3" in updated.stdout
    after = stored_endpoint(emulator)
    # Same endpoint, one field changed; the rest of the stored object is exactly as it was
    # (RunPod sets workersStandby to workersMax on every save).
    assert after["id"] == before["id"] and after["workersMax"] == 3 and after["workersStandby"] == 3
    assert {k: v for k, v in after.items() if k not in ("workersMax", "workersStandby")} == {
        k: v for k, v in before.items() if k not in ("workersMax", "workersStandby")
    }
    assert emulator.state.snapshot()["templates"][0] == template_before
    assert mutations(emulator) == ["SaveEndpoint"]
    [sent] = emulator.requests.graphql("SaveEndpoint")
    assert sent.variables is not None and sent.variables["input"]["id"] == before["id"]

    emulator.requests.clear()
    planned = document(cli("endpoint", "delete", "--dry-run", "--json"))
    assert [op["kind"] for op in planned["operations"]] == ["scale-to-zero", "delete-endpoint", "delete-template"]
    assert mutations(emulator) == []
    refused = cli("endpoint", "delete", expected_code=3, env={"CI": "true"})
    assert "--yes" in refused.stderr and mutations(emulator) == []
    deleted = document(cli("endpoint", "delete", "--yes", "--json"))
    assert [op["kind"] for op in deleted["operations"]] == ["scale-to-zero", "delete-endpoint", "delete-template"]
    assert deleted["deleted"]["endpoint_id"] == before["id"]
    state = emulator.state.snapshot()
    assert state["endpoints"] == [] and state["templates"] == [] and state["jobs"] == []
    # The template is asked for again until RunPod lets it go (the emulator holds it 0.3 s).
    assert distinct(mutations(emulator)) == ["SaveEndpoint", "DeleteEndpoint", "DeleteTemplate"]
    scale = emulator.requests.graphql("SaveEndpoint")[0].variables
    assert scale is not None
    assert (scale["input"]["workersMin"], scale["input"]["workersMax"]) == (0, 0)
    assert scale["input"]["gpuIds"] == before["gpuIds"] and scale["input"]["idleTimeout"] == before["idleTimeout"]
    sent = len(mutations(emulator))
    assert cli("endpoint", "delete", "--yes").stdout.strip() == "Nothing to delete."
    assert len(mutations(emulator)) == sent
    gone = cli("endpoint", "get", expected_code=7)
    assert "no endpoint 'qwen25-7b-instruct' on RunPod" in gone.stderr
    no_secrets(emulator, created, updated, refused, gone)


def test_an_update_keeps_what_was_set_outside_rpdeploy(cli: CliRunnerFn, config: Path, emulator: Emulator) -> None:
    cli("endpoint", "create")
    volume = emulator.state.add_network_volume("models", size=100)
    with emulator.state.lock:  # settings someone made in the RunPod console
        [live] = emulator.state.endpoints.values()
        live.network_volume_id = volume.id
        live.network_volume_ids = [volume.id]
        live.model_references = ["https://huggingface.co/Qwen/Qwen2.5-7B-Instruct:main"]
        live.min_cuda_version = "12.8"
        live.workers_pfb_target = 1
        live.compliance = ["GDPR"]
        live.flash_environment_id = "env-1234"
    before = stored_endpoint(emulator)
    write_config(config.parent, workers_max=4)
    emulator.requests.clear()
    cli("endpoint", "update")
    after = stored_endpoint(emulator)
    assert after["workersMax"] == 4
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"workersMax", "workersStandby"}, {k: (before[k], after[k]) for k in changed}
    # They were kept by leaving them out: RunPod writes those fields only when sent, and
    # echoing them does harm (runpod-mcp endpoint-gpu-ids.ts). The template is never sent on
    # an update either (it changes through updateEndpointTemplate).
    [sent] = emulator.requests.graphql("SaveEndpoint")
    assert sent.variables is not None
    left_out = {"modelReferences", "compliance", "networkVolumeIds", "type", "templateId"}
    assert not left_out & set(sent.variables["input"])
    assert sent.variables["input"]["minCudaVersion"] == "12.8"  # an update would not reset it; echoed anyway
    # And scaling to zero before a delete keeps them too.
    emulator.requests.clear()
    with emulator.state.lock:
        emulator.state.endpoints[after["id"]].workers_max = 2  # a delete scales it to zero first
    cli("endpoint", "delete", "--yes")
    scale = emulator.requests.graphql("SaveEndpoint")[0].variables
    assert scale is not None and not left_out & set(scale["input"])


def test_delete_removes_the_endpoints_own_template_even_after_a_rename(
    cli: CliRunnerFn, config: Path, emulator: Emulator
) -> None:
    cli("endpoint", "create")
    write_config(config.parent, template_name="renamed-template")  # deploy.yaml changed since
    deleted = document(cli("endpoint", "delete", "--yes", "--json"))
    assert [(op["kind"], op["target"]) for op in deleted["operations"]][-1] == (
        "delete-template",
        "qwen25-7b-instruct-template",
    )
    state = emulator.state.snapshot()
    assert state["endpoints"] == [] and state["templates"] == []


def test_delete_leaves_a_template_of_another_endpoint_alone(
    cli: CliRunnerFn, project: Path, emulator: Emulator
) -> None:
    write_config(project, name="someone-else", template_name="shared-name")
    cli("endpoint", "create")
    ours = project / "ours"
    ours.mkdir()
    write_config(ours, template_name="shared-name")  # never deployed; its template name is taken
    assert cli("endpoint", "delete", "--yes", "--config", ours / "deploy.yaml").stdout.strip() == "Nothing to delete."
    assert len(emulator.state.snapshot()["templates"]) == 1
    assert mutations(emulator) == ["SecretCreate", "SaveTemplate", "SaveEndpoint"]


def test_update_needs_an_existing_endpoint(cli: CliRunnerFn, config: Path, emulator: Emulator) -> None:
    result = cli("endpoint", "update", expected_code=7)
    assert errors_in(result) == ["Error: no endpoint named 'qwen25-7b-instruct' exists yet"]
    assert mutations(emulator) == []


def test_dry_run_create_shows_the_operations_and_sends_nothing(
    cli: CliRunnerFn, config: Path, emulator: Emulator
) -> None:
    doc = document(cli("endpoint", "create", "--dry-run", "--json"))
    assert doc["dry_run"] is True and doc["endpoint"] is None
    [secret_op, template_op, endpoint_op] = doc["operations"]
    assert (secret_op["kind"], secret_op["target"]) == ("create-secret", "rpdeploy_qwen25_7b_instruct_hf_token")
    assert (template_op["kind"], template_op["target"]) == ("create-template", "qwen25-7b-instruct-template")
    assert (endpoint_op["kind"], endpoint_op["target"]) == ("create-endpoint", "qwen25-7b-instruct")
    fields = {c["field"]: c["new"] for c in endpoint_op["changes"]}
    # In rpdeploy's own terms (deploy.yaml's names), whichever API carries them.
    assert fields["gpus"] == {"pools": ["AMPERE_24"], "excluded": ["NVIDIA GeForce RTX 3090", "NVIDIA RTX A5000"]}
    assert fields["workers_max"] == 2 and fields["allowed_cuda_versions"] == ["13.0"]
    assert fields["model_references"] == ["https://huggingface.co/Qwen/Qwen2.5-7B-Instruct:main"]
    text = cli("endpoint", "create", "--dry-run")
    assert text.stdout.startswith(
        "Would send:\n  create-secret 'rpdeploy_qwen25_7b_instruct_hf_token'\n"
        "  create-template 'qwen25-7b-instruct-template'"
    )
    assert f"env.HUGGING_FACE_HUB_TOKEN: (unset) -> '{HF_REFERENCE}'" in text.stdout
    assert mutations(emulator) == []
    state = emulator.state.snapshot()
    assert state["templates"] == [] and state["endpoints"] == []
    assert not (config.parent / ".rpdeploy" / "state.json").exists()  # a dry run records nothing either
    no_secrets(emulator, text)


def test_get_and_list(cli: CliRunnerFn, config: Path, emulator: Emulator) -> None:
    assert document(cli("endpoint", "list", "--json")) == {"ok": True, "endpoints": []}
    assert cli("endpoint", "list").stdout.strip() == "No endpoints."
    cli("endpoint", "create")
    # Someone else's endpoint on the same account, made with a config of its own.
    other_dir = config.parent / "other"
    other_dir.mkdir()
    write_config(other_dir, name="someone-else", workers_max=1)
    cli("endpoint", "create", "--config", other_dir / "deploy.yaml")
    ours, theirs = emulator.state.snapshot()["endpoints"]

    listed = document(cli("endpoint", "list", "--json"))
    assert listed["endpoints"] == [
        {
            "id": e["id"],
            "name": e["name"],
            "template_id": e["templateId"],
            "workers_min": e["workersMin"],
            "workers_max": e["workersMax"],
            "gpu_selection": {"pools": ["AMPERE_24"], "excluded": ["NVIDIA GeForce RTX 3090", "NVIDIA RTX A5000"]},
            "gpus": "NVIDIA L4",
        }
        for e in (ours, theirs)
    ]
    lines = cli("endpoint", "list").stdout.splitlines()
    assert lines == [
        f"{ours['id']}  qwen25-7b-instruct  workers 0..2  NVIDIA L4  ({POOL_TEXT})",
        f"{theirs['id']}  someone-else  workers 0..1  NVIDIA L4  ({POOL_TEXT})",
    ]

    got = document(cli("endpoint", "get", "--json"))
    assert set(got) == {"ok", "id", "version", "fields", "gpus", "urls"}
    assert got["gpus"] == "NVIDIA L4" and got["fields"]["gpus"]["pools"] == ["AMPERE_24"]
    assert got["id"] == ours["id"] and got["version"] == ours["version"]
    # In rpdeploy's terms; RunPod stores an empty locations as null (runpod-mcp: `locations || null`).
    assert got["fields"] == {
        "name": ours["name"],
        "gpus": {"pools": ["AMPERE_24"], "excluded": ["NVIDIA GeForce RTX 3090", "NVIDIA RTX A5000"]},
        "gpu_count": ours["gpuCount"],
        "workers_min": ours["workersMin"],
        "workers_max": ours["workersMax"],
        "idle_timeout": ours["idleTimeout"],
        "scaler_type": ours["scalerType"],
        "scaler_value": ours["scalerValue"],
        "flashboot": ours["flashBootType"] != "OFF",
        "execution_timeout_ms": ours["executionTimeoutMs"],
        "allowed_cuda_versions": ours["allowedCudaVersions"].split(","),
        "locations": [],
        "template_id": ours["templateId"],
        "model_references": ours["modelReferences"],
    }
    assert got["urls"]["health"] == f"{emulator.endpoint_url}/{ours['id']}/health"
    by_id = document(cli("endpoint", "get", "--id", theirs["id"], "--json"))
    assert by_id["id"] == theirs["id"] and by_id["fields"]["name"] == "someone-else"
    text = cli("endpoint", "get").stdout
    assert text.splitlines()[0] == f"Endpoint 'qwen25-7b-instruct' ({ours['id']}), version {ours['version']}"
    assert f"health                 {emulator.endpoint_url}/{ours['id']}/health" in text
    assert f"gpus                   {POOL_TEXT}\n  gpu types              NVIDIA L4\n" in text
    missing = cli("endpoint", "get", "--id", "zzzzzzzzzzzzzz", expected_code=7)
    assert errors_in(missing) == ["Error: no endpoint zzzzzzzzzzzzzz on RunPod"]
    assert [r.operation for r in emulator.requests.graphql() if r.operation in ("SaveEndpoint",)] == [
        "SaveEndpoint",
        "SaveEndpoint",
    ]  # two creates; get and list only read


# --- hostile values ---------------------------------------------------------------------------

HOSTILE = 'q"uo\'te $HOME ${x} `id` \\back\\slash {"a": [1]} } mutation { deleteEndpoint(id: "x") } ünï©ødé 🚀'


def test_hostile_values_round_trip_exactly(cli: CliRunnerFn, project: Path, emulator: Emulator) -> None:
    # As long as deploy.yaml allows (180 and 191 characters). Names are printable text (control
    # characters and bidi marks are refused: test_hardening), env values may hold anything.
    name = ("ep " + HOSTILE * 3)[:180]
    template_name = ("tpl " + HOSTILE + " line three " + HOSTILE * 2)[:191]
    values = {
        "HOSTILE": HOSTILE,
        "MULTILINE": 'first line\nsecond "line"\r\n\tthird\\n not a newline',
        "EMPTYISH": " ",
        "LONG": ('0123456789abcdef-ü-$-"-\\-{}' * 4000)[:100_000],
        "JSONISH": json.dumps({"nested": {"list": [1, "two", None]}, "quote": '"'}),
    }
    write_config(project, name=name, template_name=template_name, env={**values, "APP_SECRET": {"env": "APP_SECRET"}})
    cli("endpoint", "create")
    state = emulator.state.snapshot()
    [template], [endpoint] = state["templates"], state["endpoints"]
    assert endpoint["name"] == name
    assert template["name"] == template_name
    env = {e["key"]: e["value"] for e in template["env"]}
    for key, value in values.items():
        assert env[key] == value, key
    assert env["APP_SECRET"] == APP_SECRET
    # Values travel as GraphQL variables only, never pasted into the query text.
    for request in emulator.requests.graphql():
        assert isinstance(request.body, dict)
        assert HOSTILE not in request.body["query"] and name not in request.body["query"]
    # Read back, compared and found equal: a re-run sends nothing.
    emulator.requests.clear()
    assert document(cli("endpoint", "create", "--json"))["operations"] == []
    assert mutations(emulator) == []
    got = document(cli("endpoint", "get", "--json"))
    assert got["fields"]["name"] == name
    # A change next to the hostile values keeps them intact.
    write_config(
        project, name=name, template_name=template_name, workers_max=3,
        env={**values, "HOSTILE": HOSTILE + "!", "APP_SECRET": {"env": "APP_SECRET"}},
    )  # fmt: skip
    cli("endpoint", "update")
    [template] = emulator.state.snapshot()["templates"]
    env = {e["key"]: e["value"] for e in template["env"]}
    assert env["HOSTILE"] == HOSTILE + "!" and env["LONG"] == values["LONG"] and env["MULTILINE"] == values["MULTILINE"]
    assert stored_endpoint(emulator)["name"] == name
    # deleteTemplate goes by name: the hostile one is found and removed.
    cli("endpoint", "delete", "--yes")
    state = emulator.state.snapshot()
    assert state["templates"] == [] and state["endpoints"] == []


# --- failures: exit codes, one clear message, retried or not, no secret printed ------------------


def test_bad_key_exits_8_without_printing_it(
    cli: CliRunnerFn, config: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "rpa_WRONG_key_that_must_not_print_42"
    monkeypatch.setenv("RUNPOD_API_KEY", wrong)
    for args in (("endpoint", "create"), ("endpoint", "list"), ("endpoint", "get"), ("endpoint", "delete", "--yes")):
        result = cli(*args, expected_code=8)
        assert errors_in(result) == ["Error: RunPod rejected the API key (HTTP 401)"]
        assert "RUNPOD_API_KEY" in result.stderr  # the hint names the variable, not its value
        assert wrong not in result.stdout + result.stderr
        no_secrets(emulator, result)
    # One request each: a 401 is not retried.
    assert [r.status for r in emulator.requests.graphql()] == [401, 401, 401, 401]
    assert emulator.state.snapshot()["templates"] == []
    json_result = cli("endpoint", "list", "--json", expected_code=8)
    assert wrong not in json_result.stdout + json_result.stderr


def test_missing_key_exits_8_as_the_table_says(
    cli: CliRunnerFn, config: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNPOD_API_KEY")
    result = cli("endpoint", "list", expected_code=8)
    assert "RUNPOD_API_KEY is not set" in result.stderr
    assert emulator.requests.graphql() == []


def test_read_only_key_exits_8_and_changes_nothing(cli: CliRunnerFn, config: Path, emulator: Emulator) -> None:
    emulator.faults.read_only()
    cli("endpoint", "list")  # reads are allowed
    result = cli("endpoint", "create", expected_code=8)
    # The HF token's secret goes first (the template refers to it): the first refusal stops everything.
    assert errors_in(result) == ["Error: the API key is not allowed to run SecretCreate (RunPod: Unauthorized)"]
    assert "read/write access" in result.stderr
    assert mutations(emulator) == ["SecretCreate"]  # tried once, not retried
    assert emulator.state.snapshot()["templates"] == [] and emulator.state.snapshot()["secrets"] == []
    no_secrets(emulator, result)


def test_rate_limit_storm_is_retried_honouring_retry_after_then_exits_7(
    cli: CliRunnerFn, config: Path, emulator: Emulator
) -> None:
    from rpdeploy.runpod.controlplane import MAX_ATTEMPTS

    emulator.faults.graphql_rate_limit(count=100, retry_after=1)
    started = time.monotonic()
    result = cli("endpoint", "list", expected_code=7)
    elapsed = time.monotonic() - started
    assert errors_in(result) == [f"Error: RunPod rate-limited Endpoints (HTTP 429) {MAX_ATTEMPTS} times"]
    sent = [r for r in emulator.requests if r.path == "/graphql"]
    assert [r.status for r in sent] == [429] * MAX_ATTEMPTS
    assert elapsed >= (MAX_ATTEMPTS - 1) * 1.0  # waited Retry-After before every retry
    no_secrets(emulator, result)

    # A short burst passes: the retry succeeds and the command does its job.
    emulator.faults.clear()
    emulator.faults.graphql_rate_limit(count=2, retry_after=1)
    emulator.requests.clear()
    cli("endpoint", "create")
    assert len(emulator.state.snapshot()["endpoints"]) == 1
    assert [r.status for r in emulator.requests if r.path == "/graphql"][:3] == [429, 429, 200]


def test_a_server_error_on_a_read_is_retried(cli: CliRunnerFn, config: Path, emulator: Emulator) -> None:
    cli("endpoint", "create")
    emulator.requests.clear()
    emulator.faults.graphql_http_status(503, count=2)
    listed = cli("endpoint", "list", "--json")
    assert len(document(listed)["endpoints"]) == 1
    # The endpoints (asked three times), then the GPU pools that name their GPUs.
    sent = [r for r in emulator.requests if r.path == "/graphql"]
    assert [r.status for r in sent] == [503, 503, 200, 200]
    assert [r.operation for r in sent[2:]] == ["Endpoints", "ServerlessGpuPools"]
    no_secrets(emulator, listed)


def test_an_unreachable_api_exits_7_naming_the_url(
    cli: CliRunnerFn, config: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.workers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("RUNPOD_API_BASE_URL", url)
    result = cli("endpoint", "list", expected_code=7)
    [error] = errors_in(result)
    assert error.startswith(f"Error: cannot reach the RunPod API at {url}/graphql: ConnectError")
    assert "RUNPOD_API_BASE_URL" in result.stderr
    no_secrets(emulator, result)


def test_a_validation_error_exits_7_with_one_clear_message(cli: CliRunnerFn, project: Path, emulator: Emulator) -> None:
    write_config(project, allowed_cuda_versions=["14.1"])
    result = cli("endpoint", "create", expected_code=7)
    [error] = errors_in(result)
    assert error.startswith("Error: RunPod refused SaveEndpoint: Invalid allowedCudaVersions: '14.1' is not a CUDA")
    assert mutations(emulator) == ["SecretCreate", "SaveTemplate", "SaveEndpoint"]  # the endpoint was not retried
    assert emulator.state.snapshot()["endpoints"] == []
    no_secrets(emulator, result)
    as_json = document(cli("endpoint", "create", "--json", expected_code=7))
    assert as_json["ok"] is False and set(as_json) == {"ok", "error"}
    assert as_json["error"]["type"] == "ApiError" and as_json["error"]["exit_code"] == 7
    assert as_json["error"]["message"] == error.removeprefix("Error: ") and as_json["error"]["status"] == 200
    # Fixing the config converges on the template made before the failure.
    write_config(project)
    cli("endpoint", "create")
    state = emulator.state.snapshot()
    assert len(state["templates"]) == 1 and len(state["endpoints"]) == 1


def test_a_template_used_by_another_endpoint_is_left_alone(cli: CliRunnerFn, project: Path, emulator: Emulator) -> None:
    write_config(project)
    cli("endpoint", "create")
    other = project / "other"
    other.mkdir()
    write_config(other, name="another-endpoint", template_name="qwen25-7b-instruct-template")
    [template] = emulator.state.snapshot()["templates"]
    result = cli("endpoint", "create", "--config", other / "deploy.yaml", expected_code=7)
    assert errors_in(result) == [
        "Error: RunPod already has objects with the names deploy.yaml gives, and nothing says they are this "
        "deployment's:"
    ]
    assert (
        f"\n  - template 'qwen25-7b-instruct-template' ({template['id']}): marked "
        "RPDEPLOY_DEPLOYMENT=qwen25-7b-instruct, this deployment is another-endpoint\n"
    ) in result.stderr
    assert "rpdeploy endpoint create --adopt" in result.stderr
    # Even adopted, a template bound to another endpoint stays that endpoint's.
    adopted = cli("endpoint", "create", "--adopt", "--config", other / "deploy.yaml", expected_code=7)
    assert errors_in(adopted) == [
        "Error: template 'qwen25-7b-instruct-template' is used by endpoint 'qwen25-7b-instruct' "
        f"({emulator.state.snapshot()['endpoints'][0]['id']}), not by 'another-endpoint'"
    ]
    assert len(emulator.state.snapshot()["endpoints"]) == 1
    assert mutations(emulator) == ["SecretCreate", "SaveTemplate", "SaveEndpoint"]


# --- the core, with a client timeout short enough to test -------------------------------------


def _load(path: Path) -> Any:
    from rpdeploy.config import load_config

    return load_config(path)


def test_timeouts_retry_reads_never_mutations_and_a_rerun_does_not_duplicate(
    cli: CliRunnerFn, config: Path, emulator: Emulator
) -> None:
    from rpdeploy.errors import ApiError
    from rpdeploy.runpod.controlplane import GraphQLControlPlane
    from rpdeploy.runpod.deployment import apply_plan, connect

    cfg = _load(config)
    sleeps: list[float] = []
    with connect(cfg, timeout=0.5, sleep=sleeps.append) as cp:
        # A read that times out is asked again.
        emulator.faults.graphql_delay(1.5, count=1)
        assert cp.list_endpoints() == []
        assert isinstance(cp, GraphQLControlPlane)
        assert cp.sent == [("Endpoints", False), ("Endpoints", False)] and len(sleeps) == 1

        # A create that times out is not sent again (RunPod may have done it)...
        plan = _plan(cp, cfg)
        emulator.requests.clear()
        emulator.faults.graphql_delay(1.5, count=1)
        with pytest.raises(ApiError) as caught:
            apply_plan(cp, plan, cfg)
        assert "did not answer SaveTemplate in time" in caught.value.message
        assert "re-run" in (caught.value.hint or "")
    _until(lambda: len(emulator.state.snapshot()["templates"]) == 1)  # ...and RunPod did it.
    assert mutations(emulator) == ["SaveTemplate"]

    # The same for the endpoint itself.
    with connect(cfg, timeout=0.5, sleep=sleeps.append) as cp:
        plan = _plan(cp, cfg)
        assert [op.kind for op in plan.operations] == ["create-endpoint"]
        emulator.requests.clear()
        emulator.faults.graphql_delay(1.5, count=1)
        with pytest.raises(ApiError):
            apply_plan(cp, plan, cfg)
    _until(lambda: len(emulator.state.snapshot()["endpoints"]) == 1)
    assert mutations(emulator) == ["SaveEndpoint"]

    # A re-run finds both by name: no second template, no second endpoint, nothing sent for them
    # (only the HF token's secret, which apply_plan alone does not make).
    emulator.requests.clear()
    assert [op["kind"] for op in document(cli("endpoint", "create", "--json"))["operations"]] == ["create-secret"]
    state = emulator.state.snapshot()
    assert len(state["templates"]) == 1 and len(state["endpoints"]) == 1
    assert mutations(emulator) == ["SecretCreate"]


def test_a_server_error_on_a_mutation_is_not_retried(cli: CliRunnerFn, config: Path, emulator: Emulator) -> None:
    from rpdeploy.errors import ApiError
    from rpdeploy.runpod.deployment import apply_plan, connect

    cfg = _load(config)
    with connect(cfg) as cp:
        plan = _plan(cp, cfg)
        emulator.requests.clear()
        emulator.faults.graphql_http_status(502, count=1)
        with pytest.raises(ApiError) as caught:
            apply_plan(cp, plan, cfg)
    assert caught.value.status == 502 and caught.value.exit_code == 7
    assert [r.status for r in emulator.requests if r.path == "/graphql"] == [502]
    cli("endpoint", "create")
    assert len(emulator.state.snapshot()["templates"]) == 1


def test_a_rate_limited_mutation_is_retried(config: Path, emulator: Emulator) -> None:
    from rpdeploy.runpod.deployment import apply_plan, connect

    cfg = _load(config)
    sleeps: list[float] = []
    with connect(cfg, sleep=sleeps.append) as cp:
        plan = _plan(cp, cfg)
        emulator.requests.clear()
        emulator.faults.graphql_rate_limit(count=1, retry_after=2)
        apply_plan(cp, plan, cfg)
    # 429 means RunPod refused before doing anything, so the create is sent again.
    assert [r.status for r in emulator.requests if r.path == "/graphql"] == [429, 200, 200]
    assert sleeps and sleeps[0] >= 2.0
    state = emulator.state.snapshot()
    assert len(state["templates"]) == 1 and len(state["endpoints"]) == 1


def test_a_template_name_taken_meanwhile_is_refused_with_one_message(config: Path, emulator: Emulator) -> None:
    from rpdeploy.errors import ApiError
    from rpdeploy.runpod.deployment import apply_plan, connect
    from rpdeploy.runpod.models import TemplateSpec

    cfg = _load(config)
    with connect(cfg) as cp:
        plan = _plan(cp, cfg)
        # Another process creates a template of that name between our read and our write.
        cp.save_template(TemplateSpec(name=cfg.endpoint.template, image=IMAGE, env=(), container_disk_gb=10))
        with pytest.raises(ApiError) as caught:
            apply_plan(cp, plan, cfg)
    assert caught.value.exit_code == 7
    assert caught.value.message == (
        "RunPod refused SaveTemplate: Template name must be unique: a template named "
        "'qwen25-7b-instruct-template' already exists"
    )
    assert len(emulator.state.snapshot()["templates"]) == 1


def _plan(cp: Any, cfg: Any) -> Any:
    from rpdeploy.runpod.deployment import ownership, plan_endpoint, resolve_gpus, worker_image

    return plan_endpoint(cp, cfg, image=worker_image(cfg, None), gpus=resolve_gpus(cp, cfg), owner=ownership(cfg))


def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the emulator never applied the delayed request"
        time.sleep(0.05)
