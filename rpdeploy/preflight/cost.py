"""What a deployment will cost on RunPod Serverless, before it exists.

RunPod bills a worker per second "from when it starts until it fully stops": its start (image
pull and model load), every request, and ``idle_timeout`` after the last one
(reference/worker-vllm.md section 5). So the preview has four parts:

* the price: the pool's price per GPU-second from the control plane when the caller has it
  (``price_override``), else the built-in table in :mod:`rpdeploy.preflight.gpus` dated
  ``versions.PRICE_TABLE_DATE``; times ``gpu_count``;
* the floor: ``workers_min`` workers run around the clock, traffic or not (a 30-day month);
* one cold start: an estimate of its seconds (below) plus ``idle_timeout``, at the price;
* traffic: N requests a day at a latency, from ``--latency`` or from a decode-speed estimate.

Cold-start seconds (no FlashBoot), per ``model.weights`` strategy; every figure below is listed
with its source by :data:`COLD_START_FIGURES` and shown by ``rpdeploy check``:

* image pull: an ~8 GB image pulled at ~1 Gbit/s (64 s); baked weights come with it;
* the weights: none to fetch from RunPod's model cache (RunPod puts them on the host before the
  worker starts, unbilled), read from a network volume at 200 MB/s (the low end of RunPod's
  200-400 MB/s), downloaded from the Hub at 200 MB/s at every start (``download``; the first
  start of a network volume too);
* weight load into GPU memory at 2 GB/s from local disk; 60 s of engine start (torch.compile
  and CUDA-graph capture; 15 s with ``enforce_eager``).

For Qwen2.5-7B in bf16 that is ~2.2 minutes from the cache and ~3.5 minutes downloading, inside
the 1.5-5 minutes the reference estimates. RunPod marks a worker unhealthy after 7 minutes of
cold start unless ``RUNPOD_INIT_TIMEOUT`` says otherwise: :func:`init_timeout` sets it when the
estimate is longer. FlashBoot can bring a start down to seconds on a host that ran the image
recently; the preview prices the slow case.

Decode speed: generating a token reads every weight once (batch 1), so tokens/s is about
``0.8 x memory bandwidth x gpu_count / weight bytes``. 0.8 is the efficiency measured on an L4
(Mistral-7B fp16: 17.9 tok/s measured, 17 estimated); on faster GPUs vLLM reaches less of the
bound (Qwen's A100 figure for Qwen2.5-7B is 84 tok/s against our 115), so the estimate is
optimistic there. A request's latency is ``output_tokens / tokens per second``; prompt
processing is ignored (a fraction of a second for short prompts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpdeploy import versions
from rpdeploy.config import WeightsSource
from rpdeploy.methods import Method
from rpdeploy.preflight import gpus

if TYPE_CHECKING:
    from rpdeploy.config import Config

SECONDS_PER_HOUR = 3600
HOURS_PER_MONTH = 24 * 30
DEFAULT_OUTPUT_TOKENS = 256
DECODE_EFFICIENCY = 0.8
IMAGE_BYTES = 8e9
IMAGE_PULL_BYTES_PER_SECOND = 125e6  # 1 Gbit/s
HUB_DOWNLOAD_BYTES_PER_SECOND = 200e6
LOAD_BYTES_PER_SECOND = 2e9
ENGINE_START_SECONDS = 60.0
EAGER_ENGINE_START_SECONDS = 15.0
#: "200-400 MB/s" (docs storage/network-volumes.mdx): the low end, as the preview prices the slow case.
VOLUME_READ_BYTES_PER_SECOND = 200e6
#: "If cold start exceeds 7 minutes, the worker is marked unhealthy. Extend with
#: `RUNPOD_INIT_TIMEOUT=800` (seconds)." (docs serverless/development/optimization.mdx, runpod/docs@a900806e)
RUNPOD_INIT_TIMEOUT_DEFAULT = 420
#: Headroom over the estimate when rpdeploy sets RUNPOD_INIT_TIMEOUT (the estimate is rough).
INIT_TIMEOUT_MARGIN = 1.5


@dataclass(frozen=True)
class Figure:
    """One number a cold-start estimate assumes, and where it comes from."""

    name: str
    value: str
    source: str


COLD_START_FIGURES: tuple[Figure, ...] = (
    Figure("image", "8 GB pulled at 1 Gbit/s (64 s)", "rpdeploy's assumption: RunPod publishes no pull speed"),
    Figure("Hub download", "200 MB/s", "rpdeploy's assumption: no published figure for RunPod hosts"),
    Figure("network volume read", "200 MB/s", "docs storage/network-volumes.mdx: 200-400 MB/s (low end)"),
    Figure("weight load", "2 GB/s from local disk", "rpdeploy's assumption"),
    Figure("engine start", "60 s (15 s with enforce_eager)", "rpdeploy's assumption: torch.compile + CUDA graphs"),
    Figure(
        "cached model",
        "on the host before the worker starts; its download (when no host has it) is not billed",
        "docs serverless/endpoints/model-caching.mdx",
    ),
    Figure(
        "unhealthy after",
        f"{RUNPOD_INIT_TIMEOUT_DEFAULT // 60} minutes of cold start, unless RUNPOD_INIT_TIMEOUT (seconds) is set",
        "docs serverless/development/optimization.mdx",
    ),
)

#: Memory bandwidth in GB/s (NVIDIA datasheet values; the L4's 300 GB/s is in reference/worker-vllm.md 4.2).
GPU_BANDWIDTH_GB_S: dict[str, float] = {
    "NVIDIA RTX A4000": 448,
    "NVIDIA RTX A4500": 640,
    "NVIDIA RTX 4000 Ada Generation": 360,
    "NVIDIA RTX 2000 Ada Generation": 224,
    "NVIDIA L4": 300,
    "NVIDIA RTX A5000": 768,
    "NVIDIA GeForce RTX 3090": 936,
    "NVIDIA GeForce RTX 4090": 1008,
    "NVIDIA GeForce RTX 5090": 1792,
    "NVIDIA A40": 696,
    "NVIDIA RTX A6000": 768,
    "NVIDIA L40": 864,
    "NVIDIA L40S": 864,
    "NVIDIA RTX 6000 Ada Generation": 960,
    "NVIDIA A100 80GB PCIe": 1935,
    "NVIDIA A100-SXM4-80GB": 2039,
    "NVIDIA H100 80GB HBM3": 3350,
    "NVIDIA H100 PCIe": 2000,
    "NVIDIA H100 NVL": 3900,
    "NVIDIA RTX PRO 6000 Blackwell Server Edition": 1792,
    "NVIDIA H200": 4800,
    "NVIDIA B200": 8000,
}


def format_money(amount: float | None) -> str:
    """Dollars: two decimals from $1 up, three significant digits below ($0.684, $0.00019)."""
    if amount is None:
        return "unknown"
    if abs(amount) >= 1 or amount == 0:
        return f"${amount:,.2f}"
    if abs(amount) >= 1e-4:
        return f"${amount:.3g}"
    return f"${amount:.6f}"


@dataclass(frozen=True)
class ColdStart:
    """Seconds from "RunPod starts a worker" to "vLLM answers", by part, for one weights strategy.

    ``first_seconds`` is the first start where it is longer (a network volume the model is not on
    yet); ``unbilled_seconds`` is RunPod's own download of a cached model to a host that does not
    have it yet, which delays the worker's start but is not billed.
    """

    seconds: float
    parts: tuple[tuple[str, float], ...]
    flashboot: bool
    strategy: str = WeightsSource.DOWNLOAD.value
    first_seconds: float | None = None
    unbilled_seconds: float = 0.0

    @property
    def longest(self) -> float:
        """The longest billed start: what RUNPOD_INIT_TIMEOUT must allow."""
        return max(self.seconds, self.first_seconds or 0.0)


@dataclass(frozen=True)
class ColdStartPlan:
    """The cold start of the chosen strategy, the others that apply, and RUNPOD_INIT_TIMEOUT."""

    chosen: ColdStart
    options: tuple[ColdStart, ...]  # every strategy this method can use, fastest first
    recommended: str  # the fastest of them
    figures: tuple[Figure, ...]
    #: Seconds rpdeploy sets as RUNPOD_INIT_TIMEOUT (None: RunPod's 7-minute default is enough).
    init_timeout: int | None
    init_timeout_source: str  # "endpoint.init_timeout", "estimate" or "" (not set)
    weights_known: bool


@dataclass(frozen=True)
class CostEstimate:
    """Prices in US dollars. ``None`` where the price (or the model size) is unknown."""

    gpu: str
    gpu_short: str
    pool: str
    gpu_count: int
    price_per_gpu_second: float | None
    price_per_second: float | None  # one worker: gpu_count GPUs
    price_per_hour: float | None
    price_source: str
    price_table_date: str
    workers_min: int
    workers_max: int
    floor_per_hour: float | None
    floor_per_month: float | None  # 30 days
    idle_timeout: int
    cold_start: ColdStart
    cold_start_cost: float | None  # (start + idle_timeout) x price
    cold_start_plan: ColdStartPlan
    decode_tokens_per_second: float | None
    output_tokens: int
    latency_seconds: float | None
    latency_source: str  # "--latency", "estimate" or "unknown"
    request_cost: float | None
    requests_per_day: int | None
    daily_cost: float | None  # floor + traffic the always-on workers cannot absorb, warm workers
    monthly_cost: float | None
    daily_cost_all_cold: float | None  # workers_min 0 and every request starting a worker
    warnings: tuple[str, ...] = ()


def pool_price(gpu: gpus.GpuType, price_override: float | None = None) -> float | None:
    """Price per GPU-second: the override (from the control plane), else the built-in table."""
    if price_override is not None:
        return price_override
    pool = gpus.POOLS.get(gpu.pool)
    return pool.price_per_second if pool else None


def estimate_cold_start(
    weights_bytes: int | None,
    *,
    strategy: WeightsSource | str = WeightsSource.DOWNLOAD,
    enforce_eager: bool,
    flashboot: bool,
) -> ColdStart:
    """Cold-start seconds of one weights strategy from the model size (figures in the module docstring)."""
    source = WeightsSource(strategy)
    weights = float(weights_bytes or 0)
    image = ("image pull", IMAGE_BYTES / IMAGE_PULL_BYTES_PER_SECOND)
    load = ("weight load", weights / LOAD_BYTES_PER_SECOND)
    download = weights / HUB_DOWNLOAD_BYTES_PER_SECOND
    first: float | None = None
    unbilled = 0.0
    if source is WeightsSource.BAKE:
        parts = [("image pull with baked weights", (IMAGE_BYTES + weights) / IMAGE_PULL_BYTES_PER_SECOND), load]
    elif source is WeightsSource.CACHED:
        parts = [image, load]
        unbilled = download
    elif source is WeightsSource.NETWORK_VOLUME:
        parts = [image, ("weight load from the network volume", weights / VOLUME_READ_BYTES_PER_SECOND)]
        first = download  # added below: the first worker downloads the model onto the volume
    else:
        parts = [image, ("model download", download), load]
    parts.append(("engine start", EAGER_ENGINE_START_SECONDS if enforce_eager else ENGINE_START_SECONDS))
    seconds = sum(s for _, s in parts)
    return ColdStart(
        seconds=seconds,
        parts=tuple(parts),
        flashboot=flashboot,
        strategy=source.value,
        first_seconds=seconds + first if first is not None else None,
        unbilled_seconds=unbilled,
    )


def strategies_for(config: Config) -> tuple[WeightsSource, ...]:
    """The weights strategies this deployment could use (bake needs our own image; a path is in it)."""
    if config.model.is_path:
        return (WeightsSource.BAKE,)
    options = [WeightsSource.CACHED, WeightsSource.NETWORK_VOLUME, WeightsSource.DOWNLOAD]
    if config.method is not Method.WORKER_VLLM:
        options.insert(2, WeightsSource.BAKE)
    return tuple(options)


def init_timeout(cold: ColdStart, configured: int | None) -> tuple[int | None, str]:
    """RUNPOD_INIT_TIMEOUT for the endpoint: deploy.yaml's, else the estimate with headroom when
    it is longer than RunPod's 7-minute default, else none (the default is enough)."""
    if configured is not None:
        return configured, "endpoint.init_timeout"
    if cold.longest <= RUNPOD_INIT_TIMEOUT_DEFAULT:
        return None, ""
    return int(math.ceil(cold.longest * INIT_TIMEOUT_MARGIN / 60) * 60), "estimate"


