"""What a deployment will cost on RunPod Serverless, before it exists.

RunPod bills a worker per second "from when it starts until it fully stops": its start (image
pull and model load), every request, and ``idle_timeout`` after the last one
(reference/worker-vllm.md section 5). So the preview has four parts:

* the price: the pool's price per GPU-second from the control plane when the caller has it
  (``price_override``), else the built-in table in :mod:`rpdeploy.gpus` dated
  ``versions.PRICE_TABLE_DATE``; times ``gpu_count``;
* the floor: ``workers_min`` workers run around the clock, traffic or not (a 30-day month);
* one cold start: an estimate of its seconds (below) plus ``idle_timeout``, at the price;
* traffic: N requests a day at a latency, from ``--latency`` or from a decode-speed estimate.

Cold-start seconds (no FlashBoot, model downloaded at start), stated assumptions:
an ~8 GB image pulled at ~1 Gbit/s (64 s); the weights downloaded from the Hub at 200 MB/s (or,
when baked into the image, pulled with it at 1 Gbit/s); loaded into GPU memory at 2 GB/s; and
60 s of engine start (torch.compile and CUDA-graph capture; 15 s with ``enforce_eager``). For
Qwen2.5-7B in bf16 that is ~3.5 minutes, inside the 1.5-5 minutes the reference estimates.
FlashBoot can bring a start down to seconds on a host that ran the image recently; the preview
prices the slow case.

Decode speed: generating a token reads every weight once (batch 1), so tokens/s is about
``0.8 x memory bandwidth x gpu_count / weight bytes``. 0.8 is the efficiency measured on an L4
(Mistral-7B fp16: 17.9 tok/s measured, 17 estimated); on faster GPUs vLLM reaches less of the
bound (Qwen's A100 figure for Qwen2.5-7B is 84 tok/s against our 115), so the estimate is
optimistic there. A request's latency is ``output_tokens / tokens per second``; prompt
processing is ignored (a fraction of a second for short prompts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpdeploy import gpus, versions

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
    """Seconds from "RunPod starts a worker" to "vLLM answers", by part."""

    seconds: float
    parts: tuple[tuple[str, float], ...]
    flashboot: bool


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


def estimate_cold_start(weights_bytes: int | None, *, bake: bool, enforce_eager: bool, flashboot: bool) -> ColdStart:
    """Cold-start seconds from the model size (assumptions in the module docstring)."""
    weights = float(weights_bytes or 0)
    if bake:
        parts = [("image pull with baked weights", (IMAGE_BYTES + weights) / IMAGE_PULL_BYTES_PER_SECOND)]
    else:
        parts = [
            ("image pull", IMAGE_BYTES / IMAGE_PULL_BYTES_PER_SECOND),
            ("model download", weights / HUB_DOWNLOAD_BYTES_PER_SECOND),
        ]
    parts.append(("weight load", weights / LOAD_BYTES_PER_SECOND))
    parts.append(("engine start", EAGER_ENGINE_START_SECONDS if enforce_eager else ENGINE_START_SECONDS))
    return ColdStart(seconds=sum(s for _, s in parts), parts=tuple(parts), flashboot=flashboot)


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

    cold = estimate_cold_start(
        weights_bytes, bake=config.model.bake, enforce_eager=config.model.enforce_eager, flashboot=endpoint.flashboot
    )
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
