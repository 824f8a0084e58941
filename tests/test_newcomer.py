"""A newcomer's first hour (issue 16): each thing that got in the way, as they met it.

The README snippets are run as written in tests/test_readme_snippets.py, the recorded walk-through
in tests/test_walkthrough.py, the one test command in tests/test_test_command.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from rpdeploy.config import load_config
from rpdeploy.emulator import Emulator
from rpdeploy.methods import Method
from tests.conftest import ROOT, CliRunnerFn, mutations
from tests.support.deploy_fixtures import this_checkout
from tests.support.terminal import run_in_terminal

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def method1(project: Path) -> Path:
    shutil.copy(ROOT / "deploy.yaml", project / "deploy.yaml")
    return project


def terminal_env(**extra: str) -> dict[str, str]:
    """A person at a terminal: no CI, colours allowed, this checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR", "GITHUB_ACTIONS")}
    return {**env, **this_checkout(), "TERM": "xterm-256color", "HF_HUB_OFFLINE": "1", **extra}


def set_model(project: Path, name: str, **model: Any) -> None:
    path = project / "deploy.yaml"
    document = yaml.safe_load(path.read_text())
    document["model"] = {**document["model"], "name": name, **model}
    path.write_text(yaml.safe_dump(document, sort_keys=False))


# --- a stand-in for the Hugging Face Hub's model API ------------------------------------------


class _Hub(BaseHTTPRequestHandler):
    """GET /api/models/ORG/NAME answers {"id", "gated"} for the models in ``gated`` (else 404)."""

    gated: ClassVar[dict[str, Any]] = {}

    def do_GET(self) -> None:
        name = self.path.removeprefix("/api/models/")
        if self.path.startswith("/api/models/") and name in self.gated:
            body, status = json.dumps({"id": name, "gated": self.gated[name]}).encode(), 200
        else:
            body, status = b'{"error": "Repository not found"}', 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[str]:
    """A real HTTP server standing in for huggingface.co: the HF_ENDPOINT to use."""
    _Hub.gated = {"acme/gated-llm": "manual", "acme/open-llm": False, "meta-llama/Llama-3.1-8B-Instruct": False}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- 1: the README's emulator snippet: tests/test_readme_snippets.py ------------------------------

# --- 3: `init --backend-host` in a method-2 project ------------------------------------------------


def test_init_backend_host_in_a_method_2_project_keeps_the_method_and_the_image(
    cli: CliRunnerFn, project: Path
) -> None:
    cli("init", "-m", "2", "--registry", "ghcr.io", "--repository", "acme/qwen-worker", "--yes")
    before = (project / "deploy.yaml").read_text()
    hint = cli("backend", "configure", expected_code=3).stderr
    assert "`rpdeploy init --backend-host user@host` writes it" in hint
    # What the hint says, as a pipeline would run it (CI, no --yes).
    result = cli("init", "--backend-host", "deploy@10.0.0.5", env={"CI": "true"})
    config = load_config(project / "deploy.yaml")
    assert config.method is Method.CUSTOM_HANDLER
    assert config.image is not None and config.image.name == "ghcr.io/acme/qwen-worker"
    assert config.backend is not None and config.backend.host == "deploy@10.0.0.5"
    after = (project / "deploy.yaml").read_text()
    # Everything else stays as it was, comments included: only the commented example became a section.
    assert _without_backend(after) == _without_backend(before)
    assert "method: custom-handler" in after and "# 1 worker-vllm: RunPod's prebuilt vLLM worker" in after
    assert "updated  deploy.yaml" in result.stdout
    # Running it again changes nothing.
    cli("init", "--backend-host", "deploy@10.0.0.5", env={"CI": "true"})
    assert (project / "deploy.yaml").read_text() == after


