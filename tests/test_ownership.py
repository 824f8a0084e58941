"""Ownership, not name patterns: rpdeploy changes only what is this deployment's.

Objects are found by their exact names; one with the right name is changed or deleted only
when this project's ledger recorded it, or its container env carries this deployment's mark
(env RPDEPLOY_DEPLOYMENT: on the template under GraphQL, on the endpoint itself under REST
v2); anything else stops the command with exit 7 naming it, until ``--adopt``. Two projects
whose names differ by a suffix never touch each other. The tests that decide ownership run
over both APIs (``runpod_api``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from rpdeploy.emulator import Emulator
from tests.conftest import CliRunnerFn, mutations
from tests.emulator.emulator_support import Api
from tests.test_endpoint import errors_in, write_config

VLLM_IMAGE = "runpod/worker-v1-vllm:v2.25.2"


@pytest.fixture
def emulator(runpod_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    from tests.test_endpoint import APP_SECRET, HF_TOKEN

    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    monkeypatch.setenv("APP_SECRET", APP_SECRET)
    return runpod_emulator


def project_at(folder: Path, name: str, **settings: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder, name=name)
    if settings:
        document = yaml.safe_load(config.read_text())
        document.update(settings)
        config.write_text(yaml.safe_dump(document, sort_keys=False))
    return config


def stored(emulator: Emulator) -> dict[str, dict[str, Any]]:
    """Endpoints by name, with their template's name and env (no simulated fleet)."""
    state = emulator.state.snapshot()
    templates = {t["id"]: t for t in state["templates"]}
    return {
        e["name"]: {
            "id": e["id"],
            "workersMax": e["workersMax"],
            "version": e["version"],
            "template": templates[e["templateId"]]["name"],
            "mark": {v["key"]: v["value"] for v in templates[e["templateId"]]["env"]}.get("RPDEPLOY_DEPLOYMENT"),
        }
        for e in state["endpoints"]
    }


def console_endpoint(emulator: Emulator, name: str, *, mark: str | None = None) -> dict[str, Any]:
    """An endpoint made outside rpdeploy (the console, another tool): a template without our mark."""
    api = Api(emulator)
    try:
        env = [{"key": "MODEL_NAME", "value": "facebook/opt-125m"}]
        if mark is not None:
            env.append({"key": "RPDEPLOY_DEPLOYMENT", "value": mark})
        template = api.template(name=f"{name}-console-template", imageName=VLLM_IMAGE, env=env)
        return api.endpoint(template["id"], name=name, gpuIds="AMPERE_24", workersMax=1)
    finally:
        api.close()


@pytest.mark.parametrize(("first", "second"), [("billing", "billing-fb"), ("billing", "billing-2")])
def test_names_that_differ_by_a_suffix_are_independent(
    cli: CliRunnerFn, project: Path, emulator: Emulator, first: str, second: str, runpod_api: str
) -> None:
    a = project_at(project / "a", second)  # deployed first: the one a pattern would have matched
    b = project_at(project / "b", first)

    # Before b ever deployed, its destroy finds nothing of its own: a's endpoint is not touched.
    cli("deploy", "--config", a)
    before = stored(emulator)
    assert cli("destroy", "--yes", "--config", b).stdout.strip().endswith("nothing was left to delete")
    assert stored(emulator) == before

    cli("deploy", "--config", b)
    both = stored(emulator)
    assert set(both) == {first, second}
    assert both[second] == before[second]  # b's deploy left a's endpoint exactly as it was
    if runpod_api == "graphql":
        assert {both[first]["template"], both[second]["template"]} == {f"{first}-template", f"{second}-template"}
    else:  # REST v2 makes each endpoint its own template (named here after the endpoint)
        assert {both[n]["template"] for n in (first, second)} == {f"{n} {both[n]['id']}" for n in (first, second)}

    # Re-deploys change nothing; a change to one reaches only that one.
    emulator.requests.clear()
    cli("deploy", "--config", a)
    cli("deploy", "--config", b)
    assert mutations(emulator) == []
    write_config(b.parent, name=first, workers_max=3)
    cli("deploy", "--config", b)
    after = stored(emulator)
    assert after[first]["workersMax"] == 3 and after[second] == both[second]

    cli("destroy", "--yes", "--config", b)
    assert stored(emulator) == {second: both[second]}
    cli("destroy", "--yes", "--config", a)
    assert emulator.state.snapshot()["templates"] == []


