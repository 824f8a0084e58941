"""The release check of the smoke test: hearing from the release a deploy just made.

Which release answered (:class:`ReleaseCheck`): right after an update, RunPod's workers of the
previous release keep answering until new ones are ready (rpdeploy/runpod/release.py). Given the
release a deploy just made, the check accepts only answers of that release: an answer that
names another release is refused and asked again, with progress, while the old workers drain;
an answer that names none counts only once the control plane shows no worker of an older
version (rpdeploy/runpod/rollout.py). The report says which of the two proved the release, or
that neither could, and how long the old workers took to go.

Owns :class:`ReleaseCheck` (the expected release, and how to read the rollout), the
:class:`ReleaseTracker` a smoke run keeps (refusing old workers' answers and asking again,
waiting while old workers drain) and the :class:`ReleaseReport` it ends with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rpdeploy.errors import ApiError
from rpdeploy.output import Reporter
from rpdeploy.runpod import release as releases

if TYPE_CHECKING:
    from rpdeploy.deploy.smoke import SmokeSettings
    from rpdeploy.deploy.smoke_job import CheckResult
    from rpdeploy.runpod.rollout import Rollout


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


class ReleaseTracker:
    """What the answers of one smoke run said about their release (see the module docstring)."""

    def __init__(
        self,
        release: ReleaseCheck | None,
        settings: SmokeSettings,
        reporter: Reporter,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        started: float,
        deadline: float,
        health: Callable[[], dict[str, Any] | None],
    ) -> None:
        self.release = release
        self.settings = settings
        self.reporter = reporter
        self.clock = clock
        self.sleep = sleep
        self.started = started
        self.deadline = deadline
        self._health_now = health
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