def _without_backend(text: str) -> list[str]:
    """deploy.yaml's lines but the backend section (or init's commented example of one)."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith(("backend:", "# backend:")):
            inside = True
        elif inside and not line.startswith(("  ", "#   ")):
            inside = False
        if not inside:
            out.append(line)
    return out


def test_init_backend_host_while_switching_method(cli: CliRunnerFn, project: Path) -> None:
    cli("init", "-m", "1", "--yes")
    cli("init", "-m", "2", "--repository", "acme/qwen-worker", "--backend-host", "ec2-user@app.internal")
    config = load_config(project / "deploy.yaml")
    assert config.method is Method.CUSTOM_HANDLER and config.backend is not None
    assert config.backend.host == "ec2-user@app.internal"


# --- 4: `backend configure` right after a deploy needs no --endpoint-id -------------------------


def _with_local_backend(project: Path) -> Path:
    env_file = project / "app.env"
    (project / "deploy.yaml").write_text(
        (ROOT / "deploy.yaml").read_text() + f"backend:\n  env_file: {env_file}\n  restart: 'true'\n"
    )
    return env_file


def test_backend_configure_takes_the_endpoint_the_project_deployed(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator
) -> None:
    env_file = _with_local_backend(project)
    created = json.loads(cli("endpoint", "create", "--json").stdout)["endpoint"]["endpoint_id"]
    result = cli("backend", "configure", "--yes")
    assert f"Using endpoint {created} (recorded by the last deploy)" in result.stderr
    assert f"RUNPOD_ENDPOINT_ID={created}" in env_file.read_text()
    properties = cli("backend", "properties").stdout
    assert f"/v2/{created}/openai/v1" in properties
    # Without the ledger, the endpoint deploy.yaml names is found on RunPod.
    shutil.rmtree(project / ".rpdeploy")
    env_file.unlink()
    result = cli("backend", "configure", "--yes")
    assert f"Using endpoint {created} (found on RunPod by its name)" in result.stderr
    assert f"RUNPOD_ENDPOINT_ID={created}" in env_file.read_text()


def test_backend_configure_before_any_deploy_says_what_to_do(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator
) -> None:
    _with_local_backend(project)
    result = cli("backend", "configure", "--yes", expected_code=3)
    assert "this project has not deployed an endpoint yet" in result.stderr
    assert "run `rpdeploy deploy` first, or pass --endpoint-id ID" in result.stderr


# --- 5: `deploy --only account` on a fresh ledger ----------------------------------------------


def test_deploy_only_account_on_a_fresh_ledger(cli: CliRunnerFn, method1: Path, runpod_emulator: Emulator) -> None:
    events = [json.loads(line) for line in cli("deploy", "--only", "account", "--json").stdout.splitlines()]
    done = {e["stage"] for e in events if e["event"] == "stage" and e["status"] == "done"}
    assert done == {"account"}
    assert events[-1]["event"] == "result" and events[-1]["ok"] is True
    assert mutations(runpod_emulator) == []  # nothing was created: only the account was checked
    status = json.loads(cli("status", "--json").stdout)
    assert {s["name"]: s["status"] for s in status["stages"]}["template"] == "pending"
    # A stage that needs an earlier one that never ran says which.
    shutil.rmtree(method1 / ".rpdeploy")
    result = cli("deploy", "--only", "template", expected_code=3)
    assert "stage 'account' has not run yet, and --only template needs what it makes" in result.stderr


# --- 6: interactive init ---------------------------------------------------------------------------


def test_init_asks_again_after_a_wrong_answer_and_keeps_the_others(project: Path) -> None:
    code, output = run_in_terminal(
        ["init"],
        project,
        answers=[
            ("Method", "4"),  # not a method: explained, asked again
            ("Method", "2"),
            ("Hugging Face model id", "Qwen/Qwen2.5-1.5B-Instruct"),
            ("Endpoint name", "small-qwen"),
            ("GPU type", "A5000"),
            ("Image registry", "ghcr.io"),
            ("Image repository", "Acme/Not A Repo"),  # refused the way deploy.yaml would refuse it
            ("Image repository", "acme/small-qwen"),
            ("Backend to point at the endpoint", "deploy@10.0.0.7"),
        ],
        env=terminal_env(),
    )
    assert code == 0, output
    assert "got '4'" in output and "try again" in output
    assert "--method" not in output.split("Image repository")[0]  # no flag the person never typed
    assert output.count("Hugging Face model id") == 1  # the earlier answers were kept, not asked again
    config = load_config(project / "deploy.yaml")
    assert (config.method, config.model.name, config.endpoint.name, config.endpoint.gpu) == (
        Method.CUSTOM_HANDLER,
        "Qwen/Qwen2.5-1.5B-Instruct",
        "small-qwen",
        "A5000",
    )
    assert config.image is not None and config.image.name == "ghcr.io/acme/small-qwen"
    assert config.backend is not None and config.backend.host == "deploy@10.0.0.7"


def test_init_gives_up_after_three_wrong_answers(project: Path) -> None:
    code, output = run_in_terminal(
        ["init"], project, answers=[("Method", "4"), ("Method", "five"), ("Method", "worker-vlm")], env=terminal_env()
    )
    assert code == 3, output
    assert "method: no valid answer in 3 tries" in output and "did you mean 'worker-vllm'" in output
    assert not (project / "deploy.yaml").exists()


def test_init_asks_for_the_token_variable_of_a_gated_model(project: Path, hub: str) -> None:
    env = terminal_env(HF_ENDPOINT=hub, HF_HUB_OFFLINE="")
    code, output = run_in_terminal(
        ["init"],
        project,
        answers=[
            ("Method", "1"),
            ("Hugging Face model id", "acme/gated-llm"),
            ("Env var holding your Hugging Face token", "MY_HF_TOKEN"),
            ("Endpoint name", ""),
            ("GPU type", ""),
            ("Backend to point at the endpoint", ""),
        ],
        env=env,
    )
    assert code == 0, output
    assert "acme/gated-llm is gated on the Hugging Face Hub (Hugging Face Hub, manual approval)" in output
    config = load_config(project / "deploy.yaml")
    assert config.model.hf_token is not None and config.model.hf_token.env == "MY_HF_TOKEN"
    assert config.backend is None
    assert "export MY_HF_TOKEN=..." in output


def test_init_does_not_ask_for_a_token_the_hub_says_is_not_needed(project: Path, hub: str) -> None:
    env = terminal_env(HF_ENDPOINT=hub, HF_HUB_OFFLINE="")
    answers = [("Method", "1"), ("Hugging Face model id", "acme/open-llm"), ("Endpoint name", ""), ("GPU type", "")]
    code, output = run_in_terminal(["init"], project, answers=[*answers, ("Backend", "")], env=env)
    assert code == 0, output
    assert "Hugging Face token" not in output
    assert load_config(project / "deploy.yaml").model.hf_token is None


def test_init_knows_gated_models_from_its_table_when_the_hub_is_out_of_reach(project: Path) -> None:
    env = terminal_env(HF_ENDPOINT=closed_port(), HF_HUB_OFFLINE="")
    code, output = run_in_terminal(
        ["init"],
        project,
        answers=[
            ("Method", "1"),
            ("Hugging Face model id", "meta-llama/Llama-3.1-8B-Instruct"),
            ("Env var holding your Hugging Face token", ""),  # the default, HF_TOKEN
            ("Endpoint name", ""),
            ("GPU type", ""),
            ("Backend", ""),
        ],
        env=env,
    )
    assert code == 0, output
    assert "(built-in table, the Hub could not be reached)" in output
    token = load_config(project / "deploy.yaml").model.hf_token
    assert token is not None and token.env == "HF_TOKEN"


def test_init_with_yes_names_the_token_of_a_gated_model(cli: CliRunnerFn, project: Path, hub: str) -> None:
    cli("init", "-m", "1", "--model", "acme/gated-llm", "--yes", env={"HF_ENDPOINT": hub})
    token = load_config(project / "deploy.yaml").model.hf_token
    assert token is not None and token.env == "HF_TOKEN"


def test_ctrl_c_at_a_question_exits_130(project: Path) -> None:
    code, output = run_in_terminal(["init"], project, answers=[("Method", "1"), ("Hugging Face", "\x03")],
                                   env=terminal_env())  # fmt: skip
    assert code == 130, output
    assert "Interrupted" in output and "Aborted" not in output
    assert not (project / "deploy.yaml").exists()


# --- 7: exit codes that tell the truth ---------------------------------------------------------


def test_declining_a_confirmation_exits_14_and_changes_nothing(
    method1: Path, runpod_emulator: Emulator, cli: CliRunnerFn
) -> None:
    cli("endpoint", "create")
    before = mutations(runpod_emulator)
    env = terminal_env(**runpod_emulator.env())
    code, output = run_in_terminal(["destroy"], method1, answers=[("[y/N]", "n")], env=env)
    assert code == 14, output
    assert "not confirmed: nothing was changed" in output and "Aborted" not in output
    code, output = run_in_terminal(["destroy", "--json"], method1, answers=[("[y/N]", "n")], env=env)
    assert code == 14, output
    # A terminal's output: a line may start with a spinner's clear-line codes when the machine is slow.
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", output)
    document = json.loads(next((line for line in plain.splitlines() if line.startswith("{")), plain))
    assert document["error"]["type"] == "DeclinedError" and document["error"]["exit_code"] == 14
    code, output = run_in_terminal(["destroy"], method1, answers=[("[y/N]", "\x03")], env=env)
    assert code == 130, output
    assert mutations(runpod_emulator) == before


def test_rollback_with_nothing_to_roll_back_says_so_before_asking(cli: CliRunnerFn, method1: Path) -> None:
    result = cli("rollback", env={"CI": "true"})  # no --yes: it must not get as far as the question
    assert result.stdout.startswith("Nothing to roll back: no earlier deployment is recorded")
    document = json.loads(cli("rollback", "--json").stdout)
    assert document["ok"] is True and document["nothing"].startswith("no earlier deployment")


def test_a_missing_api_key_exits_8(cli: CliRunnerFn, method1: Path) -> None:
    for args in (("deploy",), ("endpoint", "list"), ("endpoint", "get"), ("plan",)):
        result = cli(*args, "--json", expected_code=8)
        error = json.loads(result.stdout.splitlines()[-1])["error"]
        assert "RUNPOD_API_KEY is not set" in error["message"], args
        assert error["exit_code"] == 8


def test_endpoint_create_dry_run_before_a_push_sends_nothing_and_says_so(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator
) -> None:
    cli("init", "-m", "2", "--repository", "acme/qwen-worker", "--yes")
    result = cli("endpoint", "create", "--dry-run")
    assert "<the image `rpdeploy build --push` will push>" in result.stdout
    assert "no image has been pushed yet" in result.stderr
    assert mutations(runpod_emulator) == []
    real = cli("endpoint", "create", "--json", expected_code=3)
    assert json.loads(real.stdout)["error"]["message"].startswith("missing value: the image to run")


def test_usage_errors_under_json_are_the_json_error_document(cli: CliRunnerFn, method1: Path) -> None:
    for args in (("validate", "--bogus", "--json"), ("deploy", "--json", "--only"), ("init", "-m", "7", "--json")):
        result = cli(*args, expected_code=2)
        document = json.loads(result.stdout)
        assert document["ok"] is False and document["error"]["type"] == "UsageError", args
        assert document["error"]["exit_code"] == 2
        assert "Error" in result.stderr  # people still get the usual text


def test_the_readme_documents_declined_and_interrupted() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "| 14 | a confirmation was answered no: nothing was changed |" in readme
    assert "| 130 | interrupted (Ctrl-C, at a prompt too); re-run to resume |" in readme


# --- 8: status after the Quickstart; --emulator everywhere it makes sense -----------------------


def test_status_after_the_quickstart_shows_what_it_deployed(cli: CliRunnerFn, method1: Path) -> None:
    deployed = cli("deploy", "--emulator")
    endpoint_id = re.search(r"endpoint +(\w+)", deployed.stdout)
    assert endpoint_id is not None
    status = cli("status")
    assert "no endpoint recorded yet" not in status.stdout + status.stderr
    assert "Emulator sandbox" in status.stdout and f"Endpoint {endpoint_id.group(1)}" in status.stdout
    stages = {s["name"]: s["status"] for s in json.loads(cli("status", "--json").stdout)["stages"]}
    assert stages == {"account": "done", "template": "done", "gpu": "done", "endpoint": "done", "smoke-test": "done"}
    document = json.loads(cli("status", "--emulator", "--json").stdout)
    assert document["target"] == "emulator" and document["endpoint_id"] == endpoint_id.group(1)
    assert document["health"] is not None  # the sandbox's endpoint is there to ask
    got = json.loads(cli("endpoint", "get", "--emulator", "--json").stdout)
    assert got["id"] == endpoint_id.group(1)
    listed = json.loads(cli("endpoint", "list", "--emulator", "--json").stdout)["endpoints"]
    assert [e["id"] for e in listed] == [endpoint_id.group(1)]
    smoke = json.loads(cli("smoke-test", "--emulator", "--json").stdout)
    assert smoke["ok"] is True and smoke["result"]["target"] == endpoint_id.group(1)
    # A second deploy changes nothing (and does not show the last answer again).
    again = cli("deploy", "--emulator")
    assert "stages run: none (everything was up to date)" in again.stdout
    assert "answer" not in again.stdout
    assert "Deleted" in cli("endpoint", "delete", "--emulator", "--yes").stdout
    assert json.loads(cli("endpoint", "list", "--emulator", "--json").stdout)["endpoints"] == []


def test_the_sandbox_keeps_no_secret_values(cli: CliRunnerFn, method1: Path) -> None:
    token = "hf_sandboxSecretValue0123456789abcdef"
    set_model(method1, "Qwen/Qwen2.5-7B-Instruct", hf_token="HF_TOKEN", hf_token_delivery="template-env")
    cli("deploy", "--emulator", env={"HF_TOKEN": token})
    saved = (method1 / ".rpdeploy" / "emulator" / "account.json").read_text()
    assert token not in saved
    assert oct((method1 / ".rpdeploy" / "emulator" / "account.json").stat().st_mode & 0o777) == "0o600"


def test_logs_follows_the_same_conventions(
    cli: CliRunnerFn, method1: Path, runpod_emulator: Emulator, monkeypatch: Any
) -> None:
    """`rpdeploy logs` (issue 15) as every endpoint command: the project's endpoint, from any folder, JSON errors."""
    before = cli("logs", expected_code=3)
    assert "this project has not deployed an endpoint yet" in before.stderr
    as_json = json.loads(cli("logs", "--json", expected_code=3).stdout)
    assert as_json["ok"] is False and as_json["error"]["exit_code"] == 3
    cli("deploy")  # the smoke test starts a worker, which stays idle a while
    shutil.rmtree(method1 / ".rpdeploy")  # no ledger: the endpoint deploy.yaml names, found on RunPod
    (method1 / "worker").mkdir()
    monkeypatch.chdir(method1 / "worker")
    found = cli("logs", "--json")
    endpoint_id = re.search(r"Using endpoint (\w+) \(found on RunPod by its name\)", found.stderr)
    assert endpoint_id is not None
    lines = [json.loads(line) for line in found.stdout.splitlines()]
    assert lines and any(line["line"].startswith("Worker ready") for line in lines)
    assert runpod_emulator.state.endpoints[endpoint_id.group(1)].name == "qwen25-7b-instruct"


