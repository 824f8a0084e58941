"""``rpdeploy check`` and deploy stage 7: the fit estimate and the cost preview together
(:func:`check_deployment` -> :class:`CheckResult`), the error when the model does not fit, and the
lines ``format_check`` prints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rpdeploy.errors import PreflightError
from rpdeploy.output import Reporter
from rpdeploy.preflight.arch import ModelArch
from rpdeploy.preflight.cost import (
    RUNPOD_INIT_TIMEOUT_DEFAULT,
    ColdStartPlan,
    CostEstimate,
    estimate_cost,
    format_money,
)
from rpdeploy.preflight.estimate import FitEstimate, estimate
from rpdeploy.preflight.memory import Verdict
from rpdeploy.preflight.sources import load_arch

if TYPE_CHECKING:
    import httpx

    from rpdeploy.config import Config


# --- fit + cost ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """Everything `rpdeploy check` (and deploy's stage 7, and plan) says about a deploy.yaml."""

    config: str
    model: str
    gpu: str
    gpu_count: int
    verdict: str  # fits, tight, does-not-fit, or unknown (no architecture found)
    arch: ModelArch | None
    fit: FitEstimate | None
    cost: CostEstimate
    warnings: tuple[str, ...]
    blocking: bool  # true only for does-not-fit


class DoesNotFitError(PreflightError):
    """The estimate says vLLM cannot start with this deploy.yaml. Exit 11, the main fix as hint."""

    def __init__(self, result: CheckResult) -> None:
        assert result.fit is not None
        main = result.fit.main_fix
        hint = main.message if main else "use a larger GPU, more GPUs or a smaller model"
        super().__init__(
            f"{result.model} on {result.gpu_count} x {result.fit.gpu_short}: {result.fit.summary}", hint=hint
        )
        self.result = result

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["check"] = dataclasses.asdict(self.result)
        return data


def check_deployment(
    config: Config,
    *,
    reporter: Reporter,
    requests_per_day: int | None = None,
    latency: float | None = None,
    offline: bool = False,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    price_override: float | None = None,
    price_source: str = "RunPod API",
) -> CheckResult:
    """The fit estimate and the cost preview for ``config``. Prints nothing; see :func:`format_check`.

    ``price_override`` is the pool's price per GPU-second when the control plane gave one (its
    ``price_source`` is shown); otherwise the dated built-in table is used. ``transport`` is for
    tests (an ``httpx.MockTransport`` standing in for the Hub).
    """
    lookup = load_arch(config, reporter=reporter, offline=offline, environ=environ, transport=transport)
    fit = estimate(config, lookup.arch) if lookup.arch is not None else None
    cost = estimate_cost(
        config,
        weights_bytes=fit.weight_bytes_total if fit else None,
        decode_bytes_per_token=fit.decode_bytes_per_token if fit else None,
        requests_per_day=requests_per_day,
        latency=latency,
        price_override=price_override,
        price_source=price_source,
    )
    warnings = list(lookup.notes)
    if fit is not None:
        if fit.verdict is Verdict.TIGHT:
            warnings.append(f"{fit.summary}; vLLM may refuse to start if the estimate is off by a little")
        warnings.extend(fit.warnings)
    warnings.extend(cost.warnings)
    warnings.extend(_token_warnings(config))
    from rpdeploy.preflight.hub import token_problem

    gated = token_problem(config, offline=offline, environ=environ, transport=transport)
    if gated is not None:
        warnings.append(gated)
    return CheckResult(
        config=str(config.path),
        model=config.model.name,
        gpu=config.endpoint.gpu_type.id,
        gpu_count=config.endpoint.gpu_count,
        verdict=fit.verdict.value if fit else "unknown",
        arch=lookup.arch,
        fit=fit,
        cost=cost,
        warnings=tuple(warnings),
        blocking=fit is not None and fit.verdict is Verdict.DOES_NOT_FIT,
    )


def _token_warnings(config: Config) -> list[str]:
    from rpdeploy.config import HfTokenDelivery

    if config.model.hf_token is None or config.model.hf_token_delivery is not HfTokenDelivery.TEMPLATE_ENV:
        return []
    return [
        "model.hf_token_delivery: template-env puts the Hugging Face token in the template env in plain text, "
        "where RunPod's console shows it to everyone on the account; use it only if {{ RUNPOD_SECRET_... }} "
        "references do not resolve on your serverless workers (RunPod documents them for Pods only)"
    ]


def _gib(value: float) -> str:
    return f"{value:6.2f} GiB"


def _fit_lines(fit: FitEstimate) -> list[str]:
    params = f"{fit.parameter_count / 1e9:.2f} B parameters"
    lines = [
        f"  memory per GPU ({fit.gpu_short}: {fit.gpu_memory_gib:g} GiB as CUDA reports it):",
        f"    budget       {_gib(fit.budget_gib)}  ({fit.gpu_memory_gib:g} GiB x {fit.gpu_memory_utilization:.2f})",
        f"    weights      {_gib(fit.weights_gib)}  ({params}, {fit.weight_format}"
        + (f", split over {fit.gpu_count} GPUs)" if fit.gpu_count > 1 else ")"),
        f"    activations  {_gib(fit.activation_gib)}  (profiling at {fit.max_num_batched_tokens:,} batched tokens, "
        f"{fit.max_num_seqs} sequences)",
        f"    non-torch    {_gib(fit.non_torch_gib)}",
        f"    CUDA graphs  {_gib(fit.cuda_graph_gib)}" + ("  (enforce_eager)" if fit.cuda_graph_gib == 0 else ""),
        f"    KV cache     {_gib(fit.kv_cache_gib)}  ({fit.kv_capacity_tokens:,} tokens at "
        f"{fit.kv_bytes_per_token / 1024:g} KiB per token)",
        f"  {fit.summary}",
    ]
    if fit.fixes:
        lines.append("  fixes:" if fit.verdict is Verdict.DOES_NOT_FIT else "  for more room:")
        lines.extend(f"    - {fix.message}" for fix in fit.fixes)
    return lines


def _cost_lines(cost: CostEstimate) -> list[str]:
    money = format_money
    lines = [f"cost ({cost.price_source}):"]
    if cost.price_per_second is None:
        lines.append(f"  no price known for pool {cost.pool}")
    else:
        per_gpu = f" ({cost.gpu_count} x {money(cost.price_per_gpu_second or 0)})" if cost.gpu_count > 1 else ""
        lines.append(
            f"  {cost.gpu_short} in pool {cost.pool}: {money(cost.price_per_second)}/s per worker{per_gpu}"
            f" = {money(cost.price_per_hour or 0)}/hour while it runs"
        )
        if cost.workers_min:
            lines.append(
                f"  always on: workers_min {cost.workers_min} = {money(cost.floor_per_hour or 0)}/hour, "
                f"{money(cost.floor_per_month or 0)} per 30-day month with no traffic at all"
            )
        else:
            lines.append("  always on: nothing (workers_min 0: scales to zero)")
    cold = cost.cold_start
    parts = ", ".join(f"{label} {seconds:.0f} s" for label, seconds in cold.parts)
    cold_cost = f" = {money(cost.cold_start_cost)} each" if cost.cold_start_cost is not None else ""
    lines.append(
        f"  cold start (model.weights: {cold.strategy}): ~{cold.seconds:.0f} s ({parts}) + idle_timeout "
        f"{cost.idle_timeout} s billed{cold_cost}"
    )
    lines.extend(f"    {line}" for line in cold_start_lines(cost.cold_start_plan))
    if cost.latency_seconds is not None:
        each = f", {money(cost.request_cost)} each" if cost.request_cost is not None else ""
        if cost.latency_source == "estimate" and cost.decode_tokens_per_second:
            lines.append(
                f"  one request: {cost.output_tokens} tokens at ~{cost.decode_tokens_per_second:.0f} tokens/s "
                f"(memory-bandwidth bound) = {cost.latency_seconds:.1f} s{each}"
            )
        else:
            lines.append(f"  one request: {cost.latency_seconds:.1f} s (--latency){each}")
    if cost.requests_per_day is not None and cost.daily_cost is not None:
        line = (
            f"  {cost.requests_per_day:,} requests/day: {money(cost.daily_cost)}/day, "
            f"{money(cost.monthly_cost or 0)} per 30 days"
        )
        if cost.daily_cost_all_cold is not None:
            line += f" (up to {money(cost.daily_cost_all_cold)}/day if every request starts a worker)"
        lines.append(line)
    return lines


def cold_start_lines(plan: ColdStartPlan) -> list[str]:
    """The cold start's details: the other strategies, the fastest, RUNPOD_INIT_TIMEOUT, the figures."""
    chosen = plan.chosen
    lines = []
    if chosen.unbilled_seconds:
        lines.append(
            f"RunPod puts the cached model on the host before the worker starts (~{chosen.unbilled_seconds:.0f} s "
            "when no host has it yet, not billed)"
        )
    if chosen.first_seconds is not None:
        lines.append(f"the first start downloads the model onto the volume: ~{chosen.first_seconds:.0f} s")
    if chosen.flashboot:
        lines.append("FlashBoot can cut this to seconds on a host that ran the image recently")
    if not plan.weights_known:
        lines.append("the model's size is unknown: its download and load are left out")
    others = [o for o in plan.options if o.strategy != chosen.strategy]
    if others:
        shown = ", ".join(
            f"{o.strategy} ~{o.seconds:.0f} s" + (f" (first ~{o.first_seconds:.0f} s)" if o.first_seconds else "")
            for o in others
        )
        lines.append(f"other strategies: {shown}")
    fastest = plan.options[0]
    if fastest.strategy == chosen.strategy or fastest.seconds >= chosen.seconds:
        lines.append(f"recommended: {chosen.strategy} (the fastest here)")
    else:
        lines.append(
            f"recommended: model.weights: {fastest.strategy} (~{fastest.seconds:.0f} s instead of "
            f"~{chosen.seconds:.0f} s)"
        )
    limit = RUNPOD_INIT_TIMEOUT_DEFAULT
    if plan.init_timeout_source == "endpoint.init_timeout":
        lines.append(f"RUNPOD_INIT_TIMEOUT={plan.init_timeout} (endpoint.init_timeout)")
    elif plan.init_timeout is not None:
        lines.append(
            f"RUNPOD_INIT_TIMEOUT={plan.init_timeout}: the estimate (~{chosen.longest:.0f} s) is over RunPod's "
            f"{limit // 60}-minute limit, after which it marks a starting worker unhealthy"
        )
    else:
        lines.append(f"RUNPOD_INIT_TIMEOUT: not needed (under RunPod's {limit // 60}-minute limit)")
    lines.append("figures assumed:")
    lines.extend(f"  {figure.name}: {figure.value} ({figure.source})" for figure in plan.figures)
    return lines


def format_check(result: CheckResult) -> list[str]:
    """The check as lines for people (no colour, no markup): used by check, deploy stage 7 and plan."""
    fit = result.fit
    arch = result.arch
    head = f"{result.model} on {result.gpu_count} x {result.gpu}"
    if fit is not None:
        head += f", max_model_len {fit.max_model_len:,}, gpu_memory_utilization {fit.gpu_memory_utilization:.2f}"
    lines = [head]
    if fit is not None and arch is not None:
        lines.append(
            f"  architecture: {arch.source} ({arch.model_type}, {arch.num_layers} layers, "
            f"{arch.num_kv_heads} KV heads of {arch.head_dim})"
        )
        lines.extend(_fit_lines(fit))
    else:
        lines.append("  fit: unknown (no architecture found; see warnings)")
    lines.extend(_cost_lines(result.cost))
    if result.warnings:
        lines.append("warnings:")
        lines.extend(f"  - {warning}" for warning in result.warnings)
    return lines
