"""`rpdeploy smoke-test`."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rpdeploy.commands._common import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    VerboseOption,
    config_path,
    keep_open,
    reporter,
    to_jsonable,
)
from rpdeploy.commands._target import EmulatorOption
from rpdeploy.commands._target import target as sandbox
from rpdeploy.errors import EXIT_OK, SmokeTestError
from rpdeploy.output import print_json, print_result

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rpdeploy.config import Config
    from rpdeploy.deploy.smoke import ReleaseCheck, SmokeResult
    from rpdeploy.output import Reporter


def _release_check(
    cfg: Config | None,
    endpoint_id: str,
    url: str | None,
    stack: contextlib.ExitStack,
    state_dir: Path | None,
    environ: Mapping[str, str],
) -> ReleaseCheck | None:
    """For this project's deployed endpoint: the release its last deploy made (from the ledger)."""
    if cfg is None or url:
        return None
    from rpdeploy.deploy.ledger import Ledger
    from rpdeploy.deploy.smoke import release_check
    from rpdeploy.runpod.deployment import connect

    ledger = Ledger.load(state_dir or cfg.state_dir)
    expected = ledger.extra.get("release")
    if not isinstance(expected, str) or ledger.output("endpoint", "endpoint_id") != endpoint_id:
        return None
    cp = stack.enter_context(connect(cfg, environ))
    return release_check(cfg, str(expected), lambda: cp.rollout(endpoint_id))


def _summary(result: SmokeResult) -> None:
    """The GitHub Actions job summary (when running there)."""
    from rpdeploy.ci import markdown_table, md_code, write_step_summary

    verdict = "passed" if result.passed else "FAILED"
    rows = [(c.name, "ok" if c.passed else "FAIL", f"{c.seconds:.2f}s", c.message) for c in result.checks]
    summary = result.summary()
    extra = []
    if summary.get("output_tokens") is not None:
        extra.append(f"{summary['output_tokens']} output tokens")
    if summary.get("cold_start_ms") is not None:
        extra.append(f"queue/cold start {summary['cold_start_ms'] / 1000:.1f}s")
    write_step_summary(
        f"### rpdeploy: smoke test of {md_code(result.target)} {verdict}\n\n"
        + markdown_table(["check", "result", "time", "message"], rows)
        + (f"\n\n{', '.join(extra)}" if extra else ""),
        None,
    )


def _wait_for_local_worker(url: str, timeout: float, out: Reporter) -> None:
    """A worker on this machine that was just started (`handler.py ... &`) may not listen yet:
    wait for it (its engine loads first) instead of failing on "connection refused"."""
    import ipaddress
    import socket
    import time
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return
    if not loopback:
        return

    def listening() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    if listening():
        return
    deadline = time.monotonic() + timeout
    with out.status(f"waiting for the worker at {url} to listen (it loads its model first)") as status:
        while not listening():
            if time.monotonic() >= deadline:
                return  # the smoke test then says it cannot connect
            status.update(f"waiting for the worker at {url} to listen (it loads its model first)")
            time.sleep(0.5)