def test_logs_and_status_in_the_sandbox(cli: CliRunnerFn, method1: Path) -> None:
    cli("deploy", "--emulator")
    document = json.loads(cli("status", "--emulator", "--json").stdout)
    fleet = document["fleet"]  # the release history outlives the command that made it
    assert fleet["workers"] == [] and fleet["release"]["version"] == fleet["endpoint_version"]
    # The sandbox keeps the account, not its workers: logs says so instead of "send a request".
    result = cli("logs", "--emulator", expected_code=7)
    assert f"endpoint {document['endpoint_id']} has no active worker" in result.stderr
    assert "the sandbox's workers end with the command that started them" in result.stderr


# --- 9: what validate, check, doctor and deploy say about a gated model, a placeholder, a key ------


def test_a_gated_model_without_a_token_is_flagged_everywhere(
    cli: CliRunnerFn, method1: Path, runpod_emulator: Emulator
) -> None:
    set_model(method1, "meta-llama/Llama-3.1-8B-Instruct")
    validate = cli("validate", "--json")
    [warning] = json.loads(validate.stdout)["warnings"]
    assert re.match(r"deploy\.yaml:\d+:\d+: model\.hf_token: meta-llama/Llama-3\.1-8B-Instruct is gated", warning)
    assert "Warning: deploy.yaml:" in validate.stderr
    check = json.loads(cli("check", "--offline", "--json").stdout)["check"]
    assert any("meta-llama/Llama-3.1-8B-Instruct is gated" in w for w in check["warnings"])
    doctor = json.loads(cli("doctor", "--json", expected_code=11).stdout)
    access = next(c for c in doctor["checks"] if c["name"] == "model access")
    assert access["status"] == "failed" and "set model.hf_token" in access["fix"]
    deploy = cli("deploy", expected_code=11, env={"HF_HUB_OFFLINE": "1"})
    assert "is gated on the Hugging Face Hub" in deploy.stderr
    assert mutations(runpod_emulator) == []  # stopped before anything was made
    set_model(method1, "meta-llama/Llama-3.1-8B-Instruct", hf_token="HF_TOKEN")
    assert json.loads(cli("validate", "--json").stdout)["warnings"] == []
    doctor = json.loads(cli("doctor", "--json", env={"HF_TOKEN": "hf_x" * 8}).stdout)
    assert next(c for c in doctor["checks"] if c["name"] == "model access")["status"] == "ok"


