"""The example GitHub Actions workflow, run step by step the way a runner would.

Each ``run:`` step goes through ``bash -eo pipefail`` with the job's and the step's env, no
TTY, ``CI``/``GITHUB_ACTIONS`` set, a job-summary file, and secrets only in env vars,
against the emulator (standing in for RunPod) and the real systemd host (the backend).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from rpdeploy.emulator import Emulator
from tests.conftest import ROOT
from tests.support.services import SystemdHost

WORKFLOW = ROOT / "examples" / "github-actions" / "deploy.yml"
# Installing rpdeploy is the one step a test run has done already (editable, from this checkout).
ALREADY_DONE = {"Install rpdeploy"}

pytestmark = pytest.mark.slow


def _expand(text: str, context: dict[str, dict[str, str]]) -> str:
    def value(match: re.Match[str]) -> str:
        scope, _, name = match.group(1).strip().partition(".")
        return context.get(scope, {}).get(name, "")

    return re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", value, text)


def _run_steps(
    workspace: Path, secrets: dict[str, str], extra_env: dict[str, str], tmp: Path
) -> tuple[list[tuple[str, int, str, str]], Path]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["deploy"]
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir()
    summary = tmp / "step-summary.md"
    context = {"secrets": secrets, "runner": {"temp": str(runner_temp)}, "github": {"ref": "refs/heads/main"}}
    base_env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_STEP_SUMMARY": str(summary),
        **extra_env,
    }
    job_env = {k: _expand(str(v), context) for k, v in (job.get("env") or {}).items()}
    results = []
    failed = False
    for step in job["steps"]:
        if "run" not in step or step.get("name") in ALREADY_DONE:
            continue
        condition = str(step.get("if", "success()"))
        if failed and "always()" not in condition:
            continue
        step_env = {k: _expand(str(v), context) for k, v in (step.get("env") or {}).items()}
        process = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=workspace,
            env={**base_env, **job_env, **step_env},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
        results.append((step["name"], process.returncode, process.stdout, process.stderr))
        failed = failed or process.returncode != 0
    return results, summary


def _deploy_yaml(host: SystemdHost) -> str:
    return f"""\
method: worker-vllm
model:
  name: Qwen/Qwen2.5-7B-Instruct
endpoint:
  name: actions-demo
backend:
  host: root@{host.host}:{host.port}
  mode: dotenv
  health_url: http://127.0.0.1:8080/actuator/health
  health_timeout: 60
"""


def test_workflow_deploys_with_env_only_configuration(
    tmp_path: Path, runpod_emulator: Emulator, systemd_host: SystemdHost
) -> None:
    workspace = tmp_path / "repo"
    workspace.mkdir()
    (workspace / "deploy.yaml").write_text(_deploy_yaml(systemd_host))
    secrets = {
        "RUNPOD_API_KEY": runpod_emulator.api_key,
        "REGISTRY_USERNAME": "",
        "REGISTRY_PASSWORD": "",
        "HF_TOKEN": "",
        "BACKEND_SSH_KEY": systemd_host.identity_file.read_text(),
        "BACKEND_KNOWN_HOSTS": systemd_host.known_hosts_line,
    }
    # What a repository would set as variables to aim rpdeploy at another RunPod (here: the emulator).
    extra = {"RUNPOD_API_BASE_URL": runpod_emulator.api_url, "RUNPOD_ENDPOINT_BASE_URL": runpod_emulator.endpoint_url}
    results, summary = _run_steps(workspace, secrets, extra, tmp_path)

    for name, code, stdout, stderr in results:
        assert code == 0, f"step {name!r} exited {code}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    assert [name for name, *_ in results] == [
        "SSH access to the backend host",
        "Validate deploy.yaml",
        "Preflight",
        "Plan",
        "Deploy",
        "Smoke test",
    ]
    events = [json.loads(line) for line in (workspace / "deploy-events.ndjson").read_text().splitlines()]
    assert events[-1]["event"] == "result" and events[-1]["ok"] is True
    endpoint_id = events[-1]["endpoint_id"]
    suite = ET.parse(workspace / "smoke-junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and int(suite.get("tests", "0")) >= 1
    text = summary.read_text()
    assert "deployed `actions-demo`" in text and "smoke test of" in text
    status, health = systemd_host.health()
    assert status == 200 and health is not None and health["runpod"]["endpointId"] == endpoint_id
    every_output = "".join(out + err for _, _, out, err in results) + text
    for secret in (runpod_emulator.api_key, secrets["BACKEND_SSH_KEY"].strip().splitlines()[1]):
        assert secret not in every_output


def test_a_broken_deploy_yaml_annotates_the_line(tmp_path: Path, runpod_emulator: Emulator) -> None:
    workspace = tmp_path / "repo"
    workspace.mkdir()
    (workspace / "deploy.yaml").write_text(
        "method: worker-vllm\nmodel:\n  name: Qwen/Qwen2.5-7B-Instruct\nendpoint:\n  name: x\n"
    )
    results, _ = _run_steps(workspace, {"RUNPOD_API_KEY": runpod_emulator.api_key}, {}, tmp_path)
    name, code, stdout, stderr = results[1]
    assert name == "Validate deploy.yaml" and code == 3
    assert "::error file=deploy.yaml,line=5,col=9,title=endpoint.name::" in stdout
    assert "Error: deploy.yaml has 1 problem(s)" in stderr
    assert len(results) == 2  # later steps did not run