def test_a_same_named_endpoint_without_our_mark_is_never_changed_without_adopt(
    cli: CliRunnerFn, project: Path, emulator: Emulator, runpod_api: str
) -> None:
    config = project_at(project, "billing")
    theirs = console_endpoint(emulator, "billing")
    before = emulator.state.snapshot()
    emulator.requests.clear()

    for args in (("deploy",), ("endpoint", "create"), ("endpoint", "update"), ("destroy", "--yes")):
        refused = cli(*args, "--config", config, expected_code=7)
        [error] = errors_in(refused)
        assert "RunPod already has objects with the names deploy.yaml gives" in error
        why = (
            "its template 'billing-console-template' carries no RPDEPLOY_DEPLOYMENT mark"
            if runpod_api == "graphql"
            else "its env carries no RPDEPLOY_DEPLOYMENT mark"  # v2 shows the env on the endpoint
        )
        assert f"  - endpoint 'billing' ({theirs['id']}): {why}" in refused.stderr
        assert f"rpdeploy {' '.join(a for a in args if a != '--yes')} --adopt" in refused.stderr
    refused = cli("endpoint", "delete", "--yes", "--config", config, expected_code=7)
    assert "rpdeploy endpoint delete --adopt" in refused.stderr
    assert mutations(emulator) == []
    assert emulator.state.snapshot()["endpoints"] == before["endpoints"]
    assert emulator.state.snapshot()["templates"] == before["templates"]

    # Adopted: it keeps its id, gets this deployment's (marked) container, and is ours from then on.
    cli("deploy", "--adopt", "--config", config)
    adopted = stored(emulator)["billing"]
    assert adopted["id"] == theirs["id"]
    emulator.requests.clear()
    cli("deploy", "--config", config)
    assert mutations(emulator) == []
    names = {t["name"] for t in emulator.state.snapshot()["templates"]}
    if runpod_api == "graphql":
        # It moves to this deployment's template; the one it was made with stays (never ours).
        assert (adopted["template"], adopted["mark"]) == ("billing-template", "billing")
        assert names == {"billing-console-template", "billing-template"}
    else:
        # v2 keeps no template link: the endpoint's own container is PATCHed, mark included.
        assert (adopted["template"], adopted["mark"]) == ("billing-console-template", "billing")
        assert names == {"billing-console-template"}


def test_another_deployments_mark_is_refused_too(
    cli: CliRunnerFn, project: Path, emulator: Emulator, runpod_api: str
) -> None:
    ours = project_at(project / "ours", "billing", deployment_id="0000000000000001")
    theirs = project_at(project / "theirs", "billing", deployment_id="0000000000000002")
    cli("deploy", "--config", theirs)
    before = stored(emulator)

    refused = cli("deploy", "--config", ours, expected_code=7)

    assert "marked RPDEPLOY_DEPLOYMENT=0000000000000002, this deployment is 0000000000000001" in refused.stderr
    assert stored(emulator) == before


def test_a_lost_ledger_converges_on_our_own_objects(
    cli: CliRunnerFn, project: Path, emulator: Emulator, runpod_api: str
) -> None:
    config = project_at(project, "billing", deployment_id="5eed5eed5eed5eed")
    cli("deploy", "--config", config)
    before = stored(emulator)
    assert before["billing"]["mark"] == "5eed5eed5eed5eed"

    shutil.rmtree(project / ".rpdeploy")
    emulator.requests.clear()
    cli("deploy", "--config", config)

    assert stored(emulator) == before  # same endpoint, same template, nothing new
    # Only the HF token's secret is set again: RunPod never shows a secret's value, so without
    # the ledger's fingerprint of it rpdeploy cannot tell it holds the same one.
    assert mutations(emulator) == ["SecretValueUpdate"]
    assert len(emulator.state.snapshot()["secrets"]) == 1
    cli("destroy", "--yes", "--config", config)
    assert emulator.state.snapshot()["endpoints"] == []


def test_objects_the_ledger_recorded_are_ours_and_get_the_mark(
    cli: CliRunnerFn, project: Path, emulator: Emulator, runpod_api: str
) -> None:
    config = project_at(project, "billing")
    cli("deploy", "--config", config)
    with emulator.state.lock:  # as deployed by an rpdeploy that did not mark its objects yet
        [template] = emulator.state.templates.values()
        template.env = [v for v in template.env if v.key != "RPDEPLOY_DEPLOYMENT"]
    assert stored(emulator)["billing"]["mark"] is None

    cli("deploy", "--config", config, "--force")

    assert stored(emulator)["billing"]["mark"] == "billing"


def test_init_writes_a_deployment_id_and_keeps_it(cli: CliRunnerFn, project: Path) -> None:
    cli("init", "-m", "1", "--yes")
    first = yaml.safe_load((project / "deploy.yaml").read_text())["deployment_id"]
    cli("init", "-m", "1", "--yes", "--force")
    again = yaml.safe_load((project / "deploy.yaml").read_text())["deployment_id"]
    other = project / "other"
    other.mkdir()
    cli("init", "-m", "1", "--yes", "--dir", other)

    assert len(first) == 16 and first == again
    assert yaml.safe_load((other / "deploy.yaml").read_text())["deployment_id"] != first


def test_the_mark_is_a_reserved_env_name(cli: CliRunnerFn, project: Path) -> None:
    write_config(project, env={"RPDEPLOY_DEPLOYMENT": "mine"})
    result = cli("validate", expected_code=3)
    assert "RPDEPLOY_DEPLOYMENT" in result.stderr
