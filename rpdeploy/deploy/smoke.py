"""The smoke test: prove the endpoint answers for its method, through cold starts, and measure it.

Waiting for a job is a long poll, then a short poll. ``/runsync`` holds the connection until
the job ends or RunPod's own hold (about 90 s) runs out, so an endpoint that answers within
it costs one request and is noticed the moment it answers; we only ask RunPod for a shorter
hold (``?wait=``) to stop by our own deadline. A longer cold start hands the job back still
queued: ``/status`` is then polled every 0.5 s while the requests sent since submitting
average under 0.8 a second (the long poll banks most of that), else every second, so the end
is noticed within about half a second on average at about one request per second at most,
however long the wait. ``/health`` says what is happening (queued, workers
initialising, running): every 10 s during the long poll, every 30 s while ``/status`` already
tells the job's state. Transient errors while polling (429, 5xx, a dropped connection) are
retried until the deadline. On timeout the job is cancelled and the likely cause is named
from ``/health`` and the job's state. FAILED, TIMED_OUT, CANCELLED and a COMPLETED job whose
output holds an ``error`` are all failures (with runpod >= 1.7.7 a worker's error item fails the
job; older SDKs, and the SDK's local test server, leave it in a COMPLETED job's output).

Every method is also checked on RunPod's OpenAI route (``/openai/v1``), the one the backend uses.

Which release answered (:class:`ReleaseCheck`): right after an update, RunPod's workers of the
previous release keep answering until new ones are ready (rpdeploy/runpod/release.py). Given the
release a deploy just made, the check accepts only answers of that release: an answer that
names another release is refused and asked again, with progress, while the old workers drain;
an answer that names none counts only once the control plane shows no worker of an older
version (rpdeploy/runpod/rollout.py). The report says which of the two proved the release, or
that neither could, and how long the old workers took to go.

``benchmarks/smoke_wait.py`` measures how soon the end of a job is noticed and how many
requests the wait costs.
"""

from __future__ import annotations

import json
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpdeploy.errors import ApiError, RpdeployError
from rpdeploy.methods import Method
from rpdeploy.output import NullReporter, Reporter
from rpdeploy.runpod import release as releases
from rpdeploy.runpod.invoke import (
    HOLD_MARGIN,
    TERMINAL,
    InvokeClient,
    NoAnswerError,
    RateLimitedError,
    parse_sse_json,
)

if TYPE_CHECKING:
    from rpdeploy.runpod.rollout import Rollout

PREVIEW_CHARS = 80


@dataclass(frozen=True)
class SmokeSettings:
    prompt: str
    max_tokens: int
    timeout: float
    stream: bool = False
    #: How long RunPod holds /runsync when not asked for less (reference §5.1: ~90 s). Asking
    #: for more (up to 300 s) is documented, but a hold past ~100 s meets the proxy read
    #: timeouts in front of many APIs, and a cut long poll loses the job id with it.
    runsync_wait: float = 90.0
    #: Pause between /status polls: ``poll_fast`` while the requests sent since the job was
    #: submitted average under ``request_budget`` per second (the long poll banks most of
    #: that), else ``poll_slow``.
    poll_fast: float = 0.5
    poll_slow: float = 1.0
    request_budget: float = 0.8
    #: /health every so often while /runsync holds, and while /status is polled.
    health_waiting: float = 10.0
    health_polling: float = 30.0
    #: Pause before asking again after an answer from an old release (doubling with each one, up
    #: to ``release_retry_max``: every question is a job, and a drain can take minutes), and
    #: between reads of the rollout while waiting for it.
    release_retry: float = 1.0
    release_retry_max: float = 8.0
    rollout_poll: float = 2.0


@dataclass(frozen=True)
class ReleaseCheck:
    """The release the check must hear from (see the module docstring)."""

    expected: str
    #: The control plane's view of the rollout, read when an answer names no release.
    rollout: Callable[[], Rollout] | None = None
    #: Wait for the rollout before the first job (method 1: the issue's order).
    wait_rollout: bool = False
    #: Why the new workers may answer without naming their release (shown when they do).
    unnamed: str = ""
    #: rollout.pinned_note(): why this endpoint may never get the release.
    pinned: str = ""


def release_check(config: Any, expected: str, rollout: Callable[[], Rollout] | None) -> ReleaseCheck:
    """The check of ``expected`` for deploy.yaml's method and endpoint."""
    from rpdeploy.methods import Method
    from rpdeploy.runpod.rollout import pinned_note

    endpoint = config.endpoint
    return ReleaseCheck(
        expected=expected,
        rollout=rollout,
        # Method 1 runs RunPod's worker: wait for its rollout as RunPod reports it, then ask it.
        wait_rollout=config.method is Method.WORKER_VLLM and rollout is not None,
        unnamed=releases.unnamed_reason(config),
        pinned=pinned_note(endpoint.workers_min, endpoint.workers_max),
    )