def plan_cold_start(config: Config, weights_bytes: int | None) -> ColdStartPlan:
    """The chosen strategy's cold start, the alternatives, the fastest, and RUNPOD_INIT_TIMEOUT."""
    model, endpoint = config.model, config.endpoint
    options = {
        source: estimate_cold_start(
            weights_bytes, strategy=source, enforce_eager=model.enforce_eager, flashboot=endpoint.flashboot
        )
        for source in (*strategies_for(config), model.weights_source)
    }
    chosen = options[model.weights_source]
    ranked = tuple(sorted(options.values(), key=lambda c: (c.seconds, c.longest)))
    timeout, timeout_source = init_timeout(chosen, endpoint.init_timeout)
    return ColdStartPlan(
        chosen=chosen,
        options=ranked,
        recommended=ranked[0].strategy,
        figures=COLD_START_FIGURES,
        init_timeout=timeout,
        init_timeout_source=timeout_source,
        weights_known=bool(weights_bytes),
    )


def init_timeout_for(config: Config, weights_bytes: int | None) -> int | None:
    """RUNPOD_INIT_TIMEOUT rpdeploy puts in the template env (None: leave RunPod's default)."""
    return plan_cold_start(config, weights_bytes).init_timeout


def decode_tokens_per_second(gpu: gpus.GpuType, gpu_count: int, decode_bytes_per_token: int | None) -> float | None:
    """Tokens/s of one request, bounded by memory bandwidth (None when a figure is missing)."""
    bandwidth = GPU_BANDWIDTH_GB_S.get(gpu.id)
    if not bandwidth or not decode_bytes_per_token:
        return None
    return DECODE_EFFICIENCY * bandwidth * 1e9 * gpu_count / decode_bytes_per_token


