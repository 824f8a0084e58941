"""`rpdeploy doctor`."""

from __future__ import annotations

from rpdeploy.commands._common import DEFAULT_CONFIG, ConfigOption, JsonOption, VerboseOption, emit, load, reporter
from rpdeploy.errors import PreflightError


def doctor(
    config: ConfigOption = DEFAULT_CONFIG, verbose: VerboseOption = False, json_output: JsonOption = False
) -> None:
    """Check everything a deploy needs, in one table, each failure with its fix.

    deploy.yaml valid; the RunPod API key accepted; the GPU type offered by RunPod; the
    docker engine reachable and the registry accepting your login (methods 2 and 3); the
    backend host reachable over SSH (with a backend: section). Exit 11 when a check fails.

    Examples:

    \b
      rpdeploy doctor
      rpdeploy doctor --json
    """
    from rpdeploy.doctor import format_doctor, run_doctor

    cfg = load(config)
    result = run_doctor(cfg, reporter=reporter(verbose=verbose))
    if json_output:
        emit(True, {"healthy": result.ok, "checks": result.checks})
    else:
        emit(False, {}, format_doctor(result))
    if not result.ok:
        failed = [c.name for c in result.checks if c.status == "failed"]
        raise PreflightError(f"doctor: {', '.join(failed)} failed", hint="see the fix under each failed check")
