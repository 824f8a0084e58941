"""Deletes that finish: `destroy` and `endpoint delete` against RunPod's template deletion delay.

RunPod keeps a template "in use" for up to 2 minutes after its endpoint is deleted (docs
sdks/graphql/manage-pod-templates.mdx). The emulator does the same by default; these tests
shorten it with the ``template_delete_delay`` fault switch. A delete must wait through it
with progress, retry only that answer, give up after ``--wait`` with an error that names
what is left and how to finish, and resume after being killed, with the ledger right at
every point.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpdeploy.deploy.ledger import Ledger
from rpdeploy.emulator import Emulator
from tests.conftest import CliRunnerFn, mutations
from tests.support.deploy_fixtures import this_checkout
from tests.test_endpoint import document, errors_in, no_secrets, write_config

ENDPOINT_STAGES = ("template", "endpoint", "gpu", "smoke-test")


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator with RunPod's default deletion delay (2 minutes), RUNPOD_* pointed at it."""
    from tests.test_endpoint import APP_SECRET, HF_TOKEN

    with Emulator("rpa_TEST_teardown_key_0123456789", cold_start=0.1, execution_time=0.05, runsync_wait=2.0) as emu:
        for name, value in emu.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
        monkeypatch.setenv("APP_SECRET", APP_SECRET)
        yield emu


def deployed(cli: CliRunnerFn, project: Path, **endpoint: Any) -> Path:
    config = write_config(project, workers_min=0, **endpoint)
    cli("deploy")
    return config


def state_of(project: Path) -> Ledger:
    return Ledger.load(project / ".rpdeploy")


def nothing_left(emulator: Emulator, project: Path) -> None:
    state = emulator.state.snapshot()
    assert state["endpoints"] == [] and state["templates"] == []
    ledger = state_of(project)
    assert "deleting" not in ledger.extra
    assert not set(ENDPOINT_STAGES) & set(ledger.stages)


def test_the_default_delay_holds_the_template_for_two_minutes(emulator: Emulator) -> None:
    assert emulator.control.delete_delay() == 120.0  # RunPod's "up to 2 minutes", by default


@pytest.mark.parametrize("command", [("destroy", "--yes"), ("endpoint", "delete", "--yes")], ids=" ".join)
def test_a_delete_waits_for_runpod_to_release_the_template(
    cli: CliRunnerFn, project: Path, emulator: Emulator, command: tuple[str, ...]
) -> None:
    deployed(cli, project)
    emulator.faults.template_delete_delay(1.5)
    emulator.requests.clear()

    started = time.monotonic()
    result = cli(*command)

    assert time.monotonic() - started >= 1.5
    assert "Waiting for RunPod to release template 'qwen25-7b-instruct-template'" in result.stderr
    nothing_left(emulator, project)
    sent = mutations(emulator)
    assert sent[:3] == ["SaveEndpoint", "DeleteEndpoint", "DeleteTemplate"]  # scaled to zero first
    assert set(sent[3:]) == {"DeleteTemplate"}  # asked again while RunPod held it, until it let go
    no_secrets(emulator, result)


def test_a_delete_gives_up_after_wait_naming_what_is_left_then_a_rerun_finishes(
    cli: CliRunnerFn, project: Path, emulator: Emulator
) -> None:
    deployed(cli, project)
    template_id = emulator.state.snapshot()["templates"][0]["id"]
    emulator.faults.template_delete_delay(60)

    started = time.monotonic()
    failed = cli("destroy", "--yes", "--wait", "1", expected_code=7)

    assert time.monotonic() - started < 30
    [error] = errors_in(failed)
    assert error.startswith(
        f"Error: the endpoint is deleted, but RunPod still holds its template 'qwen25-7b-instruct-template' "
        f"({template_id}) as in use after "
    )
    assert "run `rpdeploy destroy --yes` again" in failed.stderr
    state = emulator.state.snapshot()
    assert state["endpoints"] == [] and [t["id"] for t in state["templates"]] == [template_id]
    ledger = state_of(project)
    # The endpoint is gone and the ledger says so; the template still to delete is recorded.
    assert not set(ENDPOINT_STAGES) & set(ledger.stages)
    assert ledger.extra["deleting"]["template_id"] == template_id
    assert ledger.extra["deleting"]["steps"] == ["started", "scaled-to-zero", "endpoint-deleted"]

    emulator.faults.clear()
    emulator.faults.template_delete_delay(0.5)
    time.sleep(0.5)
    done = json.loads(cli("destroy", "--yes", "--json").stdout)
    assert done["done"] == ["delete-template qwen25-7b-instruct-template"]
    nothing_left(emulator, project)