def estimate_cost(
    config: Config,
    *,
    gpu: gpus.GpuType | None = None,
    weights_bytes: int | None = None,
    decode_bytes_per_token: int | None = None,
    requests_per_day: int | None = None,
    latency: float | None = None,
    output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    price_override: float | None = None,
    price_source: str = "RunPod API",
) -> CostEstimate:
    """The cost preview for ``config`` (weights and decode bytes come from the fit estimate)."""
    endpoint = config.endpoint
    gpu = gpu or endpoint.gpu_type
    count = endpoint.gpu_count
    per_gpu = pool_price(gpu, price_override)
    source = (
        price_source
        if price_override is not None
        else f"built-in price table of {versions.PRICE_TABLE_DATE}, flex workers"
    )
    per_second = per_gpu * count if per_gpu is not None else None
    per_hour = per_second * SECONDS_PER_HOUR if per_second is not None else None
    floor_hour = per_hour * endpoint.workers_min if per_hour is not None else None
    floor_month = floor_hour * HOURS_PER_MONTH if floor_hour is not None else None

    cold_plan = plan_cold_start(config, weights_bytes)
    cold = cold_plan.chosen
    cold_cost = (cold.seconds + endpoint.idle_timeout) * per_second if per_second is not None else None

    speed = decode_tokens_per_second(gpu, count, decode_bytes_per_token)
    if latency is not None:
        latency_seconds: float | None = latency
        latency_source = "--latency"
    elif speed:
        latency_seconds = output_tokens / speed
        latency_source = "estimate"
    else:
        latency_seconds = None
        latency_source = "unknown"
    request_cost = latency_seconds * per_second if latency_seconds is not None and per_second is not None else None

    daily = monthly = all_cold = None
    if requests_per_day is not None and per_second is not None and latency_seconds is not None:
        busy = requests_per_day * latency_seconds
        # Always-on workers absorb traffic at no extra cost (one request at a time: vLLM's
        # batching only makes this cheaper).
        extra = max(0.0, busy - endpoint.workers_min * 24 * SECONDS_PER_HOUR)
        daily = (floor_hour or 0.0) * 24 + extra * per_second
        monthly = daily * 30
        if endpoint.workers_min == 0:
            per_cold_request = latency_seconds + cold.seconds + endpoint.idle_timeout
            all_cold = requests_per_day * per_cold_request * per_second

    warnings: list[str] = []
    if endpoint.workers_min > 0 and floor_month is not None and floor_hour is not None:
        warnings.append(
            f"workers_min {endpoint.workers_min} keeps {endpoint.workers_min} "
            f"worker{'s' if endpoint.workers_min > 1 else ''} of {count} x {gpu.short} running around the clock: "
            f"{format_money(floor_month)} per 30-day month ({format_money(floor_hour)}/hour) even with no traffic; "
            "set workers_min: 0 to scale to zero"
        )
    elif endpoint.workers_min > 0:
        warnings.append(f"workers_min {endpoint.workers_min} keeps workers running around the clock (price unknown)")
    if per_gpu is None:
        warnings.append(f"no price known for pool {gpu.pool}; costs are left out")
    if requests_per_day is not None and latency_seconds is None:
        warnings.append("no latency for the traffic estimate: pass --latency SECONDS")
    warnings.extend(_cold_start_warnings(config, cold_plan))
    if per_second is not None and endpoint.idle_timeout > 300:
        warnings.append(
            f"idle_timeout {endpoint.idle_timeout} s bills {format_money(endpoint.idle_timeout * per_second)} "
            "of idle time after every burst of traffic"
        )

    return CostEstimate(
        gpu=gpu.id,
        gpu_short=gpu.short,
        pool=gpu.pool,
        gpu_count=count,
        price_per_gpu_second=per_gpu,
        price_per_second=per_second,
        price_per_hour=per_hour,
        price_source=source,
        price_table_date=versions.PRICE_TABLE_DATE,
        workers_min=endpoint.workers_min,
        workers_max=endpoint.workers_max,
        floor_per_hour=floor_hour,
        floor_per_month=floor_month,
        idle_timeout=endpoint.idle_timeout,
        cold_start=cold,
        cold_start_cost=cold_cost,
        cold_start_plan=cold_plan,
        decode_tokens_per_second=speed,
        output_tokens=output_tokens,
        latency_seconds=latency_seconds,
        latency_source=latency_source,
        request_cost=request_cost,
        requests_per_day=requests_per_day,
        daily_cost=daily,
        monthly_cost=monthly,
        daily_cost_all_cold=all_cold,
        warnings=tuple(warnings),
    )


def _cold_start_warnings(config: Config, plan: ColdStartPlan) -> list[str]:
    warnings = []
    chosen = plan.chosen
    if config.endpoint.init_timeout is not None and config.endpoint.init_timeout < chosen.longest:
        warnings.append(
            f"endpoint.init_timeout {config.endpoint.init_timeout} s is shorter than the ~{chosen.longest:.0f} s "
            "cold start estimated: RunPod would mark starting workers unhealthy"
        )
    model = config.model
    if chosen.strategy == WeightsSource.CACHED.value:
        if model.hf_token is not None:
            # runpodctl's saveEndpoint sends only modelReferences, and RunPod's GraphQL EndpointInput
            # has no token field; the console asks for one next to the Model field.
            warnings.append(
                "a gated model is cached by RunPod only with the Hugging Face token entered next to the "
                "endpoint's Model field in the RunPod console (the API has no field for it); otherwise "
                "set model.weights: download"
            )
        if model.revision and not _is_commit(model.revision):
            warnings.append(
                f"model.revision {model.revision!r} is not a commit: RunPod caches the commit it points to "
                "when the endpoint is saved, and rpdeploy cannot tell later whether that is still it; pin a commit"
            )
    return warnings


def _is_commit(revision: str) -> bool:
    return len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)
