"""The machine contract: exit codes, JSON shapes, no prompts in CI, no colour without a terminal."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rpdeploy.emulator import Emulator
from rpdeploy.errors import EXIT_CODES
from tests.conftest import ROOT, CliRunnerFn
from tests.support.terminal import run_in_terminal

ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: Commands whose output is itself the machine format (a JSON Schema, a shell script, the
#: emulator's shell assignments are also available as --json).
NO_JSON_FLAG = {("schema",), ("completion",)}


def _leaf_commands() -> list[tuple[tuple[str, ...], Any]]:
    import typer

    from rpdeploy.cli import app

    root = typer.main.get_command(app)
    out = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, (*path, name))
        else:
            out.append((path, command))

    walk(root, ())
    return out


def test_readme_exit_code_table_matches_the_code() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("| code | meaning |", 1)[1].split("\n\n", 1)[0]
    table = re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.MULTILINE)
    assert [(int(code), meaning) for code, meaning in table] == list(EXIT_CODES)


def test_every_command_has_json_output() -> None:
    missing = []
    for path, command in _leaf_commands():
        names = {opt for param in command.params for opt in getattr(param, "opts", [])}
        if "--json" not in names and path not in NO_JSON_FLAG:
            missing.append(" ".join(path))
    assert missing == []


def test_every_command_has_help_with_an_example(cli: CliRunnerFn) -> None:
    for path, command in _leaf_commands():
        assert command.help and "Example" in command.help, " ".join(path)


@pytest.fixture
def method1(project: Path) -> Path:  # the reference deploy.yaml in an empty project
    shutil.copy(ROOT / "deploy.yaml", project / "deploy.yaml")
    return project


# The JSON documents a pipeline can rely on: their top-level keys are pinned here.
SHAPES: dict[str, set[str]] = {
    "validate": {"ok", "config", "method", "model", "endpoint", "gpu", "backend", "warnings"},
    "render": {"ok", "files"},
    "check": {"ok", "check"},
    "plan": {"ok", "image", "operations", "backend", "fit", "check_lines", "notes", "method_switch"}
    | {"steps", "changes_pending"},
    "status": {"ok", "stages", "endpoint_id", "health", "backend", "notes", "target", "fleet"},
    "endpoint create": {"ok", "dry_run", "operations", "endpoint"},
    "endpoint get": {"ok", "id", "version", "fields", "gpus", "urls"},
    "endpoint list": {"ok", "endpoints"},
    "smoke-test": {"ok", "summary", "result"},
    "doctor": {"ok", "healthy", "checks"},
    "build": {"ok", "built", "image", "reason"},  # worker-vllm: nothing to build
    "destroy": {"ok", "done", "notes", "waited"},
}


def test_json_shapes(cli: CliRunnerFn, method1: Path, runpod_emulator: Emulator) -> None:
    def doc(*args: str, code: int = 0) -> dict[str, Any]:
        result = cli(*args, "--json", expected_code=code)
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    seen = {
        "validate": doc("validate"),
        "render": doc("render"),
        "check": doc("check", "--offline"),
        "plan": doc("plan"),
        "endpoint create": doc("endpoint", "create"),
        "endpoint get": doc("endpoint", "get"),
        "endpoint list": doc("endpoint", "list"),
        "smoke-test": doc("smoke-test"),
        "status": doc("status"),
        "doctor": doc("doctor"),
        "build": doc("build"),
        "destroy": doc("destroy", "--yes"),
    }
    for name, document in seen.items():
        assert set(document) == SHAPES[name], name
        assert document["ok"] is True, name
    init = json.loads(cli("init", "--dir", "other", "-m", "2", "--yes", "--json").stdout)
    assert set(init) == {"ok", "method", "files", "next_steps"}
    assert set(init["files"][0]) == {"path", "action", "backup"}


def test_deploy_json_is_ndjson_events_then_a_result(cli: CliRunnerFn, method1: Path, runpod_emulator: Emulator) -> None:
    lines = cli("deploy", "--json").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert all({"event", "time"} <= set(e) for e in events)
    stages = [e for e in events if e["event"] == "stage"]
    assert all({"stage", "status"} <= set(e) for e in stages)
    assert events[-1]["event"] == "result"
    assert {"ok", "stages", "seconds", "endpoint_id", "urls", "smoke"} <= set(events[-1])


def test_errors_are_one_json_document_with_type_and_exit_code(cli: CliRunnerFn, method1: Path) -> None:
    (method1 / "deploy.yaml").write_text("method: 9\n")
    result = cli("validate", "--json", expected_code=3)
    [line] = result.stdout.splitlines()  # one line, so it also ends an NDJSON stream cleanly
    error = json.loads(line)
    assert error["ok"] is False
    assert {"type", "exit_code", "message", "hint", "issues"} <= set(error["error"])
    assert error["error"]["exit_code"] == 3
    deploy = cli("deploy", "--json", expected_code=3)
    assert json.loads(deploy.stdout.splitlines()[-1])["error"]["type"] == "ConfigError"


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (("init",), "method"),
        (("destroy",), "confirmation"),
        (("rollback",), "confirmation"),
        (("endpoint", "delete"), "confirmation"),
    ],
)
@pytest.mark.parametrize("how", ["CI", "no terminal"])
def test_no_prompts_without_a_person(
    cli: CliRunnerFn, method1: Path, runpod_emulator: Emulator, args: tuple[str, ...], missing: str, how: str
) -> None:
    if args[0] == "endpoint":
        cli("endpoint", "create")
    env = {"CI": "true"} if how == "CI" else {"CI": ""}
    if args == ("init",):
        (method1 / "deploy.yaml").unlink()
    if args == ("rollback",):  # something to roll back to, or it would say so without asking anything
        from rpdeploy.deploy.ledger import Ledger

        ledger = Ledger.load(method1 / ".rpdeploy")
        ledger.history += [{"at": 1.0, "image": "a@sha256:1"}, {"at": 2.0, "image": "b@sha256:2"}]
        ledger.save()
    # CliRunner's stdin is never a terminal; with CI unset that alone must stop every prompt.
    result = cli(*args, expected_code=3, env=env, input="y\n")
    assert f"missing value: {missing}" in result.stderr


def test_backend_configure_does_not_prompt_in_ci(cli: CliRunnerFn, project: Path) -> None:
    env_file = project / "app.env"
    (project / "deploy.yaml").write_text(
        (ROOT / "deploy.yaml").read_text() + f"backend:\n  env_file: {env_file}\n  restart: 'true'\n"
    )
    env = {"CI": "true", "RUNPOD_API_KEY": "rpa_contract_key_123456"}
    cli("backend", "configure", "--endpoint-id", "abc123def456gh", env=env)
    assert "RUNPOD_ENDPOINT_ID=abc123def456gh" in env_file.read_text()


def test_colours_only_on_a_terminal_and_never_with_no_color(project: Path) -> None:
    """`init --force` over an edited file warns (in yellow on a terminal) that it kept a copy."""
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "CI", "FORCE_COLOR")}
    base["TERM"] = "xterm-256color"
    argv = ["init", "-m", "1", "--yes", "--force"]

    def edit() -> None:
        (project / "deploy.yaml").write_text(f"# my edit {time.monotonic()}\n")

    edit()
    _, coloured = run_in_terminal(argv, project, env=base)
    assert "kept a copy" in coloured and ANSI.search(coloured), coloured  # the test can tell colour from none
    edit()
    _, plain = run_in_terminal(argv, project, env={**base, "NO_COLOR": "1"})
    assert "kept a copy" in plain and not ANSI.search(plain)
    edit()
    piped = subprocess.run(
        [sys.executable, "-m", "rpdeploy", *argv], cwd=project, env=base, capture_output=True, text=True, check=True
    )
    assert "kept a copy" in piped.stderr and not ANSI.search(piped.stderr + piped.stdout)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion(shell: str, tmp_path: Path) -> None:
    script = subprocess.run(
        [sys.executable, "-m", "rpdeploy", "completion", shell], capture_output=True, text=True, check=True
    ).stdout
    assert "_RPDEPLOY_COMPLETE" in script
    env = {**os.environ, "_RPDEPLOY_COMPLETE": f"complete_{shell}"}
    if shell == "bash":
        env.update(COMP_WORDS="rpdeploy deploy --only smo", COMP_CWORD="3")
    else:
        env.update(_TYPER_COMPLETE_ARGS="rpdeploy deploy --only smo")
        if shell == "fish":
            env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    rpdeploy = shutil.which("rpdeploy")
    assert rpdeploy, "the console script is installed"
    answer = subprocess.run([rpdeploy], env=env, capture_output=True, text=True, cwd=tmp_path).stdout
    assert "smoke-test" in answer
