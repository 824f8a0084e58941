"""`rpdeploy logs`."""

from __future__ import annotations

from typing import Annotated

import typer

from rpdeploy.commands._common import DEFAULT_CONFIG, ConfigOption, load, reporter
from rpdeploy.commands._target import EmulatorOption, target


def logs(
    config: ConfigOption = DEFAULT_CONFIG,
    worker: Annotated[str | None, typer.Option("--worker", help="Worker id (default: the newest worker).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines as they come.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Lines since an RFC 3339 time, or a duration back (10m, 2h).")
    ] = None,
    tail: Annotated[
        int, typer.Option("--tail", min=0, max=5000, help="How many past lines (RunPod: at most 5000).")
    ] = 100,
    endpoint_id: Annotated[
        str | None,
        typer.Option(
            "--endpoint-id",
            help="Endpoint [default: the one this project deployed: the ledger's, else the endpoint named in "
            "deploy.yaml].",
            show_default=False,
        ),
    ] = None,
    emulator: EmulatorOption = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per line: ts, source, line, worker.")
    ] = False,
) -> None:
    """Show a worker's logs: its cold start, its jobs, what its container printed.

    Reads RunPod's REST API v2 (the worker list and its log stream) with the same API key,
    also under runpod.api: graphql. RunPod keeps logs only for active workers: once a worker
    has stopped, its logs are gone. Secret values are masked.

    The endpoint is the one this project deployed (the ledger's, else the one deploy.yaml
    names), --endpoint-id another one; --emulator reads the emulator sandbox's
    (`rpdeploy deploy --emulator`), whose workers, like idle RunPod workers, are gone once
    the command that started them has ended.

    Examples:

    \b
      rpdeploy logs
      rpdeploy logs --follow
      rpdeploy logs --worker 8g3n5t6r --since 10m --json
      rpdeploy logs --endpoint-id abc123def456gh
    """
    from rpdeploy.deploy.project import deployed_endpoint
    from rpdeploy.errors import ApiError
    from rpdeploy.output import print_json, printable
    from rpdeploy.runpod.deployment import connect
    from rpdeploy.runpod.fleet import format_line, logs, parse_since, pick_worker

    loaded = load(config)
    out = reporter()
    since_value = parse_since(since) if since else None
    with target(loaded, emulator, quiet=True) as (cfg, environ, state_dir):
        if endpoint_id is None:
            found = deployed_endpoint(cfg, state_dir=state_dir, environ=environ)
            if found.source != "ledger":
                out.info(f"Using {found.describe()}")
            endpoint_id = found.endpoint_id
        with connect(cfg, environ, reporter=out) as cp:
            try:
                chosen = pick_worker(cp, endpoint_id, worker)
            except ApiError as exc:
                if not emulator or worker is not None:
                    raise
                # The sandbox keeps the account, not the fleet: its workers ended with their command.
                raise ApiError(
                    exc.message,
                    hint="the sandbox's workers end with the command that started them (as idle RunPod workers "
                    "scale to zero); a failing `rpdeploy smoke-test --emulator` shows its worker's last lines",
                ) from None
            if not chosen.chosen:
                out.info(f"Logs of worker {chosen.worker_id} (the newest of endpoint {chosen.endpoint_id})")
            for line in logs(cp, chosen, tail=tail, since=since_value, follow=follow):
                if json_output:
                    print_json(
                        {"ts": line.ts, "source": line.source, "line": line.line, "worker": chosen.worker_id},
                        compact=True,
                    )
                else:
                    typer.echo(printable(format_line(line), newlines=False))