def test_the_hub_decides_gatedness_when_it_answers(cli: CliRunnerFn, method1: Path, hub: str) -> None:
    set_model(method1, "acme/gated-llm")  # not in the built-in table: only the Hub knows
    env = {"HF_ENDPOINT": hub}
    check = json.loads(cli("check", "--json", env=env).stdout)["check"]
    assert any("acme/gated-llm is gated on the Hugging Face Hub (Hugging Face Hub" in w for w in check["warnings"])
    set_model(method1, "meta-llama/Llama-3.1-8B-Instruct")  # the table says gated, this Hub says not
    check = json.loads(cli("check", "--json", env=env).stdout)["check"]
    assert not any("is gated" in w for w in check["warnings"])


def test_the_placeholder_repository_is_flagged(cli: CliRunnerFn, project: Path, runpod_emulator: Emulator) -> None:
    cli("init", "-m", "2", "--yes")
    validate = cli("validate", "--json")
    [warning] = json.loads(validate.stdout)["warnings"]
    assert re.match(r"deploy\.yaml:\d+:\d+: image\.repository: 'change-me/", warning)
    doctor = json.loads(cli("doctor", "--json", expected_code=11).stdout)
    repository = next(c for c in doctor["checks"] if c["name"] == "image repository")
    assert repository["status"] == "failed" and "placeholder" in repository["detail"]


