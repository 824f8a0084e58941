"""The endpoint's workers, its releases and its workers' logs, as RunPod reports them.

These come from REST v2 only (``/workers``, ``/releases``, ``/workers/{workerId}/logs``);
under ``runpod.api: graphql`` the same key reads them over REST (``GraphQLControlPlane.rest``).
Nothing here writes. What RunPod cannot answer becomes a note saying why, never a failure of
the command that asked (``status`` goes on without its worker list).

A worker's logs are what its container printed, so they may carry secrets (worker-vllm
v2.25.2 prints its argv, an ``HF_TOKEN`` included): every line is passed through
:func:`rpdeploy.secrets.redact` before anything shows or stores it.

``workers(endpoint_id)`` and ``releases(endpoint_id)`` on the control plane are also what a
release-rollout wait can poll: ``ReleaseList.rollout.in_progress`` and ``Worker.is_stale``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from rpdeploy.errors import ApiError, AuthError, ConfigError
from rpdeploy.runpod.models import LogLine, Release, Rollout, Worker
from rpdeploy.secrets import redact

if TYPE_CHECKING:
    from rpdeploy.runpod.controlplane import ControlPlane

#: Lines of a failing worker's log a failed smoke test shows.
FAILURE_LINES = 20
_DURATION = re.compile(r"^(\d+)([smhd])$")


@dataclass(frozen=True)
class FleetView:
    """What ``status`` shows of the endpoint's workers and its latest release."""

    endpoint_id: str
    endpoint_version: int | None
    workers: tuple[Worker, ...]
    release: Release | None
    rollout: Rollout | None
    note: str | None = None


def _unavailable(what: str, exc: ApiError) -> str:
    return f"{what} unavailable: {exc.message}"


def read_fleet(cp: ControlPlane, endpoint_id: str) -> FleetView:
    """The workers and the latest release's rollout; a note instead when RunPod cannot say."""
    try:
        listed = cp.workers(endpoint_id)
    except AuthError:
        raise
    except ApiError as exc:
        return FleetView(endpoint_id, None, (), None, None, _unavailable("worker list (REST v2 /workers)", exc))
    release, rollout, note = None, None, None
    try:
        history = cp.releases(endpoint_id)
        release, rollout = history.latest, history.rollout
    except AuthError:
        raise
    except ApiError as exc:
        note = _unavailable("releases (REST v2 /releases)", exc)
    return FleetView(endpoint_id, listed.endpoint_version, listed.workers, release, rollout, note)


def newest_worker(workers: tuple[Worker, ...]) -> Worker | None:
    """The worker that started last (RFC 3339 times sort as text; unknown ones count as oldest)."""
    return max(workers, key=lambda w: w.started_at or "", default=None)


def parse_since(value: str, now: datetime | None = None) -> str:
    """``--since``: an RFC 3339 time, or a duration back from now (``90s``, ``10m``, ``2h``, ``1d``)."""
    match = _DURATION.match(value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        name = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]
        delta = timedelta(**{name: amount})
        moment = (now or datetime.now(timezone.utc)) - delta
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {value!r} is neither an RFC 3339 time nor a duration",
            hint="e.g. --since 10m, --since 2h, or --since 2026-09-01T12:00:00Z",
        ) from None
    return value.strip()


@dataclass(frozen=True)
class LogTarget:
    endpoint_id: str
    worker_id: str
    #: Why this worker: "newest" (the default) or "chosen" (--worker).
    chosen: bool


def pick_worker(cp: ControlPlane, endpoint_id: str, worker_id: str | None) -> LogTarget:
    """The worker whose logs to read: ``worker_id``, else the newest active one."""
    if worker_id:
        return LogTarget(endpoint_id, worker_id, True)
    listed = cp.workers(endpoint_id)
    newest = newest_worker(listed.workers)
    if newest is None:
        raise ApiError(
            f"endpoint {endpoint_id} has no active worker, so there are no logs to read",
            hint="RunPod lists only active workers and drops a worker's logs when it stops; send a request "
            "(`rpdeploy smoke-test`) to start one, then run this again (or with --follow)",
        )
    return LogTarget(endpoint_id, newest.id, False)


def logs(
    cp: ControlPlane,
    target: LogTarget,
    *,
    tail: int = 100,
    since: str | None = None,
    follow: bool = False,
) -> Iterator[LogLine]:
    """The worker's log lines, redacted, oldest first (``follow``: then new ones as they come)."""
    for line in cp.worker_logs(target.endpoint_id, target.worker_id, tail=tail, since=since, follow=follow):
        yield LogLine(ts=line.ts, source=line.source, line=redact(line.line), id=line.id)


