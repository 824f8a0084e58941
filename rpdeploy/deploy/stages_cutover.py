"""Deploy's cut-over: check the new release answers, then point the backend at it and test through it.

Owns the stages ``smoke-test`` (step 11's first half; it runs after 8 and gates 9 and 10),
``backend-env``, ``backend-restart`` and ``integration-test`` (step 11's second half), and the
roll-back of the backend's env when the integration test fails with the new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rpdeploy.deploy.context import Context, Stage, always, digest, has_backend
from rpdeploy.secrets import Secret

if TYPE_CHECKING:
    from rpdeploy.backend.integration import IntegrationResult
    from rpdeploy.deploy.smoke import ReleaseCheck

# 9, 10: backend env and restart.


def _backend_env_inputs(ctx: Context) -> dict[str, Any]:
    from rpdeploy.backend import observe

    backend = ctx.config.backend
    assert backend is not None
    return {
        # The request stage 11 sends does not change the env.
        "backend": backend.model_dump(mode="json", exclude={"integration_test"}),
        "endpoint_id": ctx.outputs.get("endpoint", {}).get("endpoint_id"),
        "endpoint_url": ctx.config.runpod.resolved_endpoint_url(ctx.environ),
        "key": digest(_backend_key(ctx)),
        # What is really on the host: an env file someone (or something) changed since the last
        # run makes the stage run again and put our values back, instead of "unchanged".
        "on_host": observe(ctx.config, reporter=ctx.reporter).fingerprint(),
    }


def _backend_key(ctx: Context) -> Secret:
    from rpdeploy.backend import backend_key

    return backend_key(ctx.config, ctx.environ)


def _backend_env_settle(ctx: Context, inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    return {**inputs, "on_host": outputs["on_host"]}


def _backend_env_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.backend import BackendValues, configure

    values = BackendValues.for_endpoint(ctx.config, ctx.outputs["endpoint"]["endpoint_id"], _backend_key(ctx))
    result = configure(ctx.config, values, reporter=ctx.reporter)
    # An earlier attempt that was killed (or failed) after writing the file leaves it as wanted
    # and the service still on its old env: "nothing to write" then does not mean "nothing to
    # load", and the restart stage must restart.
    previous = ctx.previous.get("backend-env")
    unfinished = previous is not None and previous.status != "done"
    if unfinished and not result.changed:
        ctx.reporter.info(f"{result.env_file} already holds these values; restarting in case the last run did not")
    assert result.on_host is not None
    return {
        "host": result.host,
        "mode": result.mode,
        "env_file": result.env_file,
        "backup": result.backup,
        "changed": result.changed or unfinished,
        "on_host": result.on_host.fingerprint(),
    }


def _backend_restart_inputs(ctx: Context) -> dict[str, Any]:
    backend = ctx.config.backend
    assert backend is not None
    return {"env": ctx.outputs.get("backend-env", {}), "restart": backend.restart_command, "health": backend.health_url}


def _backend_restart_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.backend import BackendRolledBackError, ConfigureResult, check, restart_or_rollback
    from rpdeploy.errors import BackendError

    env = ctx.outputs.get("backend-env", {})
    if not env.get("changed"):
        # Nothing new to load: check the service instead of restarting production for nothing.
        status = check(ctx.config, reporter=ctx.reporter)
        if not status.healthy:
            raise BackendError(
                f"{status.service} on {status.host} is not healthy "
                f"(state {status.state}, health {status.health_status})",
                hint="its env already points at the endpoint; see `rpdeploy backend check` and the service's journal",
            )
        return {"restarted": False, "healthy": True}
    configured = ConfigureResult(
        host=str(env.get("host", "")),
        mode=str(env.get("mode", "")),
        env_file=str(env["env_file"]),
        changed=True,
        dry_run=False,
        keys=(),
        diff="",
        backup=env.get("backup"),
    )
    try:
        result = restart_or_rollback(ctx.config, configured, reporter=ctx.reporter)
    except BackendRolledBackError as exc:
        if exc.rollback is not None:
            # The previous env file is back on the host: the env stage's record no longer says
            # what is there, and a re-run that skipped it would restart onto the old endpoint.
            stale = ctx.ledger.stages.get("backend-env")
            if stale is not None:
                stale.status = "failed"
                stale.error = "rolled back by backend-restart"
        raise
    return {"restarted": True, "healthy": result.healthy, "seconds": round(result.seconds, 3)}


# 11, first half (it runs after 8, before 9): the endpoint check. Verify, then cut over: the
# backend is pointed at the endpoint only once the release this deploy made has answered.


def _sent(ctx: Context, stage: str) -> str | None:
    """What a RunPod stage sent (or found already there): its record's input fingerprint."""
    record = ctx.ledger.stages.get(stage)
    return record.fingerprint if record is not None and record.status == "done" else None