def test_a_key_pasted_where_its_variable_name_belongs_is_refused_unprinted(cli: CliRunnerFn, method1: Path) -> None:
    key = "rpa_ABCDEF0123456789ABCDEF0123456789ABCDEF01"
    with (method1 / "deploy.yaml").open("a") as handle:
        handle.write(f"runpod:\n  api_key: {{env: {key}}}\n")
    for args in (("validate",), ("plan",), ("doctor",)):
        result = cli(*args, expected_code=3)
        assert "looks like a RunPod API key itself" in result.stderr, args
        assert key not in result.stdout + result.stderr


# --- 10: commands from anywhere in the project, and without one ---------------------------------


def test_commands_find_the_project_from_a_subfolder(cli: CliRunnerFn, project: Path, monkeypatch: Any) -> None:
    cli("init", "-m", "2", "--repository", "acme/qwen-worker", "--yes")
    monkeypatch.chdir(project / "worker")
    result = cli("validate")
    assert result.stdout.startswith("../deploy.yaml: valid (custom-handler")
    assert json.loads(cli("status", "--json").stdout)["stages"][0]["name"] == "handler"  # the project's stages
    # --config names the file itself: no search.
    missing = cli("validate", "--config", "deploy.yaml", expected_code=3)
    assert "deploy.yaml not found" in missing.stderr and "any folder above" not in missing.stderr
    # Never above a ceiling folder.
    monkeypatch.setenv("RPDEPLOY_CEILING_DIRECTORIES", str(project))
    ceiling = cli("validate", expected_code=3)
    assert f"deploy.yaml not found in {project / 'worker'} or any folder above it" in ceiling.stderr


