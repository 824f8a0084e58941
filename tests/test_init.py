"""`rpdeploy init` and `rpdeploy render`: files that validate, and edits that are never lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rpdeploy.config import load_config
from tests.conftest import CliRunnerFn
from tests.support.terminal import run_in_terminal

WORKER_FILES = {
    1: set(),
    2: {"handler.py", "Dockerfile", "requirements.txt", ".dockerignore", "test_input.json"},
    3: {"app.py", "handler.py", "Dockerfile", "requirements.txt", ".dockerignore", "test_input.json"},
}


@pytest.mark.parametrize("method", [1, 2, 3])
def test_init_yes_writes_files_that_validate(cli: CliRunnerFn, project: Path, method: int) -> None:
    result = cli("init", "--method", method, "--yes", "--json")
    document = json.loads(result.stdout)
    written = {f["path"] for f in document["files"] if f["action"] == "created"}
    worker = {p.removeprefix("worker/") for p in written if p.startswith("worker/")}
    assert "deploy.yaml" in written
    assert worker == WORKER_FILES[method]
    assert cli("validate").exit_code == 0
    config = load_config(project / "deploy.yaml")
    assert config.method.number == method
    for path in (project / "worker").glob("*.py") if method > 1 else []:
        subprocess.run([sys.executable, "-m", "py_compile", str(path)], check=True)
    assert not (project / "worker").exists() or method > 1


def test_init_in_ci_without_yes_names_the_missing_value(cli: CliRunnerFn, project: Path) -> None:
    result = cli("init", expected_code=3, env={"CI": "true"})
    assert "missing value: method" in result.stderr
    assert "--method" in result.stderr
    assert not (project / "deploy.yaml").exists()


def test_init_with_flags_only_needs_no_yes(cli: CliRunnerFn, project: Path) -> None:
    cli(
        "init",
        "--method", "fastapi",
        "--model", "Qwen/Qwen2.5-0.5B-Instruct",
        "--name", "tiny-qwen",
        "--gpu", "A5000",
        "--registry", "ghcr.io",
        "--repository", "acme/tiny",
        env={"CI": "true"},
    )  # fmt: skip
    config = load_config(project / "deploy.yaml")
    assert (config.model.name, config.endpoint.name, config.endpoint.gpu) == (
        "Qwen/Qwen2.5-0.5B-Instruct",
        "tiny-qwen",
        "A5000",
    )
    assert config.image is not None and config.image.name == "ghcr.io/acme/tiny"


def test_bad_flag_values_are_config_errors_and_write_nothing(cli: CliRunnerFn, project: Path) -> None:
    result = cli("init", "-m", "2", "--model", "not a model!", "--yes", expected_code=3)
    assert "model.name" in result.stderr
    assert list(project.iterdir()) == []
    assert cli("init", "-m", "7", "--yes", expected_code=2).exit_code == 2


def test_rerun_is_a_no_op(cli: CliRunnerFn, project: Path) -> None:
    cli("init", "-m", "2", "--yes")
    document = json.loads(cli("init", "-m", "2", "--yes", "--json").stdout)
    assert {f["action"] for f in document["files"]} == {"unchanged"}


def test_edited_file_is_never_overwritten_and_nothing_else_is_written(cli: CliRunnerFn, project: Path) -> None:
    cli("init", "-m", "2", "--yes")
    handler = project / "worker" / "handler.py"
    handler.write_text(handler.read_text() + "\n# my change\n")
    (project / "worker" / "Dockerfile").unlink()
    result = cli("init", "-m", "2", "--yes", expected_code=4)
    assert "worker/handler.py" in result.stderr and "--force" in result.stderr
    assert handler.read_text().endswith("# my change\n")
    # The plan is checked before anything is written: the deleted Dockerfile is not back.
    assert not (project / "worker" / "Dockerfile").exists()


def test_force_keeps_a_backup(cli: CliRunnerFn, project: Path) -> None:
    cli("init", "-m", "2", "--yes")
    handler = project / "worker" / "handler.py"
    original = handler.read_text()
    handler.write_text("# mine\n")
    document = json.loads(cli("init", "-m", "2", "--yes", "--force", "--json").stdout)
    entry = next(f for f in document["files"] if f["path"] == "worker/handler.py")
    assert entry["action"] == "overwritten"
    assert (project / entry["backup"]).read_text() == "# mine\n"
    assert handler.read_text() == original


def test_a_file_rpdeploy_never_wrote_is_the_users(cli: CliRunnerFn, project: Path) -> None:
    (project / "deploy.yaml").write_text("# my own notes\n")
    cli("init", "-m", "1", "--yes", expected_code=4)
    assert (project / "deploy.yaml").read_text() == "# my own notes\n"


def test_render_follows_config_changes_but_not_over_edits(cli: CliRunnerFn, project: Path) -> None:
    cli("init", "-m", "3", "--yes")
    config = project / "deploy.yaml"
    config.write_text(config.read_text().replace("max_model_len: 8192", "max_model_len: 4096"))
    document = json.loads(cli("render", "--json").stdout)
    actions = {f["path"]: f["action"] for f in document["files"]}
    assert actions["worker/app.py"] == "updated"
    assert actions["worker/Dockerfile"] == "unchanged"
    assert "'4096'" in (project / "worker" / "app.py").read_text()

    app = project / "worker" / "app.py"
    app.write_text(app.read_text() + "\n# custom route\n")
    config.write_text(config.read_text().replace("max_model_len: 4096", "max_model_len: 2048"))
    result = cli("render", expected_code=4)
    assert "worker/app.py" in result.stderr
    assert app.read_text().endswith("# custom route\n")


def test_render_for_method_1_has_nothing_to_do(cli: CliRunnerFn, project: Path) -> None:
    cli("init", "-m", "1", "--yes")
    assert "nothing to render" in cli("render").stdout


def test_interactive_init_asks_in_a_terminal(project: Path) -> None:
    code, output = run_in_terminal(
        ["init"],
        project,
        answers=[
            ("Method", "2"),
            ("Hugging Face model id", "Qwen/Qwen2.5-1.5B-Instruct"),
            ("Endpoint name", ""),  # accept the default derived from the model
            ("GPU type", "L4"),
            ("Image registry", "127.0.0.1:5000"),
            ("Image repository", "team/qwen-small"),
            ("Backend to point at the endpoint", ""),  # none
        ],
    )
    assert code == 0, output
    config = load_config(project / "deploy.yaml")
    assert config.model.name == "Qwen/Qwen2.5-1.5B-Instruct"
    assert config.endpoint.name == "qwen2-5-1-5b-instruct"
    assert config.image is not None and config.image.name == "127.0.0.1:5000/team/qwen-small"
    assert (project / "worker" / "handler.py").exists()