def test_only_the_in_use_answer_is_retried(cli: CliRunnerFn, project: Path, emulator: Emulator) -> None:
    deployed(cli, project)
    emulator.faults.template_delete_delay(0)
    emulator.faults.graphql_errors(message="Something went wrong. Please try again later or contact support.",
                                   operation="DeleteTemplate")  # fmt: skip
    emulator.requests.clear()

    failed = cli("endpoint", "delete", "--yes", expected_code=7)

    assert errors_in(failed) == [
        "Error: RunPod refused DeleteTemplate: Something went wrong. Please try again later or contact support."
    ]
    assert mutations(emulator) == ["SaveEndpoint", "DeleteEndpoint", "DeleteTemplate"]  # asked once, not again
    assert state_of(project).extra["deleting"]["steps"] == ["started", "scaled-to-zero", "endpoint-deleted"]
    cli("endpoint", "delete", "--yes")
    nothing_left(emulator, project)


def test_a_resumed_delete_finishes_the_template_it_started_on_even_after_a_rename(
    cli: CliRunnerFn, project: Path, emulator: Emulator
) -> None:
    config = deployed(cli, project)
    emulator.faults.template_delete_delay(60)
    cli("endpoint", "delete", "--yes", "--wait", "0", expected_code=7)
    write_config(config.parent, workers_min=0, template_name="a-new-name")  # deploy.yaml changed meanwhile
    emulator.faults.clear()
    emulator.faults.template_delete_delay(0)

    result = document(cli("endpoint", "delete", "--yes", "--json"))

    assert [(o["kind"], o["target"]) for o in result["operations"]] == [
        ("delete-template", "qwen25-7b-instruct-template")
    ]
    nothing_left(emulator, project)


# --- SIGKILL in the middle of the wait ---------------------------------------------------------


class Destroy:
    """`python -m rpdeploy destroy --yes` in ``project`` as a subprocess."""

    def __init__(self, project: Path) -> None:
        self.stderr_path = project / f"destroy-{time.monotonic_ns()}.stderr"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpdeploy", "destroy", "--yes"],
            cwd=project,
            env={**os.environ, **this_checkout()},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self._stderr.close()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def test_sigkill_during_the_wait_then_a_rerun_finishes(cli: CliRunnerFn, project: Path, emulator: Emulator) -> None:
    deployed(cli, project, workers_max=2)
    [template] = emulator.state.snapshot()["templates"]
    emulator.faults.template_delete_delay(120)
    emulator.requests.clear()

    destroy = Destroy(project)
    try:
        deadline = time.monotonic() + 60
        # Killed once RunPod has refused the template at least once: the process is waiting.
        while len(emulator.requests.graphql("DeleteTemplate")) < 2:
            assert destroy.proc.poll() is None, destroy.stderr()
            assert time.monotonic() < deadline, f"the destroy never reached the wait\n{destroy.stderr()}"
            time.sleep(0.05)
    finally:
        destroy.kill()

    assert destroy.proc.returncode == -signal.SIGKILL
    assert "Waiting for RunPod to release template" in destroy.stderr()
    state = emulator.state.snapshot()
    assert state["endpoints"] == [] and [t["id"] for t in state["templates"]] == [template["id"]]
    ledger = state_of(project)
    assert ledger.extra["deleting"]["steps"] == ["started", "scaled-to-zero", "endpoint-deleted"]
    assert not set(ENDPOINT_STAGES) & set(ledger.stages)

    emulator.faults.clear()
    emulator.faults.template_delete_delay(1)
    rerun = cli("destroy", "--yes")

    assert "delete-template qwen25-7b-instruct-template" in rerun.stdout
    nothing_left(emulator, project)
    # And the project deploys again from scratch.
    cli("deploy")
    assert len(emulator.state.snapshot()["endpoints"]) == 1


# --- over REST v2 -------------------------------------------------------------------------------


@pytest.mark.parametrize("deployed_over", ["rest", "graphql"])
def test_over_rest_a_delete_takes_the_endpoint_with_its_template(
    cli: CliRunnerFn, project: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, deployed_over: str
) -> None:
    """v2 deletes an endpoint "and its bound template", with no scale to zero first: nothing waits,
    nothing is left, also for a deployment a GraphQL deploy made (its named template goes too)."""
    from tests.support.openapi_check import RestChecker

    checker = RestChecker()
    emulator.rest_observer = checker
    monkeypatch.setenv("RPDEPLOY_RUNPOD_API", deployed_over)
    deployed(cli, project, workers_max=2)
    monkeypatch.setenv("RPDEPLOY_RUNPOD_API", "rest")
    emulator.requests.clear()

    started = time.monotonic()
    done = json.loads(cli("destroy", "--yes", "--json").stdout)

    assert time.monotonic() - started < 10  # RunPod's 2-minute template hold is never waited for
    assert mutations(emulator) == ["deleteEndpoint"]
    assert done["done"][0].startswith("delete-endpoint")
    if deployed_over == "graphql":
        assert "template 'qwen25-7b-instruct-template' was deleted with its endpoint" in done["notes"]
    nothing_left(emulator, project)
    assert json.loads(cli("destroy", "--yes", "--json").stdout)["done"] == []
    checker.assert_clean()