def test_endpoint_list_needs_no_deploy_yaml(cli: CliRunnerFn, project: Path, runpod_emulator: Emulator) -> None:
    other = project / "elsewhere"
    other.mkdir()
    shutil.copy(ROOT / "deploy.yaml", other / "deploy.yaml")
    cli("endpoint", "create", "--config", other / "deploy.yaml")
    listed = cli("endpoint", "list")
    assert "qwen25-7b-instruct" in listed.stdout and "NVIDIA L4" in listed.stdout
    # The GPU by name beside its pool in words; never the raw gpuIds text ("AMPERE_24,-NVIDIA ...").
    assert ",-NVIDIA" not in listed.stdout and "AMPERE_24 without" in listed.stdout
    selection = json.loads(cli("endpoint", "list", "--json").stdout)["endpoints"][0]["gpu_selection"]
    assert selection["pools"] == ["AMPERE_24"] and "NVIDIA RTX A5000" in selection["excluded"]


# --- 11: the always-on question, and Ctrl-C during the smoke test ---------------------------------


def test_the_always_on_question_names_the_monthly_price(method1: Path, runpod_emulator: Emulator) -> None:
    (method1 / "deploy.yaml").write_text(
        (method1 / "deploy.yaml").read_text().replace("workers_min: 0", "workers_min: 1")
    )
    env = terminal_env(**runpod_emulator.env())
    code, output = run_in_terminal(["deploy"], method1, answers=[("Deploy anyway?", "n")], env=env)
    assert code == 14, output
    question = ANSI.sub("", output).split("Deploy anyway?")[0].rsplit("\n", 3)
    assert re.search(r"1 worker\(s\) billed around the clock.*about \$[\d,]+\.\d\d/month", " ".join(question), re.S)
    assert mutations(runpod_emulator) == []


