"""``rpdeploy emulator``: serve the local RunPod look-alike until stopped."""

from __future__ import annotations

import os
import shlex
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Annotated, Any

import typer

from rpdeploy.commands._common import EMULATOR_WEIGHTS_SCALE, JsonOption


def emulator(
    host: Annotated[str, typer.Option(help="Address to listen on. Keep the loopback default unless you must.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int | None,
        typer.Option(
            help="Port to listen on; 0 picks a free one [default: 8765; with --background a free one].",
            min=0,
            max=65535,
            show_default=False,
        ),
    ] = None,
    api_key_env: Annotated[
        str,
        typer.Option(
            "--api-key-env",
            help="Environment variable holding the API key clients must send. Unset or empty: a throwaway "
            "key is generated and printed.",
        ),
    ] = "RUNPOD_API_KEY",
    cold_start: Annotated[float, typer.Option(help="Seconds a new worker takes to start.", min=0)] = 0.5,
    weights_scale: Annotated[
        float,
        typer.Option(
            help="Add the time a worker's model weights take (download, volume read, load) to its start, at this "
            "scale of RunPod's speed: 0.01 turns a 3-minute download into 2 s, a cached model into 0.1 s.",
            min=0,
        ),
    ] = EMULATOR_WEIGHTS_SCALE,
    execution_time: Annotated[float, typer.Option(help="Seconds a job runs on a worker.", min=0)] = 0.1,
    runsync_wait: Annotated[
        float,
        typer.Option(help="Seconds /runsync waits before handing back a running job (RunPod: 90).", min=0),
    ] = 90.0,
    concurrency: Annotated[int, typer.Option(help="Jobs one worker runs at once.", min=1)] = 4,
    template_delete_delay: Annotated[
        float,
        typer.Option(
            help="Seconds a template stays in use after its endpoint is deleted (RunPod docs: up to 120).", min=0
        ),
    ] = 120.0,
    background: Annotated[
        bool,
        typer.Option(
            "--background",
            help="Start it in the background, wait until it serves, print `export` lines for eval (with "
            "RPDEPLOY_EMULATOR_PID, to stop it) and return.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Run a local RunPod look-alike: the control plane (GraphQL and REST v2) and the serverless API.

    Prints the variables that point RunPod clients (rpdeploy, the runpod SDK) at it, then
    serves until Ctrl-C or SIGTERM. Inspect and fault it through /_emulator/state,
    /_emulator/requests and /_emulator/faults with the same key.

    With --background it starts in the background and returns once it serves, printing
    `export` lines for the shell to eval (RPDEPLOY_EMULATOR_PID among them). With --json the
    first line is one JSON object (api_url, endpoint_url, api_key when generated, and pid
    with --background) instead.

    Examples:

    \b
      eval "$(rpdeploy emulator --background)"
      rpdeploy deploy
      kill "$RPDEPLOY_EMULATOR_PID"
    \b
      rpdeploy emulator --port 8765 --cold-start 2    # in its own terminal; Ctrl-C stops it
    """
    from rpdeploy.emulator import Emulator, ids

    if background:
        _background(
            [
                "--host", host, "--port", str(port or 0), "--api-key-env", api_key_env,
                "--cold-start", repr(cold_start), "--weights-scale", repr(weights_scale),
                "--execution-time", repr(execution_time), "--runsync-wait", repr(runsync_wait),
                "--concurrency", str(concurrency), "--template-delete-delay", repr(template_delete_delay),
            ],
            json_output,
        )  # fmt: skip
        return
    port = 8765 if port is None else port
    key = os.environ.get(api_key_env, "").strip()
    generated = not key
    server = Emulator(
        api_key=key or ids.api_key(),
        host=host,
        port=port,
        cold_start=cold_start,
        weights_scale=weights_scale,
        execution_time=execution_time,
        runsync_wait=runsync_wait,
        concurrency=concurrency,
        template_delete_delay=template_delete_delay,
    )
    try:
        server.start()
    except OSError as exc:
        raise typer.BadParameter(f"cannot listen on {host}:{port}: {exc.strerror or exc}", param_hint="--port") from exc
    stop = threading.Event()
    previous = _on_signals(stop)
    try:
        if json_output:
            from rpdeploy.output import print_json

            document = {"ok": True, "api_url": server.api_url, "endpoint_url": server.endpoint_url}
            if generated:
                document["api_key"] = server.api_key
            print_json(document, compact=True)
        else:
            typer.echo(f"RUNPOD_API_BASE_URL={shlex.quote(server.api_url)}")
            typer.echo(f"RUNPOD_ENDPOINT_BASE_URL={shlex.quote(server.endpoint_url)}")
            if generated:
                # The emulator's own throwaway key, valid nowhere else: printing it is the point.
                typer.echo(f"RUNPOD_API_KEY={shlex.quote(server.api_key)}")
        source = "generated" if generated else f"from ${api_key_env}"
        typer.echo(f"RunPod emulator serving on {server.api_url} (API key {source}); Ctrl-C to stop", err=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        _restore(previous)


#: Seconds --background waits for the emulator to serve.
START_TIMEOUT = 30.0


def _background(options: list[str], json_output: bool) -> None:
    """Start ``rpdeploy emulator --json OPTIONS`` in its own session and print what points at it.

    It returns once the emulator serves (its first line, a JSON document, says where), so the
    shell can use the variables at once: `eval "$(rpdeploy emulator --background)"`. The
    emulator's own output goes nowhere (its state is at /_emulator/state).
    """
    import json
    import select
    import subprocess
    import sys

    from rpdeploy.errors import RpdeployError

    argv = [sys.executable, "-m", "rpdeploy", "emulator", "--json", *options]
    child = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], START_TIMEOUT)
    line = child.stdout.readline() if ready else b""
    child.stdout.close()
    try:
        document = json.loads(line)
        if not document.get("ok"):
            raise ValueError(line)
    except ValueError:
        child.kill()
        child.wait()
        raise RpdeployError(
            f"the emulator did not start within {START_TIMEOUT:g}s (exit {child.returncode})",
            hint="run `rpdeploy emulator` in the foreground to see why (a port in use?)",
        ) from None
    if json_output:
        from rpdeploy.output import print_json

        print_json({**document, "pid": child.pid}, compact=True)
    else:
        values = {"RUNPOD_API_BASE_URL": document["api_url"], "RUNPOD_ENDPOINT_BASE_URL": document["endpoint_url"]}
        if document.get("api_key"):
            # The emulator's own throwaway key, valid nowhere else: printing it is the point.
            values["RUNPOD_API_KEY"] = document["api_key"]
        values["RPDEPLOY_EMULATOR_PID"] = str(child.pid)
        for name, value in values.items():
            typer.echo(f"export {name}={shlex.quote(value)}")
    typer.echo(
        f"RunPod emulator serving on {document['api_url']} in the background (pid {child.pid}); "
        'stop it with: kill "$RPDEPLOY_EMULATOR_PID"',
        err=True,
    )


# What signal.signal returns and accepts: a function, SIG_DFL/SIG_IGN, or None.
_Handler = Callable[[int, FrameType | None], Any] | int | None


def _on_signals(stop: threading.Event) -> dict[int, _Handler]:
    """Make SIGINT and SIGTERM end serving cleanly (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, _Handler] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handle)
    return previous


def _restore(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
