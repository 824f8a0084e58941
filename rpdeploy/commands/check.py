"""`rpdeploy check`."""

from __future__ import annotations

from typing import Annotated

import typer

from rpdeploy.commands._common import DEFAULT_CONFIG, ConfigOption, JsonOption, emit, load, reporter
from rpdeploy.output import print_result

RequestsOption = Annotated[
    int | None,
    typer.Option("--requests-per-day", "-n", min=0, help="Price this many requests a day.", show_default=False),
]
LatencyOption = Annotated[
    float | None,
    typer.Option(
        "--latency",
        min=0.001,
        help="Seconds one request takes [default: estimated from the GPU's memory bandwidth].",
        show_default=False,
    ),
]
OfflineOption = Annotated[
    bool,
    typer.Option("--offline", help="Do not ask the Hugging Face Hub; use the HF cache or the built-in table."),
]


def check(
    config: ConfigOption = DEFAULT_CONFIG,
    requests_per_day: RequestsOption = None,
    latency: LatencyOption = None,
    offline: OfflineOption = False,
    json_output: JsonOption = False,
) -> None:
    """Will the model fit the GPU, and what will it cost? Nothing is built or created.

    Estimates vLLM's memory per GPU (weights, activations, CUDA graphs, KV cache) from the
    model's config.json (model.config_file, the Hugging Face Hub, the HF cache or a built-in
    table) and prices the endpoint: per second, the always-on floor of workers_min, one cold
    start, and a day of traffic. Exits 0 when it fits (a warning when tight) and 11 when it
    does not, with the fix as the hint.

    Examples:

    \b
      rpdeploy check
      rpdeploy check --requests-per-day 5000
      rpdeploy check -n 5000 --latency 4 --offline --json
    """
    from rpdeploy.preflight.check import DoesNotFitError, check_deployment, format_check
    from rpdeploy.preflight.memory import Verdict

    cfg = load(config)
    out = reporter()
    result = check_deployment(cfg, reporter=out, requests_per_day=requests_per_day, latency=latency, offline=offline)
    if result.fit is not None and result.fit.verdict is Verdict.TIGHT:
        out.warn(f"{result.fit.summary}; vLLM may refuse to start")
    elif result.fit is None:
        out.warn("the fit could not be checked: " + (result.warnings[-1] if result.warnings else "no architecture"))
    if not json_output:
        print_result("\n".join(format_check(result)))
    if result.blocking:
        raise DoesNotFitError(result)
    emit(json_output, {"check": result})
