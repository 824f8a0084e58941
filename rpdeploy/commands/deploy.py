"""`rpdeploy deploy`, `plan`, `status`, `destroy` and `rollback`."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated

import typer

from rpdeploy.commands._common import (
    DEFAULT_CONFIG,
    AdoptOption,
    ConfigOption,
    JsonOption,
    VerboseOption,
    WaitOption,
    YesOption,
    emit,
    load,
    reporter,
    to_jsonable,
)
from rpdeploy.commands._target import EmulatorOption, RealBackendOption, target
from rpdeploy.errors import EXIT_CHANGES_PENDING, MissingValueError, StageError
from rpdeploy.output import can_prompt, print_json, printable

if TYPE_CHECKING:
    from rpdeploy.config import Config
    from rpdeploy.deploy.stages import DeployResult


def _stage_names(incomplete: str) -> list[str]:
    from rpdeploy.deploy.stages import STAGE_NAMES

    return [name for name in STAGE_NAMES if name.startswith(incomplete)]


def _confirm_cost(config: Config, yes: bool) -> None:
    if config.endpoint.workers_min == 0 or yes:
        return
    from rpdeploy.preflight.cost import estimate_cost, format_money

    # The price is in the question: a person answers knowing the bill (built-in table, no network).
    cost = estimate_cost(config)
    count = config.endpoint.workers_min
    bill = (
        f"about {format_money(cost.floor_per_month)}/month ({cost.price_source})"
        if cost.floor_per_month is not None
        else "at a price rpdeploy does not know for this GPU"
    )
    question = (
        f"endpoint.workers_min is {count}: {count} worker(s) billed around the clock, even with no traffic, "
        f"{bill}. Deploy anyway?"
    )
    if not can_prompt():
        raise MissingValueError("confirmation of always-on workers (workers_min > 0)", flag="--yes")
    typer.confirm(question, abort=True)


def deploy(
    config: ConfigOption = DEFAULT_CONFIG,
    from_stage: Annotated[
        str | None,
        typer.Option("--from", help="Start at this stage (earlier ones must be done).", autocompletion=_stage_names),
    ] = None,
    only: Annotated[
        str | None, typer.Option("--only", help="Run just this stage.", autocompletion=_stage_names)
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Run stages even when nothing changed.")] = False,
    skip_fit_check: Annotated[
        bool, typer.Option("--skip-fit-check", help="Deploy even if the model does not seem to fit the GPU.")
    ] = False,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Image tag (methods 2/3) instead of the git/content one.")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild the image from scratch.")] = False,
    adopt: AdoptOption = False,
    emulator: EmulatorOption = False,
    real_backend: RealBackendOption = False,
    yes: YesOption = False,
    verbose: VerboseOption = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Stream NDJSON events on stdout (one per stage change), then a result.")
    ] = False,
) -> None:
    """Deploy: build, push, create the endpoint, check the new release, wire the backend, test through it.

    Runs the stages of deploy.yaml's method (worker-vllm skips the four image stages; the
    backend stages run only with a backend: section). Verify, then cut over: the endpoint
    check (smoke-test) runs before the backend is touched and accepts only answers of the
    release this deploy made; integration-test then calls the backend's own API. A stage
    that is done and unchanged is skipped, so a re-run does nothing and a run after a
    failure resumes where it stopped. Stages, in order: handler, dockerfile, build, push,
    account, template, gpu, endpoint, smoke-test, backend-env, backend-restart,
    integration-test.

    Examples:

    \b
      rpdeploy deploy
      rpdeploy deploy --emulator              # try it with no RunPod account
      rpdeploy deploy --json > events.ndjson  # in CI
      rpdeploy deploy --from endpoint --force
    """
    from rpdeploy.deploy.stages import DeployOptions, run_deploy

    cfg = load(config)
    _confirm_cost(cfg, yes)
    options = DeployOptions(
        force=force,
        from_stage=from_stage,
        only=only,
        skip_fit_check=skip_fit_check,
        tag=tag,
        no_cache=no_cache,
        adopt=adopt,
    )
    out = reporter(verbose=verbose, events=json_output)
    with target(cfg, emulator, real_backend=real_backend) as (effective, environ, state_dir):
        try:
            result = run_deploy(effective, options, reporter=out, environ=environ, state_dir=state_dir)
        except StageError as exc:
            _summary(cfg, None, exc)
            raise
    _summary(cfg, result, None)
    if json_output:
        out.event("result", ok=True, **to_jsonable(result))
        return
    lines = [f"Deployed {cfg.endpoint.name!r} in {result.seconds:.1f}s"]
    lines.append("  stages run: " + (", ".join(result.ran) or "none (everything was up to date)"))
    if result.endpoint_id:
        lines.append(f"  {'endpoint':<11} {result.endpoint_id}")
        for key in ("runsync", "health", "openai_base"):
            if result.urls.get(key):
                lines.append(f"  {key:<11} {result.urls[key]}")
    if "smoke-test" in result.ran and result.smoke and result.smoke.get("answer"):
        # Only this run's answer: a re-run that skipped the test has nothing new to show.
        lines.append(f"  {'answer':<11} {result.smoke['answer']!r}")
    if "smoke-test" in result.ran:
        lines += [f"  {line}" for line in (result.smoke or {}).get("release_report") or ()]
    integration = result.integration or {}
    if "integration-test" in result.ran and integration.get("tested") == "backend":
        lines.append(f"  through the backend: {integration.get('url')} ({integration.get('where')})")
        lines.append(f"    {integration.get('matched')}")
    elif "smoke-test" in result.ran or "integration-test" in result.ran:
        why = "backend.integration_test is not set" if integration else "there is no backend: section"
        lines.append(f"  only the endpoint was tested ({why})")
    emit(False, {}, "\n".join(lines))


def _summary(config: Config, result: DeployResult | None, error: StageError | None) -> None:
    """The GitHub Actions job summary (when running there)."""
    from rpdeploy.ci import markdown_table, md_block, md_code, write_step_summary

    name = md_code(config.endpoint.name)
    if error is not None:
        write_step_summary(f"### rpdeploy: deploy of {name} failed\n\n{md_block(str(error))}", None)
        return
    assert result is not None
    rows = [(s.name, s.status, f"{s.seconds:.1f}s" if s.status == "done" else "") for s in result.stages]
    parts = [f"### rpdeploy: deployed {name} in {result.seconds:.1f}s", ""]
    if result.endpoint_id:
        parts.append(f"Endpoint {md_code(result.endpoint_id)}")
        parts.append("")
    parts.append(markdown_table(["stage", "status", "time"], rows))
    if result.smoke and result.smoke.get("answer"):
        parts += ["", f"Smoke test answer: {md_code(str(result.smoke['answer']))}"]
    write_step_summary("\n".join(parts), None)


def plan(
    config: ConfigOption = DEFAULT_CONFIG,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode", help=f"Exit {EXIT_CHANGES_PENDING} when changes are pending (0 when none)."
        ),
    ] = False,
    emulator: EmulatorOption = False,
    real_backend: RealBackendOption = False,
    json_output: JsonOption = False,
) -> None:
    """Show what `rpdeploy deploy` would change, without changing anything.

    A switch of method (`rpdeploy init --method N`), image (would it be rebuilt and pushed),
    template and endpoint fields (old -> new), backend env keys (values masked), and the fit
    and cost preview.

    Examples:

    \b
      rpdeploy plan
      rpdeploy plan --json --detailed-exitcode   # exit 20 when changes are pending
    """
    from rpdeploy.deploy.planning import format_plan, make_plan

    cfg = load(config)
    with target(cfg, emulator, real_backend=real_backend) as (effective, environ, state_dir):
        result = make_plan(effective, reporter=reporter(), environ=environ, state_dir=state_dir)
    if json_output:
        print_json({"ok": True, **to_jsonable(result), "changes_pending": result.changes_pending})
    else:
        emit(False, {}, format_plan(result))
    if detailed_exitcode and result.changes_pending:
        raise typer.Exit(EXIT_CHANGES_PENDING)


def status(
    config: ConfigOption = DEFAULT_CONFIG, emulator: EmulatorOption = False, json_output: JsonOption = False
) -> None:
    """Show the ledger's stages, the endpoint's live workers and jobs, and the backend check.

    The endpoint is the one this project deployed. Before anything was deployed to RunPod
    from here, it shows the emulator sandbox of `rpdeploy deploy --emulator` (and says so);
    --emulator shows the sandbox in any case.

    Examples:

    \b
      rpdeploy status
      rpdeploy status --emulator   # after `rpdeploy deploy --emulator`
      rpdeploy status --json
    """
    from rpdeploy.commands._target import sandbox_dir
    from rpdeploy.deploy.ledger import Ledger
    from rpdeploy.deploy.planning import format_status, gather_status

    cfg = load(config)
    note = None
    if not emulator and not Ledger.load(cfg.state_dir).stages and Ledger.load(sandbox_dir(cfg)).stages:
        emulator = True
        note = "nothing deployed to RunPod from this project yet: this is the emulator sandbox (`deploy --emulator`)"
    with target(cfg, emulator, quiet=True) as (effective, environ, state_dir):
        result = gather_status(effective, reporter=reporter(), state_dir=state_dir, environ=environ)
    if note is not None:
        result = dataclasses.replace(result, notes=(note, *result.notes))
    document = {**to_jsonable(result), "target": "emulator" if emulator else "runpod"}
    heading = "Emulator sandbox (rpdeploy deploy --emulator)\n" if emulator else ""
    emit(json_output, document, heading + format_status(result))


def destroy(
    config: ConfigOption = DEFAULT_CONFIG,
    restore_backend: Annotated[
        bool, typer.Option("--restore-backend", help="Also put the backend's env back as it was before rpdeploy.")
    ] = False,
    adopt: AdoptOption = False,
    wait: WaitOption = 180.0,
    emulator: EmulatorOption = False,
    real_backend: RealBackendOption = False,
    yes: YesOption = False,
    json_output: JsonOption = False,
) -> None:
    """Delete the endpoint and its template (scaled to zero first); optionally restore the backend.

    RunPod holds a template for up to 2 minutes after its endpoint is deleted: destroy waits
    for it (--wait), and a destroy that was stopped or gave up finishes when run again. Only
    this deployment's endpoint and template are deleted (see --adopt). Asks for confirmation
    on a terminal; in CI pass --yes. Running it again is harmless.

    Examples:

    \b
      rpdeploy destroy
      rpdeploy destroy --yes --restore-backend
    """
    from rpdeploy.deploy.planning import destroy_deployment

    cfg = load(config)
    if not yes:
        if not can_prompt():
            raise MissingValueError("confirmation", flag="--yes")
        typer.confirm(printable(f"Delete endpoint {cfg.endpoint.name!r} and its template on RunPod?"), abort=True)
    with target(cfg, emulator, real_backend=real_backend) as (effective, environ, state_dir):
        result = destroy_deployment(
            effective,
            restore_backend=restore_backend,
            adopt=adopt,
            wait=wait,
            reporter=reporter(),
            environ=environ,
            state_dir=state_dir,
        )
    done = [f"  {op}" for op in result.done] or ["  nothing was left to delete"]
    emit(json_output, to_jsonable(result), "Destroyed:\n" + "\n".join(done))


def rollback(
    config: ConfigOption = DEFAULT_CONFIG,
    yes: YesOption = False,
    json_output: JsonOption = False,
) -> None:
    """Go back to the previous deployment: the endpoint runs the previous image again, and
    the backend gets its previous env back. One step.

    With no earlier deployment recorded there is nothing to do: it says so (exit 0) before
    asking anything.

    Examples:

    \b
      rpdeploy rollback
      rpdeploy rollback --yes --json
    """
    from rpdeploy.deploy.planning import RollbackResult, nothing_to_roll_back, rollback_deployment

    cfg = load(config)
    reason = nothing_to_roll_back(cfg)  # known before anything is asked
    if reason is not None:
        nothing = RollbackResult(None, None, False, None, nothing=reason)
        emit(json_output, to_jsonable(nothing), "\n".join(nothing.lines()))
        return
    if not yes:
        if not can_prompt():
            raise MissingValueError("confirmation", flag="--yes")
        typer.confirm("Roll the endpoint and the backend back to the previous deployment?", abort=True)
    result = rollback_deployment(cfg, reporter=reporter())
    emit(json_output, to_jsonable(result), "\n".join(result.lines()))