def _smoke_inputs(ctx: Context) -> dict[str, Any]:
    # The release and what was sent to RunPod, not which operations ran: any change that reaches
    # RunPod (the template's env, workers_max...) re-tests, and a re-run that sent nothing does not.
    return {
        "endpoint_id": ctx.outputs.get("endpoint", {}).get("endpoint_id"),
        "release": ctx.outputs.get("template", {}).get("release"),
        "template": _sent(ctx, "template"),
        "endpoint": _sent(ctx, "endpoint"),
        "settings": ctx.config.smoke_test.model_dump(mode="json"),
        "endpoint_url": ctx.config.runpod.resolved_endpoint_url(ctx.environ),
    }


def _release_check(ctx: Context, endpoint_id: str) -> ReleaseCheck | None:
    from rpdeploy.deploy.smoke import release_check

    expected = ctx.outputs.get("template", {}).get("release")
    if not expected:
        return None
    cp = ctx.cp()
    return release_check(ctx.config, str(expected), lambda: cp.rollout(endpoint_id))


def _smoke_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.deploy.smoke import SmokeSettings, run_smoke
    from rpdeploy.errors import SmokeTestError
    from rpdeploy.runpod.invoke import InvokeClient

    endpoint_id = ctx.outputs["endpoint"]["endpoint_id"]
    settings = ctx.config.smoke_test
    base = f"{ctx.config.runpod.resolved_endpoint_url(ctx.environ)}/{endpoint_id}"
    check = _release_check(ctx, endpoint_id)
    with InvokeClient(base, api_key=ctx.api_key()) as client:
        result = run_smoke(
            client,
            ctx.config.method,
            SmokeSettings(settings.prompt, settings.max_tokens, settings.timeout, settings.stream),
            model=ctx.config.model.public_name,
            target=endpoint_id,
            reporter=ctx.reporter,
            release=check,
        )
    if not result.passed:
        from rpdeploy.runpod.fleet import explain_failure

        failed = next(c for c in result.checks if not c.passed)
        which = f"release {check.expected}" if check is not None else f"endpoint {endpoint_id}"
        cutover = " The backend was not touched." if ctx.config.backend is not None else ""
        expected = check.expected if check is not None else None
        explain_failure(ctx.cp(), endpoint_id, failed.worker_id, failed.release, expected, ctx.reporter.warn)
        raise SmokeTestError(
            f"{which} failed the endpoint check: {failed.name}: {failed.message.rstrip('.')}.{cutover}",
            hint="`rpdeploy status` shows the endpoint's workers; fix the cause and run `rpdeploy deploy` again (it "
            "resumes here)",
        )
    outputs = result.summary()
    if result.release is not None:
        outputs["release_report"] = result.release.lines()
    return outputs


# 11, second half: through the backend, after 9 and 10.


def _integration_inputs(ctx: Context) -> dict[str, Any]:
    backend = ctx.config.backend
    assert backend is not None
    test = backend.integration_test
    return {
        "test": test.model_dump(mode="json") if test is not None else None,
        "headers": {
            name: digest(ctx.secret(value, f"backend.integration_test.headers.{name}"))
            for name, value in (test.headers.items() if test is not None else ())
            if not isinstance(value, str)
        },
        "smoke": _sent(ctx, "smoke-test"),
        "env": _sent(ctx, "backend-env"),
        "restart": ctx.outputs.get("backend-restart", {}),
    }


