"""The cost preview: exact arithmetic on the published prices, the floor warning, cold starts, traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpdeploy import versions
from rpdeploy.config import Config, parse_config
from rpdeploy.preflight import gpus
from rpdeploy.preflight.cost import (
    DECODE_EFFICIENCY,
    decode_tokens_per_second,
    estimate_cold_start,
    estimate_cost,
    format_money,
)

# Qwen2.5-7B-Instruct in bf16: the safetensors total, and what one decode step reads (all but the
# 152064 x 3584 input embedding).
WEIGHTS = 15_231_233_024
DECODE_BYTES = WEIGHTS - 152064 * 3584 * 2


def config(*, workers_min: int = 0, gpu: str = "L4", gpu_count: int = 1, extra: str = "", model: str = "") -> Config:
    text = (
        "method: worker-vllm\n"
        "model:\n"
        "  name: Qwen/Qwen2.5-7B-Instruct\n"
        f"{model}"
        "endpoint:\n"
        "  name: cost-test\n"
        f"  gpu: {gpu}\n"
        f"  gpu_count: {gpu_count}\n"
        f"  workers_min: {workers_min}\n"
        "  workers_max: 2\n"
        f"{extra}"
    )
    return parse_config(text, path=Path("/nowhere/deploy.yaml"))


def test_l4_always_on_worker_costs_0_684_an_hour_and_492_48_a_month() -> None:
    cost = estimate_cost(config(workers_min=1), weights_bytes=WEIGHTS, decode_bytes_per_token=DECODE_BYTES)
    assert cost.price_per_gpu_second == 0.00019
    assert cost.price_per_hour == pytest.approx(0.684)
    assert cost.floor_per_hour == pytest.approx(0.684)
    assert cost.floor_per_month == pytest.approx(492.48)
    assert cost.price_source == f"built-in price table of {versions.PRICE_TABLE_DATE}, flex workers"
    assert cost.price_table_date == "2025-08-25"
    [warning] = cost.warnings
    assert warning.startswith("workers_min 1 keeps 1 worker of 1 x L4 running around the clock: $492.48 per 30-day")


def test_no_floor_and_no_warning_when_scaling_to_zero() -> None:
    cost = estimate_cost(config(workers_min=0), weights_bytes=WEIGHTS, decode_bytes_per_token=DECODE_BYTES)
    assert (cost.floor_per_hour, cost.floor_per_month) == (0.0, 0.0)
    assert cost.warnings == ()


def test_two_workers_of_two_gpus_multiply_both_ways() -> None:
    cost = estimate_cost(config(workers_min=2, gpu_count=2))
    assert cost.price_per_second == pytest.approx(0.00038)
    assert cost.floor_per_hour == pytest.approx(2 * 2 * 0.684)
    assert cost.floor_per_month == pytest.approx(4 * 492.48)
    assert "keeps 2 workers of 2 x L4" in cost.warnings[0]


def test_a_price_from_the_control_plane_wins_and_says_so() -> None:
    cost = estimate_cost(config(workers_min=1), price_override=0.00021, price_source="RunPod API (AMPERE_24)")
    assert cost.price_per_gpu_second == 0.00021
    assert cost.price_source == "RunPod API (AMPERE_24)"
    assert cost.floor_per_month == pytest.approx(0.00021 * 3600 * 720)


def test_unknown_pool_price_leaves_costs_out_with_a_warning() -> None:
    assert gpus.POOLS["ADA_32_PRO"].price_per_second is None
    cost = estimate_cost(config(gpu="RTX5090", workers_min=1), requests_per_day=100, latency=1.0)
    assert (cost.price_per_second, cost.floor_per_month, cost.cold_start_cost, cost.daily_cost) == (
        None,
        None,
        None,
        None,
    )
    assert any("no price known for pool ADA_32_PRO" in w for w in cost.warnings)


def test_cold_start_seconds_from_the_model_size() -> None:
    cold = estimate_cold_start(WEIGHTS, strategy="download", enforce_eager=False, flashboot=True)
    parts = dict(cold.parts)
    assert parts["image pull"] == pytest.approx(8e9 / 125e6)  # 64 s
    assert parts["model download"] == pytest.approx(WEIGHTS / 200e6)  # 76 s
    assert parts["weight load"] == pytest.approx(WEIGHTS / 2e9)  # 7.6 s
    assert parts["engine start"] == 60
    assert cold.seconds == pytest.approx(64 + WEIGHTS / 200e6 + WEIGHTS / 2e9 + 60)
    assert 90 <= cold.seconds <= 300  # reference: 1.5-5 min without FlashBoot or a cache

    baked = estimate_cold_start(WEIGHTS, strategy="bake", enforce_eager=True, flashboot=False)
    assert dict(baked.parts)["image pull with baked weights"] == pytest.approx((8e9 + WEIGHTS) / 125e6)
    assert dict(baked.parts)["engine start"] == 15

    # RunPod's model cache: nothing to fetch, only the load from local disk; its own download
    # (when no host has the model yet) happens before the worker starts and is not billed.
    cached = estimate_cold_start(WEIGHTS, strategy="cached", enforce_eager=False, flashboot=True)
    assert dict(cached.parts) == {"image pull": pytest.approx(64), "weight load": WEIGHTS / 2e9, "engine start": 60}
    assert cached.unbilled_seconds == pytest.approx(WEIGHTS / 200e6) and cached.first_seconds is None

    # A network volume: read at 200 MB/s (RunPod's 200-400 MB/s); the first worker downloads it first.
    volume = estimate_cold_start(WEIGHTS, strategy="network-volume", enforce_eager=False, flashboot=True)
    assert dict(volume.parts)["weight load from the network volume"] == pytest.approx(WEIGHTS / 200e6)
    assert volume.first_seconds == pytest.approx(volume.seconds + WEIGHTS / 200e6)
    assert cached.seconds < volume.seconds < baked.seconds + 45 and cached.seconds < cold.seconds


def test_a_cold_start_bills_start_and_idle_timeout() -> None:
    cost = estimate_cost(config(extra="  idle_timeout: 30\n"), weights_bytes=WEIGHTS)
    assert cost.cold_start_cost == pytest.approx((cost.cold_start.seconds + 30) * 0.00019)


def test_decode_speed_is_memory_bandwidth_bound() -> None:
    l4 = gpus.find_gpu("L4")
    assert l4 is not None
    speed = decode_tokens_per_second(l4, 1, DECODE_BYTES)
    assert speed == pytest.approx(DECODE_EFFICIENCY * 300e9 / DECODE_BYTES)
    assert 16 <= (speed or 0) <= 18  # reference: ~17-18 tok/s per stream in bf16 on an L4
    assert decode_tokens_per_second(l4, 2, DECODE_BYTES) == pytest.approx(2 * (speed or 0))
    assert decode_tokens_per_second(l4, 1, None) is None


def test_traffic_with_scale_to_zero() -> None:
    cost = estimate_cost(config(), weights_bytes=WEIGHTS, requests_per_day=1000, latency=2.0)
    assert (cost.latency_seconds, cost.latency_source) == (2.0, "--latency")
    assert cost.request_cost == pytest.approx(2.0 * 0.00019)
    assert cost.daily_cost == pytest.approx(1000 * 2.0 * 0.00019)  # $0.38
    assert cost.monthly_cost == pytest.approx(30 * 0.38)
    assert cost.daily_cost_all_cold == pytest.approx(1000 * (2.0 + cost.cold_start.seconds + 5) * 0.00019)


def test_traffic_on_an_always_on_worker_costs_nothing_extra_until_it_is_full() -> None:
    light = estimate_cost(config(workers_min=1), requests_per_day=1000, latency=2.0)
    assert light.daily_cost == pytest.approx(0.684 * 24)  # 2,000 busy seconds fit in the day
    assert light.daily_cost_all_cold is None
    heavy = estimate_cost(config(workers_min=1), requests_per_day=50_000, latency=2.0)
    assert heavy.daily_cost == pytest.approx(0.684 * 24 + (100_000 - 86_400) * 0.00019)


def test_latency_estimated_from_decode_speed_when_not_given() -> None:
    cost = estimate_cost(config(), decode_bytes_per_token=DECODE_BYTES, requests_per_day=10)
    assert cost.latency_source == "estimate"
    assert cost.latency_seconds == pytest.approx(256 / (DECODE_EFFICIENCY * 300e9 / DECODE_BYTES))
    unknown = estimate_cost(config(), requests_per_day=10)
    assert (unknown.latency_seconds, unknown.daily_cost) == (None, None)
    assert any("--latency" in w for w in unknown.warnings)


@pytest.mark.parametrize(
    ("amount", "text"),
    [(492.48, "$492.48"), (1234.5, "$1,234.50"), (0.684, "$0.684"), (0.00019, "$0.00019"), (0.0, "$0.00")],
)
def test_money_format(amount: float, text: str) -> None:
    assert format_money(amount) == text
