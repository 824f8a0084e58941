"""`rpdeploy smoke-test`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rpdeploy.commands._common import DEFAULT_CONFIG, ConfigOption, JsonOption, VerboseOption, reporter, to_jsonable
from rpdeploy.errors import EXIT_OK, SmokeTestError
from rpdeploy.output import print_json, print_result

if TYPE_CHECKING:
    from rpdeploy.smoke import SmokeResult


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
    verbose: VerboseOption = False,
    json_output: JsonOption = False,
) -> None:
    """Prove the endpoint answers, through a cold start, and measure it.

    First the method's own job: worker-vllm a chat job, custom-handler a chat job whose output
    has text, fastapi a /v1/chat/completions job answered with HTTP 200. Then, for every
    method, the route the backend uses: /openai/v1/models lists the model and an OpenAI chat
    completion answers (and a streamed one with --stream); a local worker gets the jobs RunPod
    makes of those requests. A job that fails, times out, or "completes" with an error in its
    output fails the test (exit 10).

    The RunPod API key goes only to RunPod's API over https or to the configured endpoint
    base (runpod.endpoint_url, RUNPOD_ENDPOINT_BASE_URL); a local worker gets none, and any
    other --url gets none unless --send-key.

    Examples:

    \b
      rpdeploy smoke-test
      rpdeploy smoke-test --json --junit smoke.xml
      python worker/handler.py --rp_serve_api --rp_api_port 8000 &
      rpdeploy smoke-test --url http://localhost:8000
    """
    from rpdeploy.methods import Method
    from rpdeploy.runpod.invoke import InvokeClient
    from rpdeploy.secrets import Secret
    from rpdeploy.smoke import SmokeSettings, format_report, resolve_target, run_smoke, write_junit

    cfg = None
    if not url or config.exists():
        from rpdeploy.config import load_config

        cfg = load_config(config)
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
    target = resolve_target(cfg, endpoint_id=endpoint_id, url=url)
    out = reporter(verbose=verbose)
    api_key = None
    if not target.local and not target.send_key and not send_key:
        out.info(f"Not sending the RunPod API key: {target.key_note} (--send-key sends it anyway)")
    elif not target.local:
        if cfg is not None:
            api_key = cfg.runpod.api_key.resolve(base_dir=cfg.base_dir, field="runpod.api_key")
        elif os.environ.get("RUNPOD_API_KEY", "").strip():
            # --url to a RunPod endpoint outside a project: the key from where deploy.yaml's default looks.
            api_key = Secret(os.environ["RUNPOD_API_KEY"].strip(), "env:RUNPOD_API_KEY")
    model = cfg.model.public_name if cfg else ""
    with InvokeClient(target.base_url, api_key=api_key, local=target.local) as client:
        result = run_smoke(client, chosen, settings, model=model, target=target.label, reporter=out)
    if junit is not None:
        write_junit(result, junit)
    _summary(result)
    error = None
    if not result.passed:
        failed = next(c for c in result.checks if not c.passed)
        if cfg is not None and not target.local and not url:
            from rpdeploy.runpod.deployment import connect
            from rpdeploy.runpod.fleet import report_failure

            with connect(cfg, reporter=out) as cp:
                report_failure(cp, target.label, failed.worker_id, out.warn)
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