@dataclass(frozen=True)
class ReleaseReport:
    """What the check proved about the release."""

    expected: str
    #: "answers" (an answer named it), "rollout" (no old worker left, per the control plane),
    #: "nothing" (neither could tell: the endpoint answered, the release is not proven), or
    #: "unanswered" (the check failed before any answer passed).
    proven_by: str
    old_answers: int = 0
    old_releases: tuple[str, ...] = ()
    #: Seconds from the start of the check until the new release answered, when old workers
    #: were seen on the way (None: none was).
    drain_seconds: float | None = None
    rollout: str = ""
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        proof = {
            "answers": "its own answers name it",
            "rollout": "no worker of an older version is left (the control plane's view; the answers name no release)",
            "nothing": "NOT proven: the answers name no release and the control plane cannot show the rollout",
            "unanswered": "not proven: no answer passed the check",
        }[self.proven_by]
        out = [f"release {self.expected}: {proof}"]
        if self.old_answers:
            olds = ", ".join(self.old_releases) or "a worker that names no release"
            drain = f" for {self.drain_seconds:.1f}s" if self.drain_seconds is not None else ""
            out.append(f"  old workers answered {self.old_answers} time(s){drain} ({olds}); those answers were refused")
        elif self.drain_seconds is not None:
            out.append(f"  old workers drained in {self.drain_seconds:.1f}s")
        if self.rollout:
            out.append(f"  rollout: {self.rollout}")
        out += [f"  note: {note}" for note in self.notes]
        return out


@dataclass(frozen=True)
class CheckResult:
    """One check of the smoke test."""

    name: str
    passed: bool
    seconds: float
    message: str
    job_id: str | None = None
    status: str | None = None
    delay_ms: int | None = None
    execution_ms: int | None = None
    output_tokens: int | None = None
    tokens_per_second: float | None = None
    answer: str | None = None
    #: The release the answer named (rpdeploy.runpod.release), if it named one.
    release: str | None = None
    #: The worker that ran the job (its logs say why it failed: ``rpdeploy logs --worker``).
    worker_id: str | None = None


@dataclass(frozen=True)
class SmokeResult:
    target: str
    method: Method
    checks: tuple[CheckResult, ...]
    requests: int
    seconds: float
    release: ReleaseReport | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def first_job(self) -> CheckResult | None:
        return next((c for c in self.checks if c.job_id), None)

    def summary(self) -> dict[str, Any]:
        job = self.first_job
        return {
            "passed": self.passed,
            "cold_start_ms": job.delay_ms if job else None,
            "execution_ms": job.execution_ms if job else None,
            "latency_s": round(job.seconds, 3) if job else None,
            "output_tokens": job.output_tokens if job else None,
            "tokens_per_second": job.tokens_per_second if job else None,
            "answer": job.answer if job else None,
            "release": self.release.expected if self.release else None,
            "release_proven_by": self.release.proven_by if self.release else None,
            "old_answers": self.release.old_answers if self.release else 0,
            "drain_seconds": self.release.drain_seconds if self.release else None,
        }


@dataclass
class _Watch:
    """What /health last said, kept by a background thread while a job waits."""

    interval: float
    text: str = ""
    health: dict[str, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)


class SmokeFailure(RpdeployError):
    """Internal: a check failed (caught per check; the command turns failures into exit 10)."""


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


def job_error(error: Any) -> str:
    """A FAILED job's error, short: the runpod SDK sends a JSON blob with a whole traceback."""
    if not error:
        return "no error message"
    text = str(error)
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("error_message"):
            kind = str(data.get("error_type", "")).removeprefix("<class '").removesuffix("'>").rsplit(".", 1)[-1]
            text = f"{kind}: {data['error_message']}" if kind else str(data["error_message"])
    return text if len(text) <= 500 else text[:500] + "..."


def output_error(output: Any) -> str | None:
    """The error inside a COMPLETED job's output, in any of the shapes workers use."""
    items = output if isinstance(output, list) else [output]
    for item in items:
        if isinstance(item, dict) and item.get("error"):
            error = item["error"]
            if isinstance(error, dict):
                return str(error.get("message") or error)
            return str(error)
    return None


