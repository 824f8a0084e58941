"""`rpdeploy doctor`: one table of checks, each failure with its fix, exit 11 when one fails."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rpdeploy.emulator import Emulator
from tests.conftest import ROOT, CliRunnerFn
from tests.support.services import BaseImages, Registry, SystemdHost


def _checks(stdout: str) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in json.loads(stdout)["checks"]}


def test_all_good_for_worker_vllm(cli: CliRunnerFn, project: Path, runpod_emulator: Emulator) -> None:
    shutil.copy(ROOT / "deploy.yaml", project / "deploy.yaml")
    checks = _checks(cli("doctor", "--json").stdout)
    assert {name: c["status"] for name, c in checks.items()} == {
        "python": "ok",
        "model access": "ok",
        "deploy.yaml": "ok",
        "RunPod API key": "ok",
        "GPU type": "ok",
        "docker engine": "skipped",
        "registry credentials": "skipped",
        "backend host": "skipped",
    }
    assert checks["GPU type"]["detail"] == "NVIDIA L4 is in pool AMPERE_24"
    assert "All good." in cli("doctor").stdout


def test_a_rejected_key_fails_with_its_fix_and_later_checks_still_report(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator
) -> None:
    shutil.copy(ROOT / "deploy.yaml", project / "deploy.yaml")
    result = cli("doctor", "--json", expected_code=11, env={"RUNPOD_API_KEY": "rpa_not_the_right_key_12345"})
    document = json.loads(result.stdout)  # one document: the checks and the error
    checks = {c["name"]: c for c in document["checks"]}
    assert checks["RunPod API key"]["status"] == "failed"
    assert "Settings > API Keys" in checks["RunPod API key"]["fix"]
    assert checks["GPU type"]["status"] == "skipped"
    assert document["ok"] is False and document["error"]["exit_code"] == 11
    text = cli("doctor", expected_code=11, env={"RUNPOD_API_KEY": "rpa_not_the_right_key_12345"}).stdout
    assert "FAIL  RunPod API key" in text and "fix: " in text


@pytest.mark.docker
@pytest.mark.ssh
def test_docker_registry_and_backend_checks(
    cli: CliRunnerFn,
    project: Path,
    runpod_emulator: Emulator,
    registry: Registry,
    test_images: BaseImages,
    systemd_host: SystemdHost,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ssh_config = project.parent / "ssh_config"
    ssh_config.write_text(f"UserKnownHostsFile {systemd_host.known_hosts_file}\nStrictHostKeyChecking yes\n")
    monkeypatch.setenv("RPDEPLOY_SSH_CONFIG", str(ssh_config))
    monkeypatch.setenv("REG_USER", registry.username)
    monkeypatch.setenv("REG_PASS", registry.password)

    def write(port: int) -> None:
        (project / "deploy.yaml").write_text(
            f"method: custom-handler\nmodel: {{name: Qwen/Qwen2.5-0.5B-Instruct}}\n"
            f"image: {{registry: '{registry.host}', repository: doctor/worker, base_image: '{test_images.python}', "
            "credentials: {username: REG_USER, password: REG_PASS}}\n"
            "endpoint: {name: doctor-endpoint}\n"
            f"backend: {{host: 'root@127.0.0.1:{port}', identity_file: '{systemd_host.identity_file}'}}\n"
        )

    write(systemd_host.port)
    checks = _checks(cli("doctor", "--json").stdout)
    assert checks["docker engine"]["status"] == "ok" and checks["docker engine"]["detail"].startswith("Docker ")
    assert checks["registry credentials"]["status"] == "ok"
    assert checks["backend host"]["status"] == "ok"

    monkeypatch.setenv("REG_PASS", "not-the-password")
    write(1)  # nothing listens on port 1
    checks = _checks(cli("doctor", "--json", expected_code=11).stdout)
    assert checks["registry credentials"]["status"] == "failed"
    assert checks["registry credentials"]["fix"]
    assert checks["backend host"]["status"] == "failed"
    assert "127.0.0.1" in checks["backend host"]["detail"] and checks["backend host"]["fix"]
    assert checks["RunPod API key"]["status"] == "ok"  # one failure does not hide the others


def test_an_unreachable_engine_is_a_failed_check(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, tmp_path: Path
) -> None:
    cli("init", "-m", "2", "--registry", "127.0.0.1:5000", "--repository", "doctor/x", "--yes")
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock", "RPDEPLOY_REGISTRY_USERNAME": "u"}
    checks = _checks(cli("doctor", "--json", expected_code=11, env=env).stdout)
    assert checks["docker engine"]["status"] == "failed"
    assert "dockerd" in (checks["docker engine"]["fix"] or "")
    assert checks["registry credentials"]["status"] == "skipped"
