"""Shared fixtures: the in-process CLI runner and a clean environment for every test."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner, Result

if TYPE_CHECKING:
    from rpdeploy.emulator import Emulator

from rpdeploy import secrets

#: Real services (docker, registry, systemd host): fail in CI when missing, skip locally.
pytest_plugins = ["tests.support.services"]

ROOT = Path(__file__).resolve().parent.parent
STANDINS = ROOT / "tests" / "standins"

#: Variables that would let the machine's own settings leak into a test.
_ISOLATED_ENV = (
    "RUNPOD_API_KEY",
    "RUNPOD_API_BASE_URL",
    "RUNPOD_ENDPOINT_BASE_URL",
    "RPDEPLOY_CONFIG",
    "GITHUB_ACTIONS",
    "HF_TOKEN",
    "RPDEPLOY_REGISTRY_USERNAME",
    "RPDEPLOY_REGISTRY_PASSWORD",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "RPDEPLOY_RUNPOD_API",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    for name in _ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    # deploy.yaml is looked for in parent folders too: never above the test's own temporary folders.
    monkeypatch.setenv("RPDEPLOY_CEILING_DIRECTORIES", str(tmp_path_factory.getbasetemp()))
    # The machine's own `docker login` must not decide a test's outcome.
    docker_config = tmp_path_factory.mktemp("docker-config")
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    yield
    secrets.forget_all()


CliRunnerFn = Callable[..., Result]

#: Seconds the test emulators keep a template "in use" after its endpoint is deleted.
TEST_TEMPLATE_DELETE_DELAY = 0.3


@pytest.fixture
def cli() -> CliRunnerFn:
    """Run rpdeploy in-process: ``cli("validate", expected_code=3)``; fails with the output on a wrong exit code."""
    from rpdeploy.cli import app

    runner = CliRunner()

    def run(
        *args: object, expected_code: int = 0, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        argv = [str(a) for a in args]
        result = runner.invoke(app, argv, input=input, env=env, catch_exceptions=True)
        if result.exit_code != expected_code:
            crash = ""
            if result.exc_info and not isinstance(result.exception, SystemExit):
                crash = "".join(traceback.format_exception(*result.exc_info))
            pytest.fail(
                f"rpdeploy {' '.join(argv)} exited {result.exit_code}, expected {expected_code}\n"
                f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n{crash}"
            )
        return result

    return run


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder, made the working directory."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def runpod_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A RunPod emulator over real HTTP, with RUNPOD_* pointed at it (fast timings).

    Templates stay "in use" for 0.3 s after their endpoint is deleted instead of RunPod's
    2 minutes (the fault switch; ``emu.faults.clear()`` brings the 2 minutes back).

    Every REST v2 request it gets and every answer it gives is checked against RunPod's
    OpenAPI document (tests/support/openapi_check.py); a mismatch fails the test.
    """
    from rpdeploy.emulator import Emulator
    from tests.support.openapi_check import RestChecker

    checker = RestChecker()
    with Emulator("rpa_TEST_emulator_key_0123456789", cold_start=0.2, execution_time=0.05, runsync_wait=2.0) as emu:
        emu.faults.template_delete_delay(TEST_TEMPLATE_DELETE_DELAY)
        emu.rest_observer = checker
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        yield emu
    checker.assert_clean()


@pytest.fixture(params=["graphql", "rest"])
def runpod_api(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test over each of RunPod's control-plane APIs (RPDEPLOY_RUNPOD_API)."""
    api = str(request.param)
    monkeypatch.setenv("RPDEPLOY_RUNPOD_API", api)
    return api


MUTATIONS = frozenset(
    {
        "SaveTemplate",
        "SaveEndpoint",
        "UpdateEndpointTemplate",
        "DeleteEndpoint",
        "DeleteTemplate",
        "SaveRegistryAuth",
        "UpdateRegistryAuth",
        "SecretCreate",
        "SecretValueUpdate",
        # REST v2 (operation ids of RunPod's OpenAPI document)
        "createEndpoint",
        "updateEndpoint",
        "deleteEndpoint",
        "createTemplate",
        "updateTemplate",
        "deleteTemplate",
        "createRegistry",
        "deleteRegistry",
    }
)


def mutations(emulator: Emulator) -> list[str]:
    """The mutations the emulator received, GraphQL and REST v2, in order."""
    return [str(r.operation) for r in emulator.requests if r.operation in MUTATIONS]
