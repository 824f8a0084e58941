"""`rpdeploy logs`."""

from __future__ import annotations

from typing import Annotated

import typer

from rpdeploy.commands._common import DEFAULT_CONFIG, ConfigOption, load, reporter


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
        str | None, typer.Option("--endpoint-id", help="Endpoint (default: the one this project deployed).")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per line: ts, source, line, worker.")
    ] = False,
) -> None:
    """Show a worker's logs: its cold start, its jobs, what its container printed.

    Reads RunPod's REST API v2 (the worker list and its log stream) with the same API key,
    also under runpod.api: graphql. RunPod keeps logs only for active workers: once a worker
    has stopped, its logs are gone. Secret values are masked.

    Examples:

    \b
      rpdeploy logs
      rpdeploy logs --follow
      rpdeploy logs --worker 8g3n5t6r --since 10m --json
    """
    from rpdeploy.output import print_json, printable
    from rpdeploy.runpod.deployment import connect
    from rpdeploy.runpod.fleet import endpoint_for_logs, format_line, logs, parse_since, pick_worker

    cfg = load(config)
    out = reporter()
    since_value = parse_since(since) if since else None
    target_endpoint = endpoint_id or endpoint_for_logs(cfg)
    with connect(cfg, reporter=out) as cp:
        target = pick_worker(cp, target_endpoint, worker)
        if not target.chosen:
            out.info(f"Logs of worker {target.worker_id} (the newest of endpoint {target.endpoint_id})")
        for line in logs(cp, target, tail=tail, since=since_value, follow=follow):
            if json_output:
                print_json(
                    {"ts": line.ts, "source": line.source, "line": line.line, "worker": target.worker_id},
                    compact=True,
                )
            else:
                typer.echo(printable(format_line(line), newlines=False))
