"""A fault in each stage of a real deploy, then a clean resume once the fault is gone.

Method 2 with a backend: the real engine builds, a proxy in front of the test registry can be
closed or made to deny the push, RunPod is the emulator (with its fault switches), the backend
is a booted systemd host. For each fault the deploy must stop at the stage, name it, exit with
the documented code (5 docker, 6 registry, 7 API, 9 backend, 10 smoke test), end its ``--json``
stream with a one-line error document naming the stage, and once the fault is gone a re-run
must skip every stage before it and finish, converged: one template, one endpoint, the image
in the registry, the backend on the endpoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from rpdeploy.emulator import Emulator
from tests.conftest import CliRunnerFn
from tests.support.deploy_fixtures import (
    ALL_STAGES,
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

REPOSITORY = f"rpdeploy-e2e/faults-{uuid.uuid4().hex[:6]}"
FAIL_ONCE = "/etc/rpdeploy-test-fail-once"
FAIL_ONCE_DROPIN = "/etc/systemd/system/spring-boot.service.d/10-fail-once.conf"


@pytest.fixture(scope="module")
def shared_host(systemd_host_factory: SystemdHostFactory) -> Iterator[SystemdHost]:
    with systemd_host_factory() as started:
        yield started


@pytest.fixture(scope="module")
def gate(registry: Registry, docker_client: Any) -> Iterator[RegistryGate]:
    with gated_repository(registry, docker_client, REPOSITORY) as opened:
        yield opened


@dataclass
class Case:
    project: Path
    config: Path
    emulator: Emulator
    gate: RegistryGate
    host: SystemdHost


@pytest.fixture
def case(
    project: Path,
    runpod_emulator: Emulator,
    registry: Registry,
    test_images: BaseImages,
    gate: RegistryGate,
    shared_host: SystemdHost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Case]:
    registry_env(registry, monkeypatch)
    trust_host(shared_host, tmp_path, monkeypatch)
    gate.set_mode("open")
    config = write_deploy_project(
        project,
        method=2,
        registry_host=gate.host,
        repository=REPOSITORY,
        base_image=test_images.python,
        backend=backend_section(shared_host),
    )
    touch_handler(project, f"case {uuid.uuid4()}")  # an image of its own: its push uploads a layer
    yield Case(project, config, runpod_emulator, gate, shared_host)
    if not gate.is_up:
        gate.up()
    gate.set_mode("open")
    on_host(shared_host, f"rm -f {FAIL_ONCE} {FAIL_ONCE_DROPIN} && systemctl daemon-reload")


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def set_backend_host(case: Case, host: str) -> None:
    data = yaml.safe_load(case.config.read_text())
    data["backend"]["host"] = host
    case.config.write_text(yaml.safe_dump(data, sort_keys=False))


# --- the faults ------------------------------------------------------------------------------

Step = Callable[[Case], object]


def _failing_run_step(case: Case) -> None:
    dockerfile = case.project / "worker" / "Dockerfile"
    text = dockerfile.read_text()
    dockerfile.write_text(text.replace("ENTRYPOINT", "RUN echo 'about to fail' && exit 3\nENTRYPOINT", 1))


def _fixed_run_step(case: Case) -> None:
    dockerfile = case.project / "worker" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("RUN echo 'about to fail' && exit 3\n", ""))


def _service_fails_once(case: Case) -> None:
    # The next start of the service fails (and removes the flag): the new env looks broken,
    # the rollback's restart on the previous env works.
    on_host(
        case.host,
        f"mkdir -p {FAIL_ONCE_DROPIN.rsplit('/', 1)[0]} && touch {FAIL_ONCE} && printf '%s\\n' '[Service]' "
        f"'ExecStartPre=+/bin/sh -c \"if [ -e {FAIL_ONCE} ]; then rm -f {FAIL_ONCE}; exit 1; fi\"' "
        f"> {FAIL_ONCE_DROPIN} && systemctl daemon-reload",
    )


@dataclass(frozen=True)
class Injected:
    stage: str  # the stage that fails
    code: int  # the exit code
    inject: Step
    remove: Step
    words: str  # in the error message
    resumes_at: str | None = None  # where the re-run starts (default: the failed stage)


FAULTS: dict[str, Injected] = {
    "build-step-fails": Injected("build", 5, _failing_run_step, _fixed_run_step, "returned a non-zero code: 3"),
    # Down from the start: the build stage logs in before building, so it is the one that fails.
    "registry-down": Injected("build", 6, lambda c: c.gate.down(), lambda c: c.gate.up(), "cannot reach the registry"),
    "registry-denies-push": Injected(
        "push",
        6,
        lambda c: c.gate.set_mode("deny"),  # 403 DENIED on the manifest
        lambda c: c.gate.set_mode("open"),
        "refused the credentials",
    ),
    "api-error-account": Injected(
        "account",
        7,
        lambda c: c.emulator.faults.graphql_errors(count=1, operation="Myself", message="Internal error (account)"),
        lambda c: None,
        "Internal error (account)",
    ),
    "api-error-template": Injected(
        "template",
        7,
        lambda c: c.emulator.faults.graphql_errors(count=1, operation="SaveTemplate", message="Something went wrong."),
        lambda c: None,
        "Something went wrong.",
    ),
    "api-error-endpoint": Injected(
        "endpoint",
        7,
        lambda c: c.emulator.faults.graphql_errors(count=1, operation="SaveEndpoint", message="Something went wrong."),
        lambda c: None,
        "Something went wrong.",
    ),
    "ssh-refused": Injected(
        "backend-env",
        9,
        lambda c: set_backend_host(c, f"root@127.0.0.1:{closed_port()}"),
        lambda c: set_backend_host(c, f"root@127.0.0.1:{c.host.port}"),
        "connection refused",
    ),
    # The restart rolls the env file back, which undoes stage backend-env: the re-run starts there.
    "service-fails-once": Injected(
        "backend-restart", 9, _service_fails_once, lambda c: None, "Rolled back", resumes_at="backend-env"
    ),
    "smoke-job-fails": Injected(
        "smoke-test",
        10,
        lambda c: c.emulator.faults.job_fail(message="CUDA out of memory", count=1),
        lambda c: None,
        "CUDA out of memory",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_then_resume(cli: CliRunnerFn, case: Case, registry: Registry, fault: str) -> None:
    spec = FAULTS[fault]
    stage, code, words = spec.stage, spec.code, spec.words
    spec.inject(case)
    result = cli("deploy", "--json", expected_code=code)
    events = parse_events(result.stdout)  # still NDJSON, one document per line, on failure too
    seen = statuses(events)
    position = ALL_STAGES.index(stage)
    assert seen[stage] == "failed"
    assert [seen[s] for s in ALL_STAGES[:position]] == ["done"] * position
    assert not set(ALL_STAGES[position + 1 :]) & set(seen)  # nothing ran after it
    end = events[-1]
    assert end["ok"] is False  # the error document, on one line: the last of the NDJSON stream
    assert end["error"]["stage"] == stage and end["error"]["exit_code"] == code
    assert end["error"]["message"].startswith(f"stage {stage!r} failed: ") and words in end["error"]["message"]
    assert f"Error: stage {stage!r} failed: " in result.stderr
    assert ledger(case.project).stages[stage].status == "failed"

    spec.remove(case)
    events = parse_events(cli("deploy", "--json").stdout)
    seen = statuses(events)
    resume = ALL_STAGES.index(spec.resumes_at or stage)
    assert [seen[s] for s in ALL_STAGES[:resume]] == ["skipped"] * resume
    assert [seen[s] for s in ALL_STAGES[resume:]] == ["done"] * (len(ALL_STAGES) - resume)
    assert events[-1]["ok"] is True

    state = case.emulator.state.snapshot()
    assert len(state["templates"]) == 1 and len(state["endpoints"]) == 1, state
    [template], [endpoint] = state["templates"], state["endpoints"]
    assert template["imageName"] == ledger(case.project).output("push", "image")
    assert registry_manifest(registry, template["imageName"]) is not None
    key = case.emulator.api_key
    assert backend_health(case.host) == expected_backend(case.emulator.endpoint_url, endpoint["id"], key, method=2)