def last_lines(cp: ControlPlane, endpoint_id: str, worker_id: str | None, count: int = FAILURE_LINES) -> list[str]:
    """The last lines of a worker's log as text, for a failure report; [] when they cannot be read."""
    try:
        target = pick_worker(cp, endpoint_id, worker_id)
        return [format_line(line) for line in logs(cp, target, tail=count)]
    except ApiError:
        return []


def report_failure(cp: ControlPlane, endpoint_id: str, worker_id: str | None, warn: Callable[[str], None]) -> None:
    """After a failed smoke test: the last lines of the worker that ran the failing job (else the
    newest one), or why they cannot be shown."""
    try:
        target = pick_worker(cp, endpoint_id, worker_id)
        lines = [format_line(line) for line in logs(cp, target, tail=FAILURE_LINES)]
    except ApiError as exc:
        warn(f"the worker's logs could not be read: {exc.message}")
        return
    which = "that ran the failing job" if target.chosen else "(the newest)"
    if not lines:
        warn(f"worker {target.worker_id} {which} has logged nothing yet")
        return
    shown = "\n".join(f"  {text}" for text in lines)
    warn(f"last {len(lines)} log line(s) of worker {target.worker_id} {which}:\n{shown}")


#: Which of a release's workers tells most about why it does not answer, best first.
_TELLING = ("UNHEALTHY", "INITIALIZING", "THROTTLED", "RUNNING", "IDLE")


def explain_failure(
    cp: ControlPlane,
    endpoint_id: str,
    worker_id: str | None,
    answered_by: str | None,
    expected: str | None,
    warn: Callable[[str], None],
) -> None:
    """After a failed endpoint check, the workers' side of it. When the check wanted release
    ``expected`` and it never answered (an old worker did, or no worker took the job): the new
    release's workers and the last log lines of the one that says most. Otherwise the last lines
    of the worker that ran the failing job (``worker_id``), else of the newest one."""
    never_answered = answered_by is not None and answered_by != expected
    if expected is not None and (never_answered or worker_id is None):
        report_release_failure(cp, endpoint_id, expected, warn)
    else:
        report_failure(cp, endpoint_id, worker_id, warn)


def report_release_failure(cp: ControlPlane, endpoint_id: str, release: str, warn: Callable[[str], None]) -> None:
    """When the endpoint's new release did not answer (old workers did): the state of its workers
    as RunPod lists them, and the last log lines of the one that says most (an unhealthy one
    first). A failing worker is replaced now and then, its logs going with it: a worker gone
    between the list and the read is looked for again. Never raises but for a rejected key."""
    for attempt in range(3):
        try:
            listed = cp.workers(endpoint_id)
        except AuthError:
            raise
        except ApiError as exc:
            warn(f"release {release}: {_unavailable('its workers (REST v2 /workers)', exc)}")
            return
        current = [w for w in listed.workers if not w.is_stale]
        stale = len(listed.workers) - len(current)
        version = listed.endpoint_version
        if not current:
            warn(f"release {release}: no worker of version {version} is running ({stale} of an older version)")
            return
        counts: dict[str, int] = {}
        for worker in current:
            counts[worker.status] = counts.get(worker.status, 0) + 1
        states = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        pick = min(
            current,
            key=lambda w: (_TELLING.index(w.status) if w.status in _TELLING else len(_TELLING), w.started_at or ""),
        )
        try:
            lines = [format_line(line) for line in logs(cp, LogTarget(endpoint_id, pick.id, True), tail=FAILURE_LINES)]
        except AuthError:
            raise
        except ApiError as exc:
            if attempt < 2:
                continue  # replaced meanwhile: list again
            warn(f"release {release}: workers of version {version}: {states}; no log could be read: {exc.message}")
            return
        warn(f"release {release}: workers of version {version}: {states} ({stale} of an older version still serving)")
        if lines:
            shown = "\n".join(f"  {text}" for text in lines)
            warn(f"last {len(lines)} log line(s) of worker {pick.id} ({pick.status}) of release {release}:\n{shown}")
        else:
            warn(f"worker {pick.id} ({pick.status}) of release {release} has logged nothing yet")
        return


def format_line(line: LogLine) -> str:
    return f"{line.ts} [{line.source}] {line.line}"


def age(worker: Worker, now: float | None = None) -> str:
    """How long the worker has been up, for people: 45s, 12m, 3h, 2d."""
    seconds = worker.uptime_seconds
    if seconds is None and worker.started_at:
        try:
            started = datetime.fromisoformat(worker.started_at.replace("Z", "+00:00"))
            seconds = int((now or time.time()) - started.timestamp())
        except ValueError:
            seconds = None
    if seconds is None:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(0, seconds)}s"
