"""Verify, then cut over; step 11 through the backend: end to end with the real systemd host.

endpoint (the emulator) <- backend (the Spring Boot stand-in, a systemd service in its
container, calling the endpoint with the env rpdeploy gave it) <- rpdeploy. The emulator is
bound to the docker bridge's gateway address, the one address both this machine and the host
container reach (it still wants its API key on every route); the backend's env then names it
exactly as rpdeploy does. Method 1, so no image is built.

Needs scripts/services.sh (fails in CI, skips elsewhere when the services are missing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpdeploy.deploy.ledger import Ledger
from rpdeploy.emulator import Emulator
from tests.conftest import CliRunnerFn
from tests.support.deploy_fixtures import (
    ENV_FILE,
    backend_health,
    backend_section,
    edit_yaml,
    on_host,
    parse_events,
    service_pid,
    statuses,
    trust_host,
    write_deploy_project,
)
from tests.support.services import SystemdHost

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

ORIGINAL_ENV = "# settings of the service itself\nSERVER_PORT=8080\n"
#: The backend's own API as the host itself sees it (the request is sent there, over SSH).
CHAT_URL = "http://127.0.0.1:8080/api/chat"
INTEGRATION = {
    "url": CHAT_URL,
    "headers": {"X-Request-Id": "rpdeploy-integration", "Authorization": {"env": "BACKEND_TOKEN"}},
    "body": {"message": "What is RunPod?"},
    "expect": {"status": 200, "json_path": "answer", "contains": "stand-in"},
    "timeout": 30,
}
BACKEND_TOKEN = "Bearer backend-token-9f8e7d6c5b4a"


@pytest.fixture
def host(systemd_host: SystemdHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SystemdHost:
    trust_host(systemd_host, tmp_path, monkeypatch)
    on_host(systemd_host, f"printf '%s' '{ORIGINAL_ENV}' > {ENV_FILE} && chmod 600 {ENV_FILE}")
    on_host(systemd_host, "systemctl restart spring-boot")
    return systemd_host


@pytest.fixture
def emulator(host: SystemdHost, monkeypatch: pytest.MonkeyPatch, runpod_api: str) -> Iterator[Emulator]:
    """The emulator on the bridge gateway, where the backend in the container can call it; every
    test runs over each control-plane API (``runpod_api``), REST v2 exchanges checked against
    RunPod's OpenAPI document."""
    from tests.support.openapi_check import RestChecker

    assert host.gateway, "the host container reports no gateway address"
    checker = RestChecker()
    with Emulator(
        "rpa_TEST_cutover_key_0123456789ab", host=host.gateway, cold_start=0.2, execution_time=0.05, runsync_wait=2.0
    ) as emu:
        emu.rest_observer = checker
        emu.faults.template_delete_delay(0.3)
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("BACKEND_TOKEN", BACKEND_TOKEN)
        yield emu
    checker.assert_clean()


def _project(project: Path, host: SystemdHost, **backend: Any) -> Path:
    config = write_deploy_project(project, method=1, backend=backend_section(host, **backend))
    edit_yaml(config, "smoke_test", timeout=6)
    return config


def _deploy(cli: CliRunnerFn, *args: str, expected_code: int = 0) -> tuple[dict[str, str], Any]:
    result = cli("deploy", "--json", *args, expected_code=expected_code)
    return statuses(parse_events(result.stdout)), result


def _chats(emulator: Emulator) -> list[Any]:
    """The backend's calls to the endpoint (rpdeploy's own check asks with another prompt)."""
    asked = {"role": "user", "content": INTEGRATION["body"]["message"]}  # type: ignore[index]
    return [
        r
        for r in emulator.requests
        if r.path.endswith("/openai/v1/chat/completions")
        and isinstance(r.body, dict)
        and r.body.get("messages") == [asked]
    ]


def _host_env(host: SystemdHost) -> str:
    return on_host(host, f"cat {ENV_FILE}")