def smoke_test(
    config: ConfigOption = DEFAULT_CONFIG,
    endpoint_id: Annotated[
        str | None, typer.Option("--endpoint-id", help="Endpoint to test (default: from deploy.yaml).")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="Test this URL instead: an endpoint base, or a local `handler.py --rp_serve_api` worker."
        ),
    ] = None,
    method: Annotated[str | None, typer.Option("--method", "-m", help="1/2/3 when there is no deploy.yaml.")] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="Prompt to send [default: smoke_test.prompt].")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1, help="Answer length [default: 32].")] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=1, help="Seconds, cold start included [default: 600].")
    ] = None,
    stream: Annotated[
        bool | None, typer.Option("--stream/--no-stream", help="Also check a streamed answer on the OpenAI route.")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Write a JUnit XML report here (for CI).", dir_okay=False)
    ] = None,
    send_key: Annotated[
        bool,
        typer.Option(
            "--send-key",
            help="Send the RunPod API key to --url even though it is neither RunPod's API (https) nor the "
            "configured endpoint base.",
        ),
    ] = False,
    emulator: EmulatorOption = False,
    verbose: VerboseOption = False,
    json_output: JsonOption = False,
) -> None:
    """Prove the endpoint answers, through a cold start, and measure it.

    The endpoint is the one this project deployed (the ledger's, else the one deploy.yaml
    names), --endpoint-id another one, --url a local worker; --emulator tests the endpoint of
    the emulator sandbox (`rpdeploy deploy --emulator`).

    First the method's own job: worker-vllm a chat job, custom-handler a chat job whose output
    has text, fastapi a /v1/chat/completions job answered with HTTP 200. Then, for every
    method, the route the backend uses: /openai/v1/models lists the model and an OpenAI chat
    completion answers (and a streamed one with --stream); a local worker gets the jobs RunPod
    makes of those requests. A job that fails, times out, or "completes" with an error in its
    output fails the test (exit 10).

    For the endpoint this project deployed, only answers of the release the last deploy made
    count: right after an update, old workers still answer, and their answers are refused and
    asked again until the new release answers (the report says how long that took).

    The RunPod API key goes only to RunPod's API over https or to the configured endpoint
    base (runpod.endpoint_url, RUNPOD_ENDPOINT_BASE_URL); a local worker gets none, and any
    other --url gets none unless --send-key.

    Examples:

    \b
      rpdeploy smoke-test
      rpdeploy smoke-test --json --junit smoke.xml
      rpdeploy smoke-test --emulator
      python worker/handler.py --rp_serve_api --rp_api_port 8000 &
      rpdeploy smoke-test --url http://localhost:8000
    """
    from rpdeploy.deploy.smoke import SmokeSettings, format_report, resolve_target, run_smoke, write_junit
    from rpdeploy.methods import Method
    from rpdeploy.runpod.invoke import InvokeClient
    from rpdeploy.secrets import Secret

    cfg = None
    path = config_path(config)  # deploy.yaml here or in a parent folder (a worker started from worker/)
    if not url or path.exists():
        from rpdeploy.config import load_config

        cfg = load_config(path)
    environ = dict(os.environ)
    ledger_dir: Path | None = None
    if emulator:
        if cfg is None or url:
            raise typer.BadParameter("tests the sandbox endpoint of deploy.yaml, so no --url", param_hint="--emulator")
        from rpdeploy.deploy.project import deployed_endpoint

        cfg, environ, ledger_dir = keep_open(sandbox(cfg, True, quiet=True))
        endpoint_id = endpoint_id or deployed_endpoint(cfg, state_dir=ledger_dir, environ=environ).endpoint_id
    chosen = Method.parse(method) if method else (cfg.method if cfg else None)
    if chosen is None:
        raise typer.BadParameter("without deploy.yaml, say which method the worker uses", param_hint="--method")
    defaults = cfg.smoke_test if cfg else None
    settings = SmokeSettings(
        prompt=prompt or (defaults.prompt if defaults else "Reply with one short sentence: what is RunPod?"),
        max_tokens=max_tokens or (defaults.max_tokens if defaults else 32),
        timeout=timeout or (defaults.timeout if defaults else 600),
        stream=stream if stream is not None else (defaults.stream if defaults else False),
    )
    out = reporter(verbose=verbose)
    if url:
        _wait_for_local_worker(url, settings.timeout, out)
    target = resolve_target(cfg, endpoint_id=endpoint_id, url=url)
    api_key = None
    if not target.local and not target.send_key and not send_key:
        out.info(f"Not sending the RunPod API key: {target.key_note} (--send-key sends it anyway)")
    elif not target.local:
        if cfg is not None:
            api_key = cfg.runpod.api_key.resolve(base_dir=cfg.base_dir, environ=environ, field="runpod.api_key")
        elif os.environ.get("RUNPOD_API_KEY", "").strip():
            # --url to a RunPod endpoint outside a project: the key from where deploy.yaml's default looks.
            api_key = Secret(os.environ["RUNPOD_API_KEY"].strip(), "env:RUNPOD_API_KEY")
    model = cfg.model.public_name if cfg else ""
    with contextlib.ExitStack() as stack:
        check = _release_check(cfg, target.label, url, stack, ledger_dir, environ) if api_key is not None else None
        client = stack.enter_context(InvokeClient(target.base_url, api_key=api_key, local=target.local))
        result = run_smoke(client, chosen, settings, model=model, target=target.label, reporter=out, release=check)
    if junit is not None:
        write_junit(result, junit)
    _summary(result)
    error = None
    if not result.passed:
        failed = next(c for c in result.checks if not c.passed)
        if cfg is not None and not target.local and not url:
            from rpdeploy.runpod.deployment import connect
            from rpdeploy.runpod.fleet import explain_failure

            expected = check.expected if check is not None else None
            with connect(cfg, environ, reporter=out) as cp:
                explain_failure(cp, target.label, failed.worker_id, failed.release, expected, out.warn)
        error = SmokeTestError(
            f"smoke test of {result.target} failed: {failed.name}: {failed.message}",
            hint="the report above lists every check; `rpdeploy status` shows the endpoint's workers"
            if not target.local
            else "the worker's own output (its terminal) has the traceback",
        )
    if json_output:
        document = {"ok": result.passed, "summary": result.summary(), "result": to_jsonable(result)}
        if error is not None:
            document["error"] = error.to_dict()
        print_json(document)
    else:
        print_result(format_report(result))
    if error is not None:
        if json_output:
            raise typer.Exit(SmokeTestError.exit_code)
        raise error
    raise typer.Exit(EXIT_OK)