class Runner:
    """Runs the checks for one target; holds the client and the clock."""

    def __init__(
        self,
        client: InvokeClient,
        settings: SmokeSettings,
        reporter: Reporter,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        release: ReleaseCheck | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.reporter = reporter
        self.clock = clock
        self.sleep = sleep
        self.started = clock()
        self.deadline = self.started + settings.timeout
        self.release = release
        # What the answers said about their release (see attributed()).
        self.old_answers = 0
        self.old_releases: list[str] = []
        self.proofs: set[str] = set()
        self.old_seen = False
        self.new_at: float | None = None
        self.rollout_text = ""
        self.notes: list[str] = []

    def remaining(self) -> float:
        return self.deadline - self.clock()

    # --- jobs -------------------------------------------------------------------------

    def job(
        self, name: str, job_input: dict[str, Any], evaluate: Callable[[Any], tuple[str, int | None]]
    ) -> CheckResult:
        """Run one job to a terminal state and judge its output with ``evaluate``."""
        started = self.clock()
        watch = _Watch(self.settings.health_waiting)
        with self.reporter.status(f"{name}: waiting for the endpoint (a cold start can take minutes)") as status:
            watcher = threading.Thread(target=self._watch_health, args=(name, watch, status.update), daemon=True)
            if not self.client.local:
                watcher.start()
            try:
                body = self._until_terminal(name, job_input, watch, status.update)
            finally:
                watch.stop.set()
                if watcher.is_alive():
                    watcher.join(timeout=2)
        seconds = self.clock() - started
        state = str(body.get("status"))
        job_id = body.get("id")
        delay, execution = body.get("delayTime"), body.get("executionTime")

        named = releases.from_job_output(body.get("output")) if state == "COMPLETED" else None

        def result(passed: bool, message: str, answer: str | None = None, tokens: int | None = None) -> CheckResult:
            # The local test server reports no timings: its whole request is the execution.
            busy = execution / 1000 if execution else (seconds if self.client.local else None)
            rate = round(tokens / busy, 1) if tokens and busy else None
            return CheckResult(
                name,
                passed,
                seconds,
                message,
                job_id=str(job_id) if job_id else None,
                status="TIMED_OUT" if state == "TIMED_OUT_LOCAL" else state,
                delay_ms=delay,
                execution_ms=execution,
                output_tokens=tokens,
                tokens_per_second=rate,
                answer=answer[:PREVIEW_CHARS] if answer else None,
                release=named,
                worker_id=str(body["workerId"]) if body.get("workerId") else None,
            )

        if state == "TIMED_OUT_LOCAL":
            return result(False, str(body["reason"]))
        if state != "COMPLETED":
            return result(False, f"job {state}: {job_error(body.get('error'))}")
        error = output_error(body.get("output"))
        if error is not None:
            return result(False, f"job COMPLETED but the worker returned an error: {error}")
        try:
            answer, tokens = evaluate(body.get("output"))
        except SmokeFailure as exc:
            return result(False, exc.message)
        return result(True, "ok", answer, tokens)

    def _until_terminal(
        self, name: str, job_input: dict[str, Any], watch: _Watch, update: Callable[[str], None]
    ) -> dict[str, Any]:
        """Submit the job and wait for its end: the long poll, then /status polls, or the deadline."""
        submitted, sent_before = self.clock(), self.client.requests
        body = self._submit_interruptible(job_input)
        try:
            return self._poll(name, body, watch, update, submitted, sent_before)
        except KeyboardInterrupt:
            self._cancel_on_interrupt(body)
            raise

    def _poll(
        self,
        name: str,
        body: dict[str, Any],
        watch: _Watch,
        update: Callable[[str], None],
        submitted: float,
        sent_before: int,
    ) -> dict[str, Any]:
        """/status until the job ends, or the deadline."""
        settings = self.settings
        watch.interval = settings.health_polling
        state = str(body.get("status"))
        last_error: ApiError | None = None
        while state not in TERMINAL:
            job_id = str(body.get("id"))
            if self.remaining() <= 0:
                return self._give_up(job_id, state, watch, last_error)
            seen = f"; {watch.text}" if watch.text else ""
            problem = f" (last poll: {last_error.message})" if last_error else ""
            update(f"{name}: job {job_id} {state}{seen}{problem}")
            # Spend what the long poll saved: fast polls notice the end sooner, and a cold start
            # that just overran the hold is the likeliest to end soon. Then about once a second.
            sent = self.client.requests - sent_before + 1
            fast = sent <= settings.request_budget * (self.clock() + settings.poll_fast - submitted)
            pause = settings.poll_fast if fast else settings.poll_slow
            if isinstance(last_error, RateLimitedError) and last_error.retry_after:
                pause = max(pause, last_error.retry_after)
            self.sleep(min(pause, max(self.remaining(), 0.0)))
            try:
                polled = self.client.status(job_id)
            except ApiError as exc:
                if not exc.retryable:
                    raise
                last_error = exc  # /status is a read: ask again until the deadline
                continue
            last_error = None
            body, state = polled, str(polled.get("status"))
        return body

    def _submit_interruptible(self, job_input: dict[str, Any]) -> dict[str, Any]:
        """``_submit``, with Ctrl-C while ``/runsync`` holds the connection cancelling the job it made.

        RunPod names the job only when ``/runsync`` answers, so the request runs in a thread: on
        Ctrl-C we wait for that answer (at most the hold) and cancel the job it names, instead
        of leaving it queued on the endpoint. A second Ctrl-C stops waiting. The local test
        server runs the job inside the request and has nothing to cancel.
        """
        if self.client.local:
            return self._submit(job_input)
        box: dict[str, Any] = {}
        # An Event, not Thread.join: a join that Ctrl-C interrupts can leave is_alive() False while
        # the thread still runs (CPython issue 90882), and then the job would never be cancelled.
        finished = threading.Event()

        def submit() -> None:
            try:
                box["body"] = self._submit(job_input)
            except BaseException as exc:  # handed to the caller's thread as it is
                box["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=submit, name="rpdeploy-smoke-submit", daemon=True).start()
        try:
            while not finished.wait(0.2):
                pass
        except KeyboardInterrupt:
            self.reporter.warn(
                "interrupted: waiting for RunPod to name the smoke-test job so that it can be cancelled "
                f"(at most {self.settings.runsync_wait:g}s; Ctrl-C again to leave it queued)"
            )
            try:
                while not finished.wait(0.2):
                    pass
            except KeyboardInterrupt:
                self.reporter.warn("the smoke-test job was left on the endpoint: it runs when a worker is free")
                raise
            if "body" in box:
                self._cancel_on_interrupt(box["body"])
            raise
        if "error" in box:
            raise box["error"]
        body: dict[str, Any] = box["body"]
        return body

    def _cancel_on_interrupt(self, body: dict[str, Any]) -> None:
        """Cancel the job ``body`` names when it has not ended (Ctrl-C): best effort, said either way."""
        job_id, state = body.get("id"), str(body.get("status"))
        if not job_id or state in TERMINAL or self.client.local:
            return
        try:
            cancelled = self.client.cancel(str(job_id))
        except ApiError as exc:
            self.reporter.warn(f"could not cancel smoke-test job {job_id}: {exc.message} (it may still run)")
            return
        final = cancelled.get("status") if cancelled else "CANCELLED"
        self.reporter.warn(f"smoke-test job {job_id} cancelled ({final})")

    def _submit(self, job_input: dict[str, Any]) -> dict[str, Any]:
        """POST /runsync, holding as long as RunPod does unless our deadline comes sooner."""
        while True:
            remaining = self.remaining()
            try:
                if self.client.local:
                    return self.client.runsync(job_input, timeout=max(remaining, 1.0))
                if remaining >= self.settings.runsync_wait:
                    return self.client.runsync(job_input, timeout=self.settings.runsync_wait + HOLD_MARGIN)
                return self.client.runsync(job_input, wait_ms=int(max(remaining, 1.0) * 1000))
            except RateLimitedError as exc:
                # Refused before a job was made, so sending it again cannot duplicate it.
                delay = exc.retry_after or 1.0
                if delay >= self.remaining():
                    raise
                self.reporter.warn(f"{exc.message}; retrying in {delay:g}s")
                self.sleep(delay)
            except NoAnswerError as exc:
                if not self.client.local:
                    raise
                # The local test server runs the handler inside the request: no answer is a hang.
                return {"status": "TIMED_OUT_LOCAL", "reason": f"{exc.message}: the handler did not return in time"}

    def _give_up(self, job_id: str, state: str, watch: _Watch, last_error: ApiError | None) -> dict[str, Any]:
        """Past the deadline: say why the job likely stalled (asked before cancelling), then cancel it."""
        health = self._health_now() or watch.health
        reason = diagnose(health, state)
        if last_error is not None:
            reason += f" (the last /status poll failed: {last_error.message})"
        outcome = ""
        try:
            cancelled = self.client.cancel(job_id)
        except ApiError as exc:
            self.reporter.warn(f"could not cancel job {job_id}: {exc.message}")
            cancelled, outcome = None, " (could not cancel the job: it may still run)"
        if cancelled is not None:
            final = str(cancelled.get("status"))
            if final in TERMINAL and final != "CANCELLED":
                return cancelled  # it ended just as we gave up: judge it like any other end
            outcome = " (job cancelled)"
        return {
            "id": job_id,
            "status": "TIMED_OUT_LOCAL",
            "reason": f"no answer within {self.settings.timeout:g}s{outcome}: {reason}",
        }

    def _health_now(self) -> dict[str, Any] | None:
        try:
            return self.client.health()
        except ApiError:
            return None

    def _watch_health(self, name: str, watch: _Watch, update: Callable[[str], None]) -> None:
        while not watch.stop.wait(watch.interval):
            health = self._health_now()
            if health and not watch.stop.is_set():
                watch.health = health
                watch.text = describe_health(health)
                update(f"{name}: {watch.text}")

    # --- which release answered -----------------------------------------------------------

    def _rollout(self) -> Rollout | None:
        check = self.release
        if check is None or check.rollout is None:
            return None
        try:
            view = check.rollout()
        except ApiError as exc:
            self.rollout_text = f"could not be read ({exc.message})"
            return None
        self.rollout_text = view.describe()
        if view.stale:
            self.old_seen = True
        return view

    def wait_rollout(self) -> None:
        """Wait (up to half the time left) until the control plane shows no worker of an older version."""
        check = self.release
        if check is None or check.rollout is None:
            return
        budget_end = self.clock() + self.remaining() / 2
        with self.reporter.status(f"release {check.expected}: reading the rollout") as status:
            while True:
                view = self._rollout()
                if view is None or not view.observable or view.done:
                    break
                if self.clock() >= budget_end:
                    self.notes.append(f"the rollout was still under way after {self.clock() - self.started:.0f}s")
                    return
                status.update(
                    f"release {check.expected}: waiting for old workers to drain ({view.describe()}; "
                    f"{self.clock() - self.started:.0f}s)"
                )
                self.sleep(min(self.settings.rollout_poll, max(self.remaining(), 0.0)))
        if view is not None and view.done and self.old_seen:
            self.new_at = self.new_at or self.clock()

    def _accepts(self, named: str | None) -> bool:
        """Is an answer that names ``named`` one of the expected release? Records how that was known."""
        check = self.release
        assert check is not None
        if named == check.expected:
            self.proofs.add("answers")
            return True
        if named is not None:
            return False
        view = self._rollout()
        if view is not None and view.observable:
            if not view.done:
                return False  # unnamed, and old workers remain: it may be one of them
            self.proofs.add("rollout")
            return True
        self.proofs.add("nothing")
        return True

    def attributed(self, name: str, attempt: Callable[[], CheckResult]) -> CheckResult:
        """Run a check until an answer of the expected release passes it (or the time is up)."""
        check = self.release
        while True:
            result = attempt()
            if check is None:
                return result
            if result.passed and self._accepts(result.release):
                if self.old_seen and self.new_at is None:
                    self.new_at = self.clock()
                return result
            if not result.passed and result.release in (None, check.expected):
                return result  # the new release's own failure, or one no answer can place
            # An old worker answered (in a shape of its own, even: a switch of method).
            self.old_answers += 1
            self.old_seen = True
            who = result.release or "a worker that names no release"
            if result.release and result.release not in self.old_releases:
                self.old_releases.append(result.release)
            waited = self.clock() - self.started
            if self.remaining() <= self.settings.release_retry:
                return replace(result, passed=False, message=self._never_answered(who, waited))
            if self.old_answers == 1:
                self.reporter.info(
                    f"{name}: answered by {who}, not release {check.expected}: old workers are still serving; "
                    "asking again until the new release answers"
                )
            pause = min(self.settings.release_retry * 2 ** (self.old_answers - 1), self.settings.release_retry_max)
            with self.reporter.status(
                f"{name}: waiting for release {check.expected} ({self.old_answers} answer(s) from the old "
                f"release in {waited:.0f}s)"
            ):
                self.sleep(min(pause, max(self.remaining(), 0.0)))

    def _never_answered(self, who: str, waited: float) -> str:
        check = self.release
        assert check is not None
        parts = [
            f"release {check.expected} did not answer in {waited:.0f}s: {self.old_answers} answer(s) came from {who}"
        ]
        health = self._health_now()
        workers = (health or {}).get("workers") or {}
        if workers.get("unhealthy"):
            parts.append(
                f"{workers['unhealthy']} worker(s) of the new release are unhealthy: it fails to start (its "
                "workers' logs: `rpdeploy logs`)"
            )
        elif workers.get("initializing"):
            parts.append(f"{workers['initializing']} worker(s) still initializing")
        if self.rollout_text:
            parts.append(f"rollout: {self.rollout_text}")
        if check.pinned:
            parts.append(check.pinned)
        return "; ".join(parts)

    def report(self) -> ReleaseReport | None:
        check = self.release
        if check is None:
            return None
        proven = next((p for p in ("answers", "rollout", "nothing") if p in self.proofs), "unanswered")
        notes = list(self.notes)
        if proven != "answers" and check.unnamed:
            notes.append(check.unnamed)
        drain = round(self.new_at - self.started, 3) if self.new_at is not None and self.old_seen else None
        return ReleaseReport(
            expected=check.expected,
            proven_by=proven,
            old_answers=self.old_answers,
            old_releases=tuple(self.old_releases),
            drain_seconds=drain,
            rollout=self.rollout_text,
            notes=tuple(notes),
        )


# --- evaluating outputs -------------------------------------------------------------------


def _usage_tokens(usage: Any) -> int | None:
    if isinstance(usage, dict):
        for key in ("completion_tokens", "output"):
            if isinstance(usage.get(key), int):
                return int(usage[key])
    return None


def _openai_answer(obj: Any) -> tuple[str, int | None]:
    """Text and output tokens of an OpenAI chat/text completion, or of legacy worker-vllm output."""
    if not isinstance(obj, dict):
        raise SmokeFailure(f"expected a completion object, got {type(obj).__name__}")
    choices = obj.get("choices") or []
    if not choices:
        raise SmokeFailure("the completion has no choices")
    choice = choices[0]
    text = ""
    if isinstance(choice.get("message"), dict):
        text = str(choice["message"].get("content") or "")
    elif "text" in choice:
        text = str(choice.get("text") or "")
    elif isinstance(choice.get("tokens"), list):  # worker-vllm before v2.24
        text = "".join(str(t) for t in choice["tokens"])
    if not text.strip():
        raise SmokeFailure("the answer is empty")
    return text, _usage_tokens(obj.get("usage"))


def _first(output: Any) -> Any:
    return output[0] if isinstance(output, list) and output else output


def evaluate_worker_vllm(output: Any) -> tuple[str, int | None]:
    return _openai_answer(_first(output))


def evaluate_custom_handler(output: Any) -> tuple[str, int | None]:
    items = output if isinstance(output, list) else [output]
    if not items or not all(isinstance(i, dict) for i in items):
        raise SmokeFailure(f"unexpected output shape: {str(output)[:120]}")
    text = "".join(str(i.get("text") or "") for i in items)
    if not text.strip():
        raise SmokeFailure("the handler returned an empty response")
    return text, _usage_tokens(items[-1].get("usage"))


def evaluate_fastapi(output: Any) -> tuple[str, int | None]:
    # A list of one since the handler is a generator (an older handler.py returned the dict itself).
    output = _first(output)
    if not isinstance(output, dict) or "status_code" not in output:
        raise SmokeFailure(f"expected {{status_code, body}} from the app, got: {str(output)[:120]}")
    if output["status_code"] != 200:
        body = output.get("body")
        detail = output_error(body) or body
        raise SmokeFailure(f"the app answered HTTP {output['status_code']}: {str(detail)[:200]}")
    return _openai_answer(output.get("body"))


# --- the checks per method ----------------------------------------------------------------


def _messages(settings: SmokeSettings) -> list[dict[str, str]]:
    return [{"role": "user", "content": settings.prompt}]


def run_smoke(
    client: InvokeClient,
    method: Method,
    settings: SmokeSettings,
    *,
    model: str,
    target: str,
    reporter: Reporter | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    release: ReleaseCheck | None = None,
) -> SmokeResult:
    """Run every check for ``method`` against ``client``'s endpoint (of ``release``, when given)."""
    reporter = reporter or NullReporter()
    runner = Runner(client, settings, reporter, clock=clock, sleep=sleep, release=release)
    started = clock()
    checks: list[CheckResult] = []
    if release is not None and release.wait_rollout:
        runner.wait_rollout()
    sampling = {"max_tokens": settings.max_tokens, "temperature": 0}
    if method is Method.WORKER_VLLM:
        name = "runsync chat"
        job_input: dict[str, Any] = {"messages": _messages(settings), "sampling_params": sampling}
        evaluate: Callable[[Any], tuple[str, int | None]] = evaluate_worker_vllm
    elif method is Method.CUSTOM_HANDLER:
        name, evaluate = "runsync handler", evaluate_custom_handler
        job_input = {"messages": _messages(settings), "sampling_params": sampling}
    else:
        body = {"messages": _messages(settings), "max_tokens": settings.max_tokens, "temperature": 0}
        name, evaluate = "runsync /v1/chat/completions", evaluate_fastapi
        job_input = {"method": "POST", "path": "/v1/chat/completions", "body": body}
    checks.append(runner.attributed(name, lambda: runner.job(name, job_input, evaluate)))
    if checks[-1].passed:
        # The route the backend uses, whatever the method: RunPod's /openai/v1. A local worker
        # has no such route; it gets the jobs RunPod makes of those requests instead. A model
        # list names no release: it is asked once the job above heard from the new one.
        listed, served = _openai_models(runner, model)
        checks.append(listed)
        # Without deploy.yaml (--url) the model's name is unknown: use the one it serves.
        model = model or served
        checks.append(runner.attributed("openai chat completion", lambda: _openai_chat(runner, model)))
        if settings.stream:
            checks.append(runner.attributed("openai streamed completion", lambda: _openai_stream(runner, model)))
    for check in checks:
        (reporter.success if check.passed else reporter.warn)(f"{check.name}: {check.message}")
    report = runner.report()
    for line in report.lines() if report is not None else ():
        (reporter.warn if report is not None and report.proven_by == "nothing" else reporter.info)(line)
    return SmokeResult(target, method, tuple(checks), client.requests, clock() - started, report)


def _timed(
    runner: Runner, name: str, call: Callable[[], tuple[str, int | None, str]], named: list[str | None] | None = None
) -> CheckResult:
    """Run ``call``; ``named`` is where it puts the release its answer named."""
    started = runner.clock()
    try:
        answer, tokens, message = call()
    except (SmokeFailure, ApiError) as exc:
        return CheckResult(name, False, runner.clock() - started, exc.message, release=named[-1] if named else None)
    seconds = runner.clock() - started
    rate = round(tokens / seconds, 1) if tokens and seconds > 0 else None
    return CheckResult(
        name,
        True,
        seconds,
        message,
        output_tokens=tokens,
        tokens_per_second=rate,
        answer=answer[:PREVIEW_CHARS] or None,
        release=named[-1] if named else None,
    )


def _openai_job(runner: Runner, route: str, body: dict[str, Any] | None) -> Any:
    """What a local worker answers to the job RunPod makes of ``/openai{route}``: its output items.

    RunPod sends ``{"openai_route": route, "openai_input": body}`` (worker-vllm v2.25.2,
    src/handler.py); the SDK's local test server has no /openai route of its own.
    """
    job: dict[str, Any] = {"openai_route": route}
    if body is not None:
        job["openai_input"] = body
    done = runner.client.runsync(job, timeout=max(runner.remaining(), 5))
    if done.get("status") != "COMPLETED":
        raise SmokeFailure(f"the {route} job ended {done.get('status')}: {job_error(done.get('error'))}")
    output = done.get("output")
    items = output if isinstance(output, list) else [output]
    error = output_error(items)
    if error is not None:
        raise SmokeFailure(f"the worker returned an error: {error}")
    return items


def _openai_models(runner: Runner, model: str) -> tuple[CheckResult, str]:
    """The check that the model is served, and the first model served ("" if none)."""
    listed: list[str] = []

    def call() -> tuple[str, int | None, str]:
        if runner.client.local:
            answer = _first(_openai_job(runner, "/v1/models", None))
        else:
            answer = runner.client.openai_models(timeout=max(runner.remaining(), 5))
        data = (answer.get("data") if isinstance(answer, dict) else None) or []
        listed.extend(str(m.get("id")) for m in data if isinstance(m, dict))
        if not listed:
            raise SmokeFailure("/openai/v1/models lists no model")
        if model and model not in listed:
            raise SmokeFailure(
                f"/openai/v1/models lists {listed}, not {model!r}: clients sending model={model!r} will fail"
            )
        return "", None, f"serves {model or listed[0]}"

    return _timed(runner, "openai models", call), listed[0] if listed else ""


def _openai_chat(runner: Runner, model: str) -> CheckResult:
    named: list[str | None] = []

    def call() -> tuple[str, int | None, str]:
        body = {"model": model, "messages": _messages(runner.settings), "max_tokens": runner.settings.max_tokens}
        if runner.client.local:
            completion = _first(_openai_job(runner, "/v1/chat/completions", body))
        else:
            completion = runner.client.openai_chat(body, timeout=max(runner.remaining(), 5))
        named.append(releases.from_openai(completion))
        if isinstance(completion, dict) and completion.get("error"):
            raise SmokeFailure(f"the worker returned an error: {output_error(completion)}")
        answer, tokens = _openai_answer(completion)
        return answer, tokens, "ok"

    return _timed(runner, "openai chat completion", call, named)


def _openai_stream(runner: Runner, model: str) -> CheckResult:
    named: list[str | None] = []

    def call() -> tuple[str, int | None, str]:
        body = {"model": model, "messages": _messages(runner.settings), "max_tokens": runner.settings.max_tokens}
        if runner.client.local:
            # The worker yields the event stream as text pieces: only their concatenation is SSE.
            pieces = _openai_job(runner, "/v1/chat/completions", {**body, "stream": True})
            if not all(isinstance(piece, str) for piece in pieces):
                raise SmokeFailure(f"a streamed answer should be text, got: {str(pieces)[:120]}")
            text = "".join(pieces)
            payloads = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        else:
            payloads = list(runner.client.openai_chat_stream(body, timeout=max(runner.remaining(), 5)))
        events = parse_sse_json(payloads)
        named.append(releases.from_stream(events))
        if not events or events[-1] != "[DONE]":
            raise SmokeFailure("the stream did not end with [DONE]")
        chunks = [e for e in events[:-1] if isinstance(e, dict)]
        failed = output_error(chunks)
        if failed is not None:  # vLLM reports an error during generation as the last event
            raise SmokeFailure(f"the stream ended with an error: {failed}")
        if not chunks:
            raise SmokeFailure("the stream carried no chunks")
        text = "".join(
            str((c.get("choices") or [{}])[0].get("delta", {}).get("content") or "") for c in chunks if c.get("choices")
        )
        if not text.strip():
            raise SmokeFailure("the streamed answer is empty")
        tokens = next((_usage_tokens(c.get("usage")) for c in reversed(chunks) if c.get("usage")), None)
        return text, tokens, f"{len(chunks)} chunks"

    return _timed(runner, "openai streamed completion", call, named)


# --- reports ------------------------------------------------------------------------------


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


# --- what to test -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    base_url: str
    local: bool
    label: str
    #: Whether the RunPod API key may go to ``base_url`` (see :func:`key_allowed`).
    send_key: bool = True
    #: Why not, when it may not.
    key_note: str = ""


#: RunPod's own domains: the serverless API (api.runpod.ai, <id>.api.runpod.ai for load-balancing
#: endpoints) and the control plane (api.runpod.io). The key goes there over https only.
RUNPOD_DOMAINS = ("runpod.ai", "runpod.io")


def _under(url: str, base: str) -> bool:
    """``url`` is ``base`` or below it: same scheme, host and port, and a path inside base's path."""
    from urllib.parse import urlsplit

    u, b = urlsplit(url), urlsplit(base)
    try:
        same_port = u.port == b.port
    except ValueError:
        return False
    if (
        not same_port
        or u.scheme.lower() != b.scheme.lower()
        or (u.hostname or "").lower() != (b.hostname or "").lower()
    ):
        return False
    if u.username is not None or u.password is not None:
        return False
    base_path = b.path.rstrip("/")
    return u.path.rstrip("/") == base_path or u.path.startswith(base_path + "/")


def key_allowed(url: str, configured_base: str) -> tuple[bool, str]:
    """May the RunPod API key be sent to ``url``? (True, "") or (False, why not).

    Yes for RunPod's own hosts over https (``RUNPOD_DOMAINS`` and their subdomains, default
    port) and for anything under the endpoint base rpdeploy is configured with
    (``runpod.endpoint_url`` / ``RUNPOD_ENDPOINT_BASE_URL``: the emulator, a proxy you chose).
    Anything else gets no key unless ``smoke-test --send-key`` says so: a typo'd or hostile
    URL must not collect the account's key, and plain http would show it to the network.
    """
    from urllib.parse import urlsplit

    if _under(url, configured_base):
        return True, ""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = -1
    runpod = any(host == domain or host.endswith("." + domain) for domain in RUNPOD_DOMAINS)
    if runpod and parts.scheme.lower() == "https" and port in (None, 443) and parts.username is None:
        return True, ""
    if runpod:
        return False, f"{url} is not https on RunPod's default port"
    return False, f"{host or url} is neither RunPod's API nor the configured endpoint base ({configured_base})"


def resolve_target(config: Any, *, endpoint_id: str | None, url: str | None, local: bool | None = None) -> Target:
    """The endpoint to test: --url, --endpoint-id, the ledger's endpoint, or the one named in deploy.yaml."""
    from rpdeploy.runpod.invoke import detect_local

    if url:
        is_local = detect_local(url) if local is None else local
        if is_local:
            return Target(url.rstrip("/"), True, url, send_key=False, key_note="a local worker needs no key")
        if config is not None:
            configured = config.runpod.resolved_endpoint_url()
        else:
            from rpdeploy.config import DEFAULT_ENDPOINT_URL

            configured = (os.environ.get("RUNPOD_ENDPOINT_BASE_URL") or DEFAULT_ENDPOINT_URL).rstrip("/")
        allowed, why = key_allowed(url, configured)
        return Target(url.rstrip("/"), False, url, send_key=allowed, key_note=why)
    if config is None:
        raise ApiError("no endpoint to test", hint="pass --endpoint-id ID or --url URL, or run it next to deploy.yaml")
    if not endpoint_id:
        from rpdeploy.deploy.ledger import Ledger

        endpoint_id = Ledger.load(config.state_dir).output("endpoint", "endpoint_id")
    if not endpoint_id:
        from rpdeploy.runpod.deployment import connect, find_endpoint

        with connect(config) as cp:
            found = find_endpoint(cp.list_endpoints(), config.endpoint.name)
        if found is None:
            raise ApiError(
                f"no endpoint named {config.endpoint.name!r} on RunPod",
                hint="deploy it first (`rpdeploy deploy` or `rpdeploy endpoint create`), or pass --endpoint-id",
            )
        endpoint_id = found.id
    base = f"{config.runpod.resolved_endpoint_url()}/{endpoint_id}"
    return Target(base, False, str(endpoint_id))
