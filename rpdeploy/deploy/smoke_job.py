"""Running one smoke-test job to its end: submit, wait, judge; cancel it when time runs out.

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

Owns the :class:`Runner` (the client, the clock and the deadline of one smoke run), the
:class:`CheckResult` of one check, and reading a failed job's error.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rpdeploy.deploy.smoke_release import ReleaseCheck, ReleaseReport, ReleaseTracker
from rpdeploy.deploy.smoke_report import describe_health, diagnose
from rpdeploy.errors import ApiError, RpdeployError
from rpdeploy.output import Reporter
from rpdeploy.runpod import release as releases
from rpdeploy.runpod.invoke import HOLD_MARGIN, TERMINAL, InvokeClient, NoAnswerError, RateLimitedError

if TYPE_CHECKING:
    from rpdeploy.deploy.smoke import SmokeSettings

PREVIEW_CHARS = 80


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


@dataclass
class _Watch:
    """What /health last said, kept by a background thread while a job waits."""

    interval: float
    text: str = ""
    health: dict[str, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)


class SmokeFailure(RpdeployError):
    """Internal: a check failed (caught per check; the command turns failures into exit 10)."""


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
        self.releases = ReleaseTracker(
            release,
            settings,
            reporter,
            clock=clock,
            sleep=sleep,
            started=self.started,
            deadline=self.deadline,
            health=self._health_now,
        )

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

    # --- which release answered (smoke_release.ReleaseTracker) ----------------------------

    def wait_rollout(self) -> None:
        self.releases.wait_rollout()

    def attributed(self, name: str, attempt: Callable[[], CheckResult]) -> CheckResult:
        return self.releases.attributed(name, attempt)

    def report(self) -> ReleaseReport | None:
        return self.releases.report()