def _integration_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.backend.integration import run_integration_test
    from rpdeploy.errors import IntegrationTestError

    backend = ctx.config.backend
    assert backend is not None
    release = ctx.outputs.get("template", {}).get("release")
    if backend.integration_test is None:
        ctx.reporter.info(
            f"only the endpoint was tested (release {release}, stage smoke-test): set backend.integration_test in "
            "deploy.yaml to also test the backend's own API"
        )
        return {"tested": "endpoint only", "release": release}
    first = run_integration_test(ctx.config, reporter=ctx.reporter, environ=ctx.environ)
    if first.passed:
        ctx.reporter.success(f"integration test passed: {first.describe()}")
        return {"tested": "backend", "release": release, **_integration_outputs(first)}
    ctx.reporter.warn(f"integration test failed: {first.describe()}")
    env = ctx.outputs.get("backend-env", {})
    if not (env.get("changed") and env.get("backup")):
        raise IntegrationTestError(
            f"the integration test failed: {first.describe()}; the backend's env was not changed by this run, so "
            "there is nothing to roll back",
            hint="the backend cannot reach the model with its current env; see the service's logs on its host",
        )
    rolled, proven = _roll_back_backend(ctx, str(env["backup"]))
    if proven is not None and proven.passed:
        raise IntegrationTestError(
            f"the integration test failed with the new env: {first.describe()}. Rolled back: {rolled}; the same "
            f"test passes against the previous env ({proven.describe()})",
            hint="nothing is down: the backend runs its previous env again; find out why it could not reach the "
            "endpoint with the new one (its key, its URL), then run `rpdeploy deploy` again",
        )
    again = proven.describe() if proven is not None else "not run"
    raise IntegrationTestError(
        f"the integration test failed with the new env: {first.describe()}. Rolled back: {rolled}; but the test "
        f"fails against the previous env too ({again}): the backend may be down",
        hint=f"check {backend.service} on its host now (`rpdeploy backend check`, its journal)",
    )


def _integration_outputs(result: IntegrationResult) -> dict[str, Any]:
    return {"url": result.url, "where": result.where, "status": result.status, "seconds": result.seconds,
            "matched": result.message}  # fmt: skip


def _roll_back_backend(ctx: Context, backup: str) -> tuple[str, IntegrationResult | None]:
    """Restore this run's backup of the env and restart (as a failed restart does), then test again."""
    from rpdeploy.backend import rollback
    from rpdeploy.backend.integration import run_integration_test
    from rpdeploy.deploy.planning import _stamp_of
    from rpdeploy.errors import BackendError

    # The env file on the host is the previous one again: the records of 9 and 10 no longer say
    # what is there, and a re-run must write and restart again.
    for name in ("backend-env", "backend-restart"):
        record = ctx.ledger.stages.get(name)
        if record is not None:
            record.status = "failed"
            record.error = "rolled back by integration-test"
    ctx.ledger.save()
    try:
        restored = rollback(ctx.config, reporter=ctx.reporter, stamp=_stamp_of(backup))
    except BackendError as exc:
        return f"restoring the previous env failed: {exc.message}", None
    rolled = f"{restored.env_file} is its previous version again and the service was restarted"
    return rolled, run_integration_test(ctx.config, reporter=ctx.reporter, environ=ctx.environ)


CUTOVER_STAGES: tuple[Stage, ...] = (
    # Step 11 of the seed, first half: it runs here, before 9 and 10, and gates them.
    Stage("smoke-test", "check the new release answers", always, _smoke_inputs, _smoke_run, step="11a"),
    Stage(
        "backend-env",
        "set the backend's env",
        has_backend,
        _backend_env_inputs,
        _backend_env_run,
        settle=_backend_env_settle,
    ),
    Stage("backend-restart", "restart the backend", has_backend, _backend_restart_inputs, _backend_restart_run),
    Stage(
        "integration-test",
        "call the backend's API through to the model",
        has_backend,
        _integration_inputs,
        _integration_run,
        step="11b",
    ),
)
