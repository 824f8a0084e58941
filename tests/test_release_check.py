"""The endpoint check proves the release a deploy made, and any change that reaches RunPod re-tests.

Against the emulator over HTTP, whose workers keep the release they started with and serve on
for a while after an update (rpdeploy/emulator/rolling.py), as RunPod's rolling releases do.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from rpdeploy.deploy.ledger import Ledger
from rpdeploy.emulator import Emulator
from tests.conftest import ROOT, CliRunnerFn


@pytest.fixture
def reference(project: Path) -> Path:
    shutil.copy(ROOT / "deploy.yaml", project / "deploy.yaml")
    return project


def _edit(project: Path, section: str, **changes: Any) -> None:
    path = project / "deploy.yaml"
    document = yaml.safe_load(path.read_text())
    document.setdefault(section, {}).update(changes)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _deploy(cli: CliRunnerFn, *args: str, expected_code: int = 0) -> dict[str, str]:
    """Each stage's last status in a `deploy --json` run."""
    stdout = cli("deploy", "--json", *args, expected_code=expected_code).stdout
    statuses: dict[str, str] = {}
    for line in stdout.splitlines():
        event = json.loads(line)
        if event.get("event") == "stage":
            statuses[event["stage"]] = event["status"]
    return statuses


def _smoke_jobs(emulator: Emulator) -> list[dict[str, Any]]:
    return [job for job in emulator.state.snapshot()["jobs"] if "messages" in job["input"]]


def _smoke_output(project: Path) -> dict[str, Any]:
    record = Ledger.load(project / ".rpdeploy").stages["smoke-test"]
    assert record.status == "done", record
    return record.outputs


# --- issue 16, item 2: what was sent to RunPod is what re-tests ----------------------------------


def test_max_model_len_6144_to_5120_re_runs_the_check(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, runpod_api: str
) -> None:
    """The exact repro: the template was updated, and the check used to print "skipped: unchanged"."""
    _edit(reference, "model", max_model_len=6144)
    _deploy(cli)
    first = _smoke_output(reference)["release"]
    _edit(reference, "model", max_model_len=5120)

    statuses = _deploy(cli)

    assert statuses["template"] == "done" and statuses["smoke-test"] == "done"
    second = _smoke_output(reference)
    assert second["release"] != first and second["release_proven_by"] == "answers"
    [template] = runpod_emulator.state.snapshot()["templates"]
    env = {item["key"]: item["value"] for item in template["env"]}
    assert env["MAX_MODEL_LEN"] == "5120" and env["RPDEPLOY_RELEASE"] == second["release"]
    # What `rpdeploy smoke-test` checks for later (recorded once the release reached RunPod).
    assert Ledger.load(reference / ".rpdeploy").extra["release"] == second["release"]


def test_a_workers_max_change_re_runs_the_check_each_time(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, runpod_api: str
) -> None:
    """Two scaling changes in a row: the second used to be skipped (same operation names as the first)."""
    _deploy(cli)
    release = _smoke_output(reference)["release"]
    for workers_max in (3, 4):
        _edit(reference, "endpoint", workers_max=workers_max)
        runpod_emulator.requests.clear()
        statuses = _deploy(cli)
        assert (statuses["template"], statuses["endpoint"], statuses["smoke-test"]) == ("skipped", "done", "done")
        assert [r for r in runpod_emulator.requests if r.path.endswith("/runsync")]
        # A scaling change is no new release: the same release answers, with no wait.
        output = _smoke_output(reference)
        assert output["release"] == release and output["old_answers"] == 0


@pytest.mark.parametrize(
    ("section", "change"),
    [("endpoint", {"env": {"LOG_LEVEL": "debug"}}), ("endpoint", {"idle_timeout": 30})],
    ids=["template-env", "endpoint-idle-timeout"],
)
def test_any_change_that_reaches_runpod_re_tests_and_nothing_else_does(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, section: str, change: dict[str, Any]
) -> None:
    _deploy(cli)
    assert _deploy(cli)["smoke-test"] == "skipped"  # nothing sent: nothing to re-test
    _edit(reference, section, **change)
    assert _deploy(cli)["smoke-test"] == "done"
    assert _deploy(cli)["smoke-test"] == "skipped"


