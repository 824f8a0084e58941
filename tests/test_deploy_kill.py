"""SIGKILL a real `rpdeploy deploy --json` at every stage boundary and in the middle of the push,
then run it again: it finishes, and nothing is duplicated.

The deploy runs as a subprocess of the test (method 2: a real build and push through a proxy
in front of the test registry, the emulator for RunPod, a systemd host as the backend); the
test reads its NDJSON events and kills it with SIGKILL, so no handler, ``finally`` block or
lock release runs. The re-run must resume (the stages before the kill are skipped), and then
the emulator holds exactly one template and one endpoint, the registry has the image the
template names, and the backend's service reports that endpoint and key.

All cases share one systemd host and one repository: the base layers are pushed once, and
each case edits handler.py so that its image has a layer of its own to build and push.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpdeploy.deploy.ledger import StageRecord
from rpdeploy.emulator import Emulator
from tests.conftest import CliRunnerFn
from tests.support.deploy_fixtures import (
    ALL_STAGES,
    ENV_FILE,
    DeployProcess,
    RegistryGate,
    backend_health,
    backend_section,
    expected_backend,
    gated_repository,
    ledger,
    logged_cli,  # noqa: F401 (the cli fixture of this module)
    on_host,
    parse_events,
    registry_env,
    registry_manifest,
    statuses,
    touch_handler,
    trust_host,
    write_deploy_project,
)
from tests.support.services import BaseImages, Registry, SystemdHost, SystemdHostFactory

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.ssh, pytest.mark.slow]

REPOSITORY = f"rpdeploy-e2e/kill-{uuid.uuid4().hex[:6]}"
SLOW_DROPIN = "/etc/systemd/system/spring-boot.service.d/20-slow-start.conf"


@pytest.fixture(scope="module")
def shared_host(systemd_host_factory: SystemdHostFactory) -> Iterator[SystemdHost]:
    with systemd_host_factory() as started:
        yield started


@pytest.fixture(scope="module")
def gate(registry: Registry, docker_client: Any) -> Iterator[RegistryGate]:
    """The registry behind a proxy the test can stall; images of the shared repository removed at the end."""
    with gated_repository(registry, docker_client, REPOSITORY) as opened:
        yield opened


@pytest.fixture
def kill_project(
    project: Path,
    runpod_emulator: Emulator,
    registry: Registry,
    test_images: BaseImages,
    gate: RegistryGate,
    shared_host: SystemdHost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A method-2 project with a backend, pushing through ``gate``; its handler.py is unique."""
    registry_env(registry, monkeypatch)
    trust_host(shared_host, tmp_path, monkeypatch)
    gate.set_mode("open")
    write_deploy_project(
        project,
        method=2,
        registry_host=gate.host,
        repository=REPOSITORY,
        base_image=test_images.python,
        backend=backend_section(shared_host),
    )
    touch_handler(project, f"case {uuid.uuid4()}")
    return project


def converged(project: Path, emulator: Emulator, registry: Registry, host: SystemdHost) -> None:
    """One template and one endpoint; the registry has the template's image; the backend uses the endpoint."""
    state = emulator.state.snapshot()
    assert len(state["templates"]) == 1 and len(state["endpoints"]) == 1, state
    [template], [endpoint] = state["templates"], state["endpoints"]
    assert endpoint["templateId"] == template["id"]
    assert template["imageName"] == ledger(project).output("push", "image")
    assert registry_manifest(registry, template["imageName"]) is not None
    assert backend_health(host) == expected_backend(emulator.endpoint_url, endpoint["id"], emulator.api_key, method=2)
    assert all(record.status == "done" for record in ledger(project).stages.values())
    [entry] = ledger(project).history
    assert entry["endpoint_id"] == endpoint["id"] and entry["image"] == template["imageName"]


def rerun(cli: CliRunnerFn) -> dict[str, str]:
    events = parse_events(cli("deploy", "--json").stdout)
    assert events[-1]["event"] == "result" and events[-1]["ok"] is True
    return statuses(events)


#: Over REST v2 only the RunPod stages differ; they are killed over it too.
RUNPOD_STAGES = ("account", "template", "gpu", "endpoint")