def _smoke_process(project: Path, emu: Emulator, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rpdeploy", *args],
        cwd=project,
        env={**os.environ, **this_checkout(), **emu.env()},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _jobs(emu: Emulator) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = emu.state.snapshot()["jobs"]
    return jobs


def _wait(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("when", ["while /runsync holds", "while polling /status"])
def test_ctrl_c_during_the_smoke_test_cancels_its_job(
    cli: CliRunnerFn, method1: Path, when: str, monkeypatch: Any
) -> None:
    hold = 3.0 if when == "while /runsync holds" else 0.5
    with Emulator("rpa_TEST_ctrl_c_0123456789", cold_start=0.2, execution_time=0.05, runsync_wait=hold) as emu:
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        endpoint_id = json.loads(cli("endpoint", "create", "--json").stdout)["endpoint"]["endpoint_id"]
        emu.faults.no_capacity(endpoint_id=endpoint_id)  # the job stays queued: no worker ever starts
        process = _smoke_process(method1, emu, "smoke-test", "--timeout", "120")
        _wait(lambda: _jobs(emu))
        if when == "while polling /status":
            _wait(lambda: any(r.path.startswith(f"/v2/{endpoint_id}/status") for r in emu.requests.all()))
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        [job] = _jobs(emu)
        assert job["status"] == "CANCELLED", err
        assert f"smoke-test job {job['id']} cancelled" in err


def test_ctrl_c_during_deploy_says_interrupted_not_running(method1: Path, monkeypatch: Any) -> None:
    with Emulator("rpa_TEST_ctrl_c_0123456789", cold_start=0.2, execution_time=0.05, runsync_wait=0.5) as emu:
        emu.faults.no_capacity()
        process = _smoke_process(method1, emu, "deploy")
        _wait(lambda: _jobs(emu))
        _wait(lambda: any("/status/" in r.path for r in emu.requests.all()))
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert "[smoke-test] interrupted" in err and "Interrupted" in err
        assert _jobs(emu)[0]["status"] == "CANCELLED"
    status = subprocess.run(
        [sys.executable, "-m", "rpdeploy", "status", "--json"], cwd=method1, capture_output=True, text=True,
        env={**os.environ, **this_checkout(), "RUNPOD_API_KEY": "rpa_unused_here_0123456789"},
    )  # fmt: skip
    stages = {s["name"]: s for s in json.loads(status.stdout)["stages"]}
    assert stages["smoke-test"]["status"] == "failed" and stages["smoke-test"]["error"] == "interrupted"


# --- 12: polish ----------------------------------------------------------------------------------


def test_deploy_output_says_each_thing_once_and_lines_up(
    cli: CliRunnerFn, method1: Path, runpod_emulator: Emulator
) -> None:
    first = cli("deploy", env={"HF_HUB_OFFLINE": "1"})
    assert "fits: fits:" not in first.stderr and first.stderr.count("fits: ") == 1
    labelled = [
        line for line in first.stdout.splitlines() if re.match(r"  (endpoint|runsync|health|openai_base|answer) ", line)
    ]
    assert len(labelled) == 5
    assert len({len(re.match(r"  \S+ +", line).group(0)) for line in labelled}) == 1  # type: ignore[union-attr]
    again = cli("deploy", env={"HF_HUB_OFFLINE": "1"})
    assert "stages run: none" in again.stdout and "answer" not in again.stdout


def test_failures_stand_out_in_colour_on_a_terminal_only(method1: Path) -> None:
    code, output = run_in_terminal(["doctor"], method1, env=terminal_env())
    assert code == 11
    assert "\x1b[31mFAIL\x1b[0m" in output and "\x1b[1;31mError:\x1b[0m" in output
    code, plain = run_in_terminal(["doctor"], method1, env=terminal_env(NO_COLOR="1"))
    assert code == 11 and "FAIL" in plain and not ANSI.search(plain)


def test_long_messages_break_between_words_on_a_terminal(method1: Path) -> None:
    set_model(method1, "meta-llama/Llama-3.1-8B-Instruct")
    code, output = run_in_terminal(["deploy", "--emulator"], method1, env=terminal_env(COLUMNS="60", NO_COLOR="1"))
    assert code == 11, output
    error = output[output.index("Error:") :].replace("\r", "")
    assert all(len(line) <= 60 for line in error.splitlines()), error
    sentence = "meta-llama/Llama-3.1-8B-Instruct is gated on the Hugging Face Hub"
    assert all(word in error.split() for word in sentence.split(" ")), error


def test_config_errors_suggest_the_nearest_value(cli: CliRunnerFn, method1: Path) -> None:
    text = (method1 / "deploy.yaml").read_text()
    (method1 / "deploy.yaml").write_text(text.replace("method: worker-vllm", "method: worker-vlm"))
    assert "(did you mean 'worker-vllm'?)" in cli("validate", expected_code=3).stderr
    (method1 / "deploy.yaml").write_text(
        text.replace("  max_model_len: 8192", "  dtype: bfloat61\n  max_model_len: 8192")
    )
    assert "did you mean 'bfloat16'?" in cli("validate", expected_code=3).stderr
    (method1 / "deploy.yaml").write_text(text.replace("  max_model_len", "\tmax_model_len"))
    assert "YAML indents with spaces, not tabs" in cli("validate", expected_code=3).stderr


@pytest.mark.parametrize("group", [(), ("endpoint",), ("backend",)])
def test_top_level_and_group_help_have_examples(cli: CliRunnerFn, group: tuple[str, ...]) -> None:
    text = cli(*group, "--help").stdout
    assert "Examples:" in text and "  rpdeploy " in text.split("Examples:", 1)[1]
