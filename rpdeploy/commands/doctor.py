"""`rpdeploy doctor`."""

from __future__ import annotations

import typer

from rpdeploy.commands._common import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    VerboseOption,
    load,
    reporter,
    to_jsonable,
)
from rpdeploy.errors import PreflightError
from rpdeploy.output import print_json, print_result


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
    from rpdeploy.deploy.doctor import format_doctor, run_doctor

    cfg = load(config)
    result = run_doctor(cfg, reporter=reporter(verbose=verbose))
    failed = [c.name for c in result.checks if c.status == "failed"]
    error = PreflightError(f"doctor: {', '.join(failed)} failed", hint="see the fix under each failed check")
    if json_output:
        # One document either way: the checks, and the error when one failed.
        document = {"ok": result.ok, "healthy": result.ok, "checks": to_jsonable(result.checks)}
        if not result.ok:
            document["error"] = error.to_dict()
        print_json(document)
        if not result.ok:
            raise typer.Exit(error.exit_code)
        return
    print_result(format_doctor(result), styles={"FAIL": "red", "ok": "green", "Some checks failed": "red"})
    if not result.ok:
        raise error