def test_a_release_that_cannot_start_never_reaches_the_backend(
    cli: CliRunnerFn, project: Path, emulator: Emulator, host: SystemdHost
) -> None:
    config = _project(project, host, integration_test=INTEGRATION)
    first, _ = _deploy(cli)
    assert first["integration-test"] == "done"
    before_env, before_pid = _host_env(host), service_pid(host)
    old_endpoint = backend_health(host)["endpointId"]

    # A new endpoint whose release cannot start: its workers fail at every start.
    edit_yaml(config, "endpoint", name="e2e-worker-next")
    emulator.faults.release_start_fail()
    done, result = _deploy(cli, expected_code=10)

    assert done["smoke-test"] == "failed"
    assert "backend-env" not in done and "backend-restart" not in done and "integration-test" not in done
    release = Ledger.load(project / ".rpdeploy").output("template", "release")
    assert f"release {release} failed the endpoint check" in result.stderr
    assert "The backend was not touched." in result.stderr and "failing" in result.stderr
    # Why, from the new release's own workers: their state and an unhealthy one's last log lines
    # (REST v2 /workers and /logs, read with the same key under either API).
    assert f"release {release}: workers of version " in result.stderr and "UNHEALTHY" in result.stderr
    assert "error: the worker failed to start" in result.stderr
    # On the host: the same env file, byte for byte, and the same process, still on the old endpoint.
    assert _host_env(host) == before_env and service_pid(host) == before_pid
    assert backend_health(host)["endpointId"] == old_endpoint


def test_step_11_goes_through_the_backend(
    cli: CliRunnerFn, project: Path, emulator: Emulator, host: SystemdHost
) -> None:
    config = _project(project, host)
    done, result = _deploy(cli)
    assert done["integration-test"] == "done"
    assert "only the endpoint was tested" in result.stderr and "set backend.integration_test" in result.stderr
    assert Ledger.load(project / ".rpdeploy").output("integration-test", "tested") == "endpoint only"
    assert _chats(emulator) == []

    # With the request described, stage 11 sends it on the host: the backend calls the endpoint.
    edit_yaml(config, "backend", integration_test=INTEGRATION)
    emulator.requests.clear()
    done, result = _deploy(cli)

    assert (done["smoke-test"], done["backend-env"], done["integration-test"]) == ("skipped", "skipped", "done")
    [call] = _chats(emulator)  # the backend's call, with the key from its env
    assert call.status == 200 and call.body["messages"] == [{"role": "user", "content": "What is RunPod?"}]
    outputs = Ledger.load(project / ".rpdeploy").stages["integration-test"].outputs
    assert outputs["tested"] == "backend" and outputs["status"] == 200 and outputs["where"].startswith("on root@")
    assert "answer = " in outputs["matched"] and "contains 'stand-in'" in outputs["matched"]
    for text in (result.stdout, result.stderr, json.dumps(outputs)):
        assert BACKEND_TOKEN not in text and emulator.api_key not in text


def test_a_backend_that_cannot_reach_the_endpoint_is_rolled_back_and_the_rollback_proven(
    cli: CliRunnerFn, project: Path, emulator: Emulator, host: SystemdHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _project(project, host, integration_test=INTEGRATION)
    _deploy(cli)
    good_env, good_health = _host_env(host), backend_health(host)

    # The backend gets a key of its own, and it is wrong (a revoked restricted key, say).
    monkeypatch.setenv("BACKEND_RUNPOD_KEY", "rpa_REVOKED_backend_key_000000000")
    edit_yaml(config, "backend", api_key={"env": "BACKEND_RUNPOD_KEY"})
    emulator.requests.clear()
    done, result = _deploy(cli, expected_code=13)

    assert (done["backend-env"], done["backend-restart"], done["integration-test"]) == ("done", "done", "failed")
    calls = _chats(emulator)
    assert [c.status for c in calls] == [401, 200]  # the new env's call, then the previous env's
    assert "Rolled back" in result.stderr and "the same test passes against the previous env" in result.stderr
    assert _host_env(host) == good_env and backend_health(host) == good_health
    ledger = Ledger.load(project / ".rpdeploy")
    assert ledger.stages["backend-env"].status == "failed" and ledger.stages["integration-test"].status == "failed"
    document = json.loads(result.stdout.splitlines()[-1])
    assert document["error"]["type"] == "IntegrationTestError" and document["error"]["exit_code"] == 13
    assert "rpa_REVOKED_backend_key" not in result.stdout + result.stderr

    # The key fixed, the next deploy writes the env again and passes through the backend.
    monkeypatch.setenv("BACKEND_RUNPOD_KEY", emulator.api_key)
    done, _ = _deploy(cli)
    assert (done["backend-env"], done["integration-test"]) == ("done", "done")
