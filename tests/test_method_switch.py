"""`rpdeploy init --method N` in an existing project moves it to method N, in place.

deploy.yaml keeps everything but ``method:`` (and the image: section, which only methods 2 and 3
have: set aside as a comment when leaving them, put back when returning); the worker is written
for methods 2 and 3; nothing is written when something is in the way. `plan` names the switch.
The deploy of a switch, with a real backend host, is in tests/test_deploy_e2e_switch.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from rpdeploy.emulator import Emulator
from rpdeploy.worker.scaffold import KEPT_IMAGE_MARK
from tests.conftest import CliRunnerFn

MY_NOTES = "# my notes: the 7B model is what the product team tested\n"


def _init1(cli: CliRunnerFn, project: Path) -> Path:
    cli("init", "-m", "1", "--yes")
    config = project / "deploy.yaml"
    # The user's own edits: a comment and a setting of their own.
    config.write_text(MY_NOTES + config.read_text().replace("workers_max: 2", "workers_max: 3  # peak hours"))
    return config


def test_switching_to_method_2_and_back_keeps_the_file(cli: CliRunnerFn, project: Path) -> None:
    config = _init1(cli, project)
    before = config.read_text()

    moved = json.loads(
        cli("init", "-m", "2", "--registry", "ghcr.io", "--repository", "acme/qwen-worker", "--json").stdout
    )
    assert moved["switched_from"] == "worker-vllm" and moved["method"] == "custom-handler"
    actions = {f["path"]: f["action"] for f in moved["files"]}
    assert actions["deploy.yaml"] == "updated" and actions["worker/handler.py"] == "created"
    text = config.read_text()
    assert text == before.replace("method: worker-vllm", "method: custom-handler").replace(
        "\nendpoint:", "\nimage:\n  registry: ghcr.io\n  repository: acme/qwen-worker\n\nendpoint:"
    )
    assert "valid (custom-handler" in cli("validate").stdout
    assert (project / "worker" / "Dockerfile").is_file()

    # Back to method 1: the image: section is set aside, not lost.
    cli("init", "-m", "1")
    back = config.read_text()
    assert "method: worker-vllm" in back and f"{KEPT_IMAGE_MARK}\n# image:\n#   registry: ghcr.io\n" in back
    assert "valid (worker-vllm" in cli("validate").stdout
    # And to method 3: the same image: section again, the file otherwise as the user left it.
    cli("init", "-m", "3")
    assert config.read_text() == text.replace("method: custom-handler", "method: fastapi")
    assert (project / "worker" / "app.py").is_file()


def test_a_method_1_project_gets_an_image_section_to_fill_in(cli: CliRunnerFn, project: Path) -> None:
    _init1(cli, project)
    result = cli("init", "-m", "3")
    assert "Moved to method 3 (fastapi) from 1 (worker-vllm)" in result.stdout
    assert "edit image.repository in deploy.yaml" in result.stdout
    assert "repository: change-me/qwen2-5-7b-instruct-worker" in (project / "deploy.yaml").read_text()


def test_nothing_is_written_when_an_edited_worker_file_is_in_the_way(cli: CliRunnerFn, project: Path) -> None:
    cli("init", "-m", "2", "--yes")
    handler = project / "worker" / "handler.py"
    handler.write_text(handler.read_text() + "\n# my pre-processing\n")
    before = (project / "deploy.yaml").read_text()
    result = cli("init", "-m", "3", expected_code=4)
    assert "worker/handler.py" in result.stderr
    assert (project / "deploy.yaml").read_text() == before
    assert not (project / "worker" / "app.py").exists()
    # --force keeps a copy of the edited file and switches.
    forced = json.loads(cli("init", "-m", "3", "--force", "--json").stdout)
    kept = next(f["backup"] for f in forced["files"] if f["path"] == "worker/handler.py")
    assert (project / kept).read_text().endswith("# my pre-processing\n")
    assert "method: fastapi" in (project / "deploy.yaml").read_text()


def test_a_switch_changes_only_the_method(cli: CliRunnerFn, project: Path) -> None:
    config = _init1(cli, project)
    before = config.read_text()
    result = cli("init", "-m", "2", "--model", "Qwen/Qwen2.5-0.5B-Instruct", expected_code=2)
    assert "--model" in result.stderr and "only changes its method" in result.stderr
    assert config.read_text() == before


def test_a_baked_model_cannot_move_to_worker_vllm(cli: CliRunnerFn, project: Path) -> None:
    cli("init", "-m", "2", "--yes")
    config = project / "deploy.yaml"
    config.write_text(config.read_text().replace("# bake: true ", "bake: true   "))
    before = config.read_text()
    result = cli("init", "-m", "1", expected_code=3)
    assert "model.bake needs our own image" in result.stderr
    assert config.read_text() == before


def test_plan_shows_the_switch(cli: CliRunnerFn, project: Path, runpod_emulator: Emulator) -> None:
    _init1(cli, project)
    deployed = json.loads(cli("deploy", "--json").stdout.splitlines()[-1])
    endpoint_id = deployed["endpoint_id"]
    assert cli("plan", "--detailed-exitcode").exit_code == 0  # nothing to do

    cli("init", "-m", "2", "--registry", "127.0.0.1:5000", "--repository", "acme/qwen-worker")
    plan = json.loads(cli("plan", "--json", "--detailed-exitcode", expected_code=20).stdout)
    assert plan["method_switch"] == {"deployed": "worker-vllm", "wanted": "custom-handler", "endpoint_id": endpoint_id}
    assert plan["image"]["rebuild"] is True
    # The same template gets the new image: nothing is created or deleted, the endpoint stays.
    [operation] = plan["operations"]
    assert operation["kind"] == "update-template"
    changes = {c["field"]: (c["old"], c["new"]) for c in operation["changes"]}
    assert set(changes) == {"image", "env.RPDEPLOY_RELEASE", "env.VLLM_EXTRA_ARGS"}
    assert changes["image"][0] == "runpod/worker-v1-vllm:v2.25.2"
    # A new image is a new release; vLLM's fingerprint flags are worker-vllm's only (rpdeploy/runpod/release.py).
    old_release, new_release = changes["env.RPDEPLOY_RELEASE"]
    assert old_release != new_release and new_release.startswith("rel-")
    assert changes["env.VLLM_EXTRA_ARGS"] == (f"--fingerprint-mode custom --fingerprint-value {old_release}", None)
    text = cli("plan").stdout
    assert text.splitlines()[0] == (
        f"method: worker-vllm -> custom-handler (endpoint {endpoint_id} is updated in place: same id, same URL; "
        "the backend's settings do not change)"
    )

    # Without the ledger, the live template's image tells the method the endpoint runs.
    (project / ".rpdeploy" / "state.json").unlink()
    plan = json.loads(cli("plan", "--json", "--detailed-exitcode", expected_code=20).stdout)
    assert plan["method_switch"]["deployed"] == "worker-vllm"

    cli("init", "-m", "1")
    plan = json.loads(cli("plan", "--json").stdout)
    assert plan["method_switch"] is None and plan["changes_pending"] is False
