"""`rpdeploy deploy`: the eleven-step procedure as resumable stages.

Each stage declares its inputs; their fingerprint goes into the ledger with the stage's
outputs. A stage that is done and whose inputs did not change is skipped (RunPod stages
first check that what they made still exists), so a re-run does nothing, and a run after a
failure starts again at the failed stage. Stages read earlier stages' outputs from the
context, never recompute them. A failure is raised as ``StageError`` naming the stage,
after the ledger records it.

RunPod stays the source of truth: the template and endpoint are always found by name, so
a lost ledger, a crash between "create" and "record", or a SIGKILL at any point converges
on the same objects instead of duplicating them.

The stages live in ``stages_build`` (1-4), ``stages_runpod`` (5-8) and ``stages_cutover`` (11a,
9, 10, 11b), what they share in ``context``; this module owns their order, the runner and what
``rpdeploy deploy`` returns, and re-exports the names other modules import from here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpdeploy.deploy.context import (
    RELEASE_KEY,
    Context,
    DeployOptions,
    Stage,
    digest,
    fingerprint,
    gpu_inputs,
)
from rpdeploy.deploy.ledger import Ledger, StageRecord
from rpdeploy.deploy.lock import DeployLock
from rpdeploy.deploy.stages_build import BUILD_STAGES
from rpdeploy.deploy.stages_cutover import CUTOVER_STAGES
from rpdeploy.deploy.stages_runpod import RUNPOD_STAGES
from rpdeploy.errors import ConfigError, RpdeployError, StageError
from rpdeploy.methods import Method
from rpdeploy.output import NullReporter, Reporter

if TYPE_CHECKING:
    from rpdeploy.config import Config

__all__ = [
    "PROVES",
    "RELEASE_KEY",
    "STAGES",
    "STAGE_NAMES",
    "STEPS",
    "Context",
    "DeployOptions",
    "DeployResult",
    "Stage",
    "StageOutcome",
    "digest",
    "fingerprint",
    "method_stages",
    "run_deploy",
]

STAGES: tuple[Stage, ...] = (*BUILD_STAGES, *RUNPOD_STAGES, *CUTOVER_STAGES)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
#: The seed's step number of each stage (the order they run in is STAGES').
STEPS = {
    stage.name: stage.step or str(1 + sum(1 for earlier in STAGES[:index] if not earlier.step))
    for index, stage in enumerate(STAGES)
}
#: What each stage proves when it is done (plan, status, README).
PROVES = {
    "handler": "the worker's code files exist (yours kept when edited)",
    "dockerfile": "the Dockerfile and build files exist",
    "build": "the image builds from the worker folder",
    "push": "the registry holds the image, by digest",
    "account": "the API key works; the GPU pool and registry login are set",
    "template": "RunPod holds the template of this release (image + env)",
    "gpu": "the model fits the GPU; what it costs",
    "endpoint": "the endpoint exists with these settings",
    "smoke-test": "the new release answers (job and OpenAI route), not an old worker",
    "backend-env": "the backend's env points at the endpoint (previous file backed up)",
    "backend-restart": "the backend restarted healthy on that env",
    "integration-test": "the backend reaches the model with its new env (else only the endpoint was tested)",
}


# --- the runner ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StageOutcome:
    name: str
    status: str  # done | skipped | not-applicable | not-run (after --only's stage, never ran) | failed
    seconds: float
    detail: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeployResult:
    stages: tuple[StageOutcome, ...]
    seconds: float
    endpoint_id: str | None
    urls: dict[str, Any]
    smoke: dict[str, Any] | None
    integration: dict[str, Any] | None = None

    @property
    def ran(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages if s.status == "done")


def _selected(options: DeployOptions, applicable: list[Stage]) -> set[str]:
    names = [s.name for s in applicable]
    for flag, value in (("--from", options.from_stage), ("--only", options.only)):
        if value is not None and value not in STAGE_NAMES:
            raise ConfigError(f"{flag} {value}: no such stage; stages are {', '.join(STAGE_NAMES)}")
        if value is not None and value not in names:
            raise ConfigError(f"{flag} {value}: that stage does not apply to this deploy.yaml (method/backend)")
    if options.only:
        return {options.only}
    if options.from_stage:
        return set(names[names.index(options.from_stage) :])
    return set(names)


def run_deploy(
    config: Config,
    options: DeployOptions | None = None,
    *,
    reporter: Reporter | None = None,
    environ: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> DeployResult:
    """Run the stages that apply to ``config``; resume and skip using the ledger."""
    options = options or DeployOptions()
    reporter = reporter or NullReporter()
    environ = os.environ if environ is None else environ
    folder = state_dir or config.state_dir
    started = time.monotonic()
    applicable = [s for s in STAGES if s.applies(config)]
    selected = _selected(options, applicable)
    with DeployLock(folder, command="deploy"):
        ledger = Ledger.load(folder)
        ctx = Context(config, reporter, ledger, options, environ)
        ctx.owner()  # what the ledger says this deployment made, before stages overwrite their records
        if config.image is not None:
            from rpdeploy.build.pipeline import refuse_placeholder

            refuse_placeholder(config.image)
        if not options.skip_fit_check:
            _fit_preflight(ctx)
        _token_preflight(ctx)
        outcomes: list[StageOutcome] = []
        try:
            with reporter.stage_board([s.name for s in STAGES], steps=STEPS) as board:
                for stage in STAGES:
                    if stage not in applicable:
                        board.set(stage.name, "skipped", detail="not needed for this method/config")
                        outcomes.append(StageOutcome(stage.name, "not-applicable", 0.0))
                        continue
                    outcomes.append(_run_stage(ctx, stage, stage.name in selected, board))
        finally:
            ctx.close()
        endpoint = ctx.outputs.get("endpoint", {})
        if outcomes and all(o.status in ("done", "skipped", "not-applicable") for o in outcomes):
            _remember(ledger, ctx, ran={o.name for o in outcomes if o.status == "done"})
        ledger.save()
    return DeployResult(
        stages=tuple(outcomes),
        seconds=time.monotonic() - started,
        endpoint_id=endpoint.get("endpoint_id"),
        urls=endpoint.get("urls", {}),
        smoke=ctx.outputs.get("smoke-test"),
        integration=ctx.outputs.get("integration-test"),
    )


def _run_stage(ctx: Context, stage: Stage, selected: bool, board: Any) -> StageOutcome:
    record = ctx.ledger.stages.get(stage.name)
    ctx.previous[stage.name] = record
    if not selected:
        only = ctx.options.only
        if (record is None or record.status != "done") and only is not None and _runs_after(stage.name, only):
            # After the one stage --only picked: nothing builds on it here, so it simply does not run.
            board.set(stage.name, "skipped", detail="not selected (--only)")
            return StageOutcome(stage.name, "not-run", 0.0, "not selected")
        if record is None or record.status != "done":
            picked = f"--only {only}" if only is not None else f"--from {ctx.options.from_stage}"
            raise StageError(
                stage.name,
                ConfigError(
                    f"stage {stage.name!r} has not run yet, and {picked} needs what it makes",
                    hint=f"run `rpdeploy deploy` (or `rpdeploy deploy --from {stage.name}`) first",
                ),
            )
        ctx.outputs[stage.name] = record.outputs
        board.set(stage.name, "skipped", detail="not selected (--from/--only)")
        return StageOutcome(stage.name, "skipped", 0.0, "not selected", record.outputs)

    try:
        inputs = stage.inputs(ctx)
    except RpdeployError as exc:
        _fail(ctx, stage, "", exc, 0.0)
        board.set(stage.name, "failed", detail=exc.message)
        ctx.reporter.event("stage", stage=stage.name, status="failed", seconds=0.0, error=exc.message)
        raise StageError(stage.name, exc) from exc
    print_ = fingerprint(inputs)
    if (
        record is not None
        and record.status == "done"
        and record.fingerprint == print_
        and not ctx.options.force
        and (stage.still_valid is None or _safely(stage.still_valid, ctx, record.outputs))
    ):
        ctx.outputs[stage.name] = record.outputs
        board.set(stage.name, "skipped", detail="unchanged")
        ctx.reporter.event("stage", stage=stage.name, status="skipped", reason="unchanged")
        return StageOutcome(stage.name, "skipped", 0.0, "unchanged", record.outputs)

    board.set(stage.name, "running", detail=stage.title)
    ctx.reporter.event("stage", stage=stage.name, status="running")
    began = time.monotonic()
    ctx.ledger.stages[stage.name] = StageRecord("running", print_, started_at=time.time())
    ctx.ledger.save()
    try:
        outputs = stage.run(ctx)
    except RpdeployError as exc:
        seconds = time.monotonic() - began
        _fail(ctx, stage, print_, exc, seconds)
        board.set(stage.name, "failed", detail=exc.message, seconds=seconds)
        ctx.reporter.event("stage", stage=stage.name, status="failed", seconds=round(seconds, 3), error=exc.message)
        raise StageError(stage.name, exc) from exc
    except KeyboardInterrupt:
        seconds = time.monotonic() - began
        _fail(ctx, stage, print_, RpdeployError("interrupted"), seconds)
        # The board must not go on saying "running" above the "Interrupted" line.
        board.set(stage.name, "interrupted", detail="Ctrl-C; run deploy again to resume here", seconds=seconds)
        ctx.reporter.event("stage", stage=stage.name, status="interrupted", seconds=round(seconds, 3))
        raise
    seconds = time.monotonic() - began
    ctx.outputs[stage.name] = outputs
    if stage.settle is not None:
        print_ = fingerprint(stage.settle(ctx, inputs, outputs))
    ctx.ledger.stages[stage.name] = StageRecord(
        "done", print_, outputs, started_at=time.time() - seconds, finished_at=time.time(), seconds=round(seconds, 3)
    )
    ctx.ledger.save()
    board.set(stage.name, "done", seconds=seconds)
    ctx.reporter.event("stage", stage=stage.name, status="done", seconds=round(seconds, 3), outputs=outputs)
    return StageOutcome(stage.name, "done", seconds, "", outputs)


def _runs_after(name: str, other: str) -> bool:
    return STAGE_NAMES.index(name) > STAGE_NAMES.index(other)


def _safely(check: Callable[[Context, dict[str, Any]], bool], ctx: Context, outputs: dict[str, Any]) -> bool:
    """A verification read that fails means "run the stage" (which will report the real error)."""
    try:
        return check(ctx, outputs)
    except RpdeployError:
        return False


def _fail(ctx: Context, stage: Stage, print_: str, exc: RpdeployError, seconds: float) -> None:
    ctx.ledger.stages[stage.name] = StageRecord(
        "failed", print_, {}, finished_at=time.time(), seconds=round(seconds, 3), error=exc.message
    )
    ctx.ledger.save()


def _fit_preflight(ctx: Context) -> None:
    """A model that cannot fit stops the deploy before anything is built or created.

    Skipped when stage 7 already checked this very model and endpoint configuration.
    """
    from rpdeploy.preflight.check import DoesNotFitError

    record = ctx.ledger.stages.get("gpu")
    if record is not None and record.status == "done" and record.fingerprint == fingerprint(gpu_inputs(ctx)):
        return
    result = ctx.fit_check()
    if result.blocking:
        error = DoesNotFitError(result)
        error.hint = f"{error.hint}; or deploy anyway with --skip-fit-check"
        raise StageError("gpu", error)


def _token_preflight(ctx: Context) -> None:
    """A gated model without model.hf_token stops the deploy before anything is built or created:
    its workers would fail to download it (401) long after the endpoint was made."""
    from rpdeploy.errors import PreflightError
    from rpdeploy.preflight.hub import token_problem

    problem = token_problem(ctx.config, environ=ctx.environ)
    if problem is not None:
        raise PreflightError(problem, hint="set model.hf_token in deploy.yaml; `rpdeploy doctor` checks it")


def _remember(ledger: Ledger, ctx: Context, *, ran: set[str]) -> None:
    """Append this deployment to the history `rpdeploy rollback` walks back through.

    Its ``backend_backup`` is the backup this very run made of the env before changing it (what
    rolling this deployment back restores), never one a skipped stage's old record names: that
    one holds an older env, and restoring it would take the backend two steps back.
    """
    entry = {
        "at": time.time(),
        "method": ctx.config.method.value,
        "image": ctx.outputs.get("template", {}).get("image"),
        "template_id": ctx.outputs.get("template", {}).get("template_id"),
        "endpoint_id": ctx.outputs.get("endpoint", {}).get("endpoint_id"),
        "backend_backup": ctx.outputs.get("backend-env", {}).get("backup") if "backend-env" in ran else None,
    }
    if not ledger.history or {k: v for k, v in ledger.history[-1].items() if k != "at"} != {
        k: v for k, v in entry.items() if k != "at"
    }:
        ledger.history.append(entry)
    # deploy.yaml is what runs again: a rollback `status` mentioned is over.
    ledger.extra.pop("rolled_back", None)
    # What the endpoint runs now, for `plan` to tell a switch of method.
    ledger.extra["method"] = ctx.config.method.value


def method_stages(method: Method, *, backend: bool) -> list[str]:
    """The stages that run for a method, in the order they run (for docs and `status`)."""
    skip = set()
    if not method.builds_image:
        skip |= {"handler", "dockerfile", "build", "push"}
    if not backend:
        skip |= {"backend-env", "backend-restart", "integration-test"}
    return [name for name in STAGE_NAMES if name not in skip]