# --- which release answered ---------------------------------------------------------------------


def test_method_1_waits_for_the_rollout_and_reports_the_drain(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, runpod_api: str
) -> None:
    _deploy(cli)
    old = _smoke_output(reference)["release"]
    [endpoint] = runpod_emulator.state.snapshot()["endpoints"]
    assert [w["release"] for w in endpoint["workers"]] == [old]  # warm (idle_timeout 5 s)
    # The new release's workers take 1.5 s to start; the old one could answer meanwhile.
    runpod_emulator.faults.cold_start(1.5, endpoint_id=endpoint["id"])
    _edit(reference, "model", max_model_len=4096)

    result = cli("deploy")

    output = _smoke_output(reference)
    new = output["release"]
    assert new != old and output["release_proven_by"] == "answers"
    # RunPod's worker: the check waited for the rollout before asking, so no old worker answered.
    assert output["old_answers"] == 0 and 1.4 <= output["drain_seconds"] < 6
    answers = [job["output"][0]["system_fingerprint"] for job in _smoke_jobs(runpod_emulator)]
    assert answers == [old, new]  # the first deploy's job, then this one's
    assert f"release {new}: its own answers name it" in result.stdout
    assert "old workers drained in" in result.stdout
    # The wait read the rollout from the transport's own view: GraphQL's versions, or REST v2's
    # worker list (isStale) and release history (rollout.inProgress).
    assert _rollout_reads(runpod_emulator, runpod_api) >= 2


def _rollout_reads(emulator: Emulator, api: str) -> int:
    """How often the check read the rollout over ``api``."""
    if api == "graphql":
        return sum(1 for r in emulator.requests.graphql() if r.operation == "EndpointRollout")
    workers = sum(1 for r in emulator.requests if r.operation == "listEndpointWorkers")
    releases = sum(1 for r in emulator.requests if r.operation == "listEndpointReleases")
    assert workers == releases, (workers, releases)  # each read is both
    return workers


IMAGES = {
    "old": "registry.example/acme/qwen-worker@sha256:" + "01" * 32,
    "new": "registry.example/acme/qwen-worker@sha256:" + "02" * 32,
}