@pytest.mark.parametrize(
    ("stage", "api"),
    [(stage, "graphql") for stage in ALL_STAGES] + [(stage, "rest") for stage in RUNPOD_STAGES],
    ids=lambda value: str(value),
)
def test_killed_when_a_stage_is_done(
    cli: CliRunnerFn,
    kill_project: Path,
    runpod_emulator: Emulator,
    registry: Registry,
    shared_host: SystemdHost,
    stage: str,
    api: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RPDEPLOY_RUNPOD_API", api)  # the subprocess and the re-run both see it
    process = DeployProcess(kill_project)
    process.wait_for(stage, "done")
    process.kill()
    # The SIGKILL lands at this boundary or a little later: a fast next stage (the gpu stage
    # reuses the preflight's fit check) may finish first. What the ledger says is done decides
    # what the re-run skips; it must include this stage and be a prefix of the procedure.
    recorded = ledger(kill_project).stages
    done = [s for s in ALL_STAGES if s in recorded and recorded[s].status == "done"]
    assert stage in done and done == list(ALL_STAGES[: len(done)]), done

    seen = rerun(cli)
    assert [seen[s] for s in done] == ["skipped"] * len(done)
    assert [seen[s] for s in ALL_STAGES[len(done) :]] == ["done"] * (len(ALL_STAGES) - len(done))
    converged(kill_project, runpod_emulator, registry, shared_host)


def test_killed_in_the_middle_of_the_push(
    cli: CliRunnerFn,
    kill_project: Path,
    runpod_emulator: Emulator,
    registry: Registry,
    shared_host: SystemdHost,
    gate: RegistryGate,
) -> None:
    gate.set_mode("stall")  # the first blob upload hangs until released
    process = DeployProcess(kill_project)
    process.wait_for("push", "running")
    assert gate.upload_seen.wait(60), process.stderr()
    process.kill()
    gate.release()
    gate.set_mode("open")
    record = ledger(kill_project).stages["push"]
    assert record.status == "running" and not record.outputs
    # The dead process still names itself in the lock file; the kernel released its lock.
    holder = json.loads((kill_project / ".rpdeploy" / "deploy.lock").read_text())
    assert holder["pid"] == process.proc.pid and holder["command"] == "deploy"

    seen = rerun(cli)
    assert [seen[s] for s in ("handler", "dockerfile", "build")] == ["skipped"] * 3
    assert [seen[s] for s in ALL_STAGES[3:]] == ["done"] * (len(ALL_STAGES) - 3)
    converged(kill_project, runpod_emulator, registry, shared_host)


def test_killed_in_the_middle_of_the_backend_restart(
    cli: CliRunnerFn,
    kill_project: Path,
    runpod_emulator: Emulator,
    registry: Registry,
    shared_host: SystemdHost,
) -> None:
    # A restart that takes two seconds, so that the kill lands while systemd is restarting it.
    on_host(
        shared_host,
        f"mkdir -p {SLOW_DROPIN.rsplit('/', 1)[0]} && printf '[Service]\\nExecStartPre=/bin/sleep 2\\n' "
        f"> {SLOW_DROPIN} && systemctl daemon-reload",
    )
    try:
        process = DeployProcess(kill_project)
        process.wait_for("backend-restart", "running")
        deadline = time.monotonic() + 30
        while shared_host.exec("systemctl", "is-active", "spring-boot")[1].strip() != "activating":
            assert time.monotonic() < deadline, "the restart never started"
            time.sleep(0.05)
        process.kill()
    finally:
        on_host(shared_host, f"rm -f {SLOW_DROPIN} && systemctl daemon-reload")
    assert ledger(kill_project).stages["backend-restart"].status == "running"

    seen = rerun(cli)
    # The endpoint check ran before the backend stages (verify, then cut over): it stays done.
    assert seen["smoke-test"] == "skipped" and seen["backend-env"] == "skipped"
    assert seen["backend-restart"] == "done" and seen["integration-test"] == "done"
    converged(kill_project, runpod_emulator, registry, shared_host)


def test_killed_between_the_env_write_and_its_record(
    cli: CliRunnerFn,
    kill_project: Path,
    runpod_emulator: Emulator,
    registry: Registry,
    shared_host: SystemdHost,
) -> None:
    """The env file is written, then the process dies before the ledger says so: the service must
    still be restarted, although the next configure finds nothing to change."""
    process = DeployProcess(kill_project)
    process.wait_for("endpoint", "done")
    process.kill()
    endpoint_id = ledger(kill_project).output("endpoint", "endpoint_id")
    # What the killed stage had done: the file written (no restart), its record left "running".
    cli("backend", "configure", "--endpoint-id", endpoint_id, "--yes")
    assert f"RUNPOD_ENDPOINT_ID={endpoint_id}" in on_host(shared_host, f"cat {ENV_FILE}")
    assert backend_health(shared_host)["endpointId"] != endpoint_id
    book = ledger(kill_project)
    book.stages["backend-env"] = StageRecord("running", "", started_at=time.time())
    book.save()

    seen = rerun(cli)
    assert seen["backend-env"] == "done" and seen["backend-restart"] == "done"
    converged(kill_project, runpod_emulator, registry, shared_host)
