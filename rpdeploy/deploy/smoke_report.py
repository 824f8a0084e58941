"""The smoke test's reports: the text report, JUnit XML for CI, and naming why a job stalled.

Owns :func:`format_report` and :func:`write_junit` (what a :class:`~rpdeploy.deploy.smoke.SmokeResult`
looks like to people and to CI), and the diagnosis read from ``/health``: :func:`describe_health`
(progress while a job waits) and :func:`diagnose` (the likeliest cause when it did not finish).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from rpdeploy.deploy.smoke import SmokeResult


def describe_health(health: dict[str, Any]) -> str:
    jobs = health.get("jobs") or {}
    workers = health.get("workers") or {}
    parts = []
    if jobs.get("inQueue"):
        parts.append(f"{jobs['inQueue']} job(s) queued")
    if jobs.get("inProgress"):
        parts.append(f"{jobs['inProgress']} running")
    for key in ("initializing", "running", "idle", "ready", "throttled", "unhealthy"):
        if workers.get(key):
            parts.append(f"workers {key} {workers[key]}")
    return ", ".join(parts) or "no workers yet"


def diagnose(health: dict[str, Any] | None, state: str | None = None) -> str:
    """The likeliest reason a job did not finish, from its last state and the endpoint's /health."""
    if state == "IN_PROGRESS":
        return (
            "a worker took the job but did not finish it: the handler may hang or generate very slowly; check "
            "the worker logs (raise smoke_test.timeout if the model is just slow)"
        )
    if not health:
        return "the worker did not finish in time"
    workers = health.get("workers") or {}
    jobs = health.get("jobs") or {}
    if workers.get("unhealthy") or (jobs.get("failed") and not jobs.get("completed")):
        return "workers are failing (crash loop?): check the worker logs (`rpdeploy logs`)"
    if workers.get("initializing"):
        return (
            f"{workers['initializing']} worker(s) still initializing: a cold start (image pull + model load) took "
            "longer than the timeout; raise smoke_test.timeout, or use FlashBoot / a cached or baked model"
        )
    if workers.get("throttled"):
        return "workers are throttled: RunPod has no free GPU of this type right now"
    if sum(int(v or 0) for v in workers.values()) == 0:
        return (
            "no worker was started: workers_max may be 0, or RunPod has no GPU capacity for this endpoint's GPU "
            "type right now (jobs wait in the queue)"
        )
    return "the job was still queued when the timeout ended it"


def format_report(result: SmokeResult) -> str:
    lines = [f"Smoke test of {result.target} ({result.method.value}): {'PASSED' if result.passed else 'FAILED'}"]
    for check in result.checks:
        mark = "ok  " if check.passed else "FAIL"
        lines.append(f"  {mark} {check.name} ({check.seconds:.2f}s): {check.message}")
    job = result.first_job
    if job is not None and job.passed:
        if job.delay_ms is not None:
            lines.append(f"  queue/cold start  {job.delay_ms / 1000:.2f}s")
        if job.execution_ms is not None:
            lines.append(f"  execution         {job.execution_ms / 1000:.2f}s")
        lines.append(f"  end to end        {job.seconds:.2f}s")
        if job.output_tokens is not None:
            rate = f" ({job.tokens_per_second} tokens/s)" if job.tokens_per_second else ""
            lines.append(f"  output tokens     {job.output_tokens}{rate}")
        if job.answer:
            lines.append(f"  answer            {job.answer!r}")
    if result.release is not None:
        lines += [f"  {line}" for line in result.release.lines()]
    lines.append(f"  {result.requests} HTTP request(s) in {result.seconds:.2f}s")
    return "\n".join(lines)


def write_junit(result: SmokeResult, path: Path) -> None:
    """JUnit XML for CI test reports: one test case per check."""
    from rpdeploy.fsutil import atomic_write
    from rpdeploy.output import printable
    from rpdeploy.secrets import redact as _redact

    def redact(text: str) -> str:
        # Control characters are not allowed in XML 1.0 at all: a worker's answer may hold some.
        return printable(_redact(text))

    failures = sum(1 for c in result.checks if not c.passed)
    suite = ET.Element(
        "testsuite",
        name="rpdeploy.deploy.smoke",
        tests=str(len(result.checks)),
        failures=str(failures),
        errors="0",
        time=f"{result.seconds:.3f}",
    )
    for check in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"smoke.{result.method.value}", name=check.name)
        case.set("time", f"{check.seconds:.3f}")
        if not check.passed:
            failure = ET.SubElement(case, "failure", message=redact(check.message))
            failure.text = redact(check.message)
        elif check.answer:
            ET.SubElement(case, "system-out").text = redact(check.answer)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    atomic_write(path, ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")