@pytest.mark.parametrize("method", [2, 3], ids=["custom-handler", "fastapi"])
def test_an_old_workers_answer_is_refused_until_the_new_release_answers(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, method: int, runpod_api: str
) -> None:
    document = {
        "method": method,
        "model": {"name": "Qwen/Qwen2.5-7B-Instruct", "max_model_len": 8192},
        "image": {"registry": "registry.example", "repository": "acme/qwen-worker"},
        "endpoint": {"name": f"rolling-{method}", "gpu": "L4"},
    }
    (project / "deploy.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    cli("endpoint", "create", "--image", IMAGES["old"])
    first = json.loads(cli("smoke-test", "--json").stdout)["summary"]
    old = first["release"]
    assert old and first["release_proven_by"] == "answers" and first["old_answers"] == 0
    [endpoint] = runpod_emulator.state.snapshot()["endpoints"]
    runpod_emulator.faults.cold_start(1.5, endpoint_id=endpoint["id"])

    cli("endpoint", "update", "--image", IMAGES["new"])
    result = cli("smoke-test", "--json")

    summary = json.loads(result.stdout)["summary"]
    new = summary["release"]
    assert new != old and summary["passed"] and summary["release_proven_by"] == "answers"
    assert summary["old_answers"] >= 1 and 1.4 <= summary["drain_seconds"] < 6
    # The refused answers really came from the old release's worker; the accepted one from the new.
    outputs = [job["output"] for job in runpod_emulator.state.snapshot()["jobs"] if job["status"] == "COMPLETED"]
    named = [release_of(output) for output in outputs if release_of(output)]
    assert named.count(old) >= 2 and named[-1] == new  # the first check's, the refused ones, then the new
    assert "old workers are still serving" in result.stderr


def release_of(output: Any) -> str | None:
    from rpdeploy.runpod.release import from_job_output

    return from_job_output(output)


def test_a_release_that_cannot_start_fails_the_check_and_says_so(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, runpod_api: str
) -> None:
    _edit(reference, "smoke_test", timeout=6)
    _deploy(cli)
    old = _smoke_output(reference)["release"]
    [endpoint] = runpod_emulator.state.snapshot()["endpoints"]
    runpod_emulator.faults.release_start_fail(endpoint_id=endpoint["id"])
    _edit(reference, "model", max_model_len=4096)

    result = cli("deploy", expected_code=10)

    record = Ledger.load(reference / ".rpdeploy").stages["smoke-test"]
    new = Ledger.load(reference / ".rpdeploy").output("template", "release")
    assert record.status == "failed" and new != old
    assert f"release {new} failed the endpoint check" in result.stderr
    assert f"came from {old}" in result.stderr and "unhealthy" in result.stderr
    # Why, from RunPod's own view: the new version's workers as REST v2 lists them, and the last
    # log lines of an unhealthy one (not of the old worker that answered).
    [endpoint] = runpod_emulator.state.snapshot()["endpoints"]
    assert f"release {new}: workers of version {endpoint['version']}: " in result.stderr
    assert "UNHEALTHY" in result.stderr and "of an older version still serving" in result.stderr
    assert "log line(s) of worker" in result.stderr and f"of release {new}:" in result.stderr
    assert "error: the worker failed to start" in result.stderr
    # Once the release can start, the next deploy resumes at the check and passes.
    runpod_emulator.faults.clear("release_start_fail")
    statuses = _deploy(cli)
    assert (statuses["template"], statuses["smoke-test"]) == ("skipped", "done")
    assert _smoke_output(reference)["release"] == new


def test_answers_that_name_no_release_are_proven_by_the_rollout(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator, runpod_api: str
) -> None:
    """A user's own vLLM fingerprint mode hides the release: the control plane's rollout has to prove it."""
    _edit(reference, "endpoint", env={"VLLM_EXTRA_ARGS": "--fingerprint-mode none"})
    _deploy(cli)
    [endpoint] = runpod_emulator.state.snapshot()["endpoints"]
    runpod_emulator.faults.cold_start(1.0, endpoint_id=endpoint["id"])
    _edit(reference, "model", max_model_len=4096)

    result = cli("deploy")

    output = _smoke_output(reference)
    assert output["release_proven_by"] == "rollout" and output["drain_seconds"] >= 0.9
    assert _rollout_reads(runpod_emulator, runpod_api) >= 2  # waited for it (method 1 reads it before the first job)
    assert "no worker of an older version is left" in result.stdout
    assert "sets vLLM's --fingerprint-* itself" in result.stdout
    # Every answer came from a new worker: the job waited for the rollout, not for an old worker.
    [endpoint] = runpod_emulator.state.snapshot()["endpoints"]
    assert endpoint["version"] >= 1 and {w["version"] for w in endpoint["workers"]} == {endpoint["version"]}


def test_plan_and_status_show_the_seeds_steps_and_where_the_check_runs(
    cli: CliRunnerFn, reference: Path, runpod_emulator: Emulator
) -> None:
    _edit(reference, "backend", host="deploy@example.invalid")  # a backend: stages 9, 10 and 11b appear
    plan = json.loads(cli("plan", "--json").stdout)
    steps = [(step["step"], step["name"]) for step in plan["steps"]]
    assert steps == [
        ("5", "account"), ("6", "template"), ("7", "gpu"), ("8", "endpoint"), ("11a", "smoke-test"),
        ("9", "backend-env"), ("10", "backend-restart"), ("11b", "integration-test"),
    ]  # fmt: skip
    assert "(11a runs before 9: the backend is switched only to a release that answered)" in cli("plan").stdout
    _edit(reference, "backend", host=None)
    path = reference / "deploy.yaml"
    document = yaml.safe_load(path.read_text())
    del document["backend"]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    cli("deploy")
    status = json.loads(cli("status", "--json").stdout)
    assert [(s["step"], s["name"], s["status"]) for s in status["stages"]][-2:] == [
        ("8", "endpoint", "done"),
        ("11a", "smoke-test", "done"),
    ]
    release = _smoke_output(reference)["release"]
    assert f"release {release} checked by its own answers" in status["notes"]
