"""The fixes a fit estimate suggests when the model does not fit or is tight: a shorter
``max_model_len``, a higher ``gpu_memory_utilization``, more GPUs, a larger GPU, or a quantized
checkpoint, each checked by re-running the estimate with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rpdeploy.preflight import gpus, models_table
from rpdeploy.preflight.arch import GIB, ModelArch, arch_from_config
from rpdeploy.preflight.cost import (
    format_money,
)
from rpdeploy.preflight.memory import (
    MAX_SUGGESTED_UTILIZATION,
    TIGHT_CONCURRENCY,
    TIGHT_SPARE_GIB,
    FitSettings,
    Verdict,
    _judge,
    _Memory,
    _tp_problem,
    _verdict_of,
)

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Fix:
    """One change to deploy.yaml and what the estimate says it gives."""

    kind: str  # max_model_len, gpu_memory_utilization, kv_cache_dtype, gpu, gpu_count, quantization, model
    setting: str  # the deploy.yaml key, e.g. "model.max_model_len"
    value: str | int | float
    message: str
    verdict: Verdict
    kv_capacity_tokens: int


def _round_length(tokens: float) -> int:
    """The largest multiple of 1024 (of 256 below 1024) not above ``tokens``; 0 below 256."""
    if tokens >= 1024:
        return int(tokens // 1024) * 1024
    if tokens >= 256:
        return int(tokens // 256) * 256
    return 0


def _price(gpu: gpus.GpuType) -> float | None:
    pool = gpus.POOLS.get(gpu.pool)
    return pool.price_per_second if pool else None


def _fixes(settings: FitSettings, arch: ModelArch, memory: _Memory, verdict: Verdict, reason: str | None) -> list[Fix]:
    if verdict is Verdict.FITS:
        return []
    fixes: list[Fix] = []
    good = {Verdict.FITS} if verdict is Verdict.TIGHT else {Verdict.FITS, Verdict.TIGHT}

    def acceptable(candidate: FitSettings, candidate_arch: ModelArch = arch) -> tuple[Verdict, _Memory] | None:
        result = _verdict_of(candidate, candidate_arch)
        return result if result[0] in good else None

    if reason == "tensor-parallel":
        for count in range(1, 9):
            candidate = replace(settings, gpu_count=count)
            if count != settings.gpu_count and (found := acceptable(candidate)):
                fixes.append(_count_fix(candidate, found, [], arch))
                break
        return fixes

    kv_short = reason == "kv-cache" or verdict is Verdict.TIGHT
    if kv_short:
        if verdict is Verdict.TIGHT:
            spare_tokens = TIGHT_SPARE_GIB * GIB / memory.kv_per_token
            length = _round_length(min(memory.capacity / TIGHT_CONCURRENCY, memory.capacity - spare_tokens))
        else:
            length = _round_length(memory.capacity)
        if arch.max_position_embeddings and not arch.rope_scaling:
            length = min(length, arch.max_position_embeddings)  # vLLM refuses more without rope scaling
        if 0 < length < settings.max_model_len:
            candidate = replace(settings, max_model_len=length)
            found_verdict = _judge(candidate, memory)[0]
            fixes.append(
                Fix(
                    "max_model_len",
                    "model.max_model_len",
                    length,
                    f"lower model.max_model_len to {length:,} (the KV cache has room for {memory.capacity:,} tokens)",
                    found_verdict,
                    memory.capacity,
                )
            )

    start = math.floor(settings.gpu_memory_utilization * 100 + 1e-6) + 1
    for percent in range(start, round(MAX_SUGGESTED_UTILIZATION * 100) + 1):
        candidate = replace(settings, gpu_memory_utilization=percent / 100)
        if found := acceptable(candidate):
            fixes.append(
                Fix(
                    "gpu_memory_utilization",
                    "model.gpu_memory_utilization",
                    percent / 100,
                    f"raise model.gpu_memory_utilization to {percent / 100:.2f} "
                    f"({found[1].kv:.2f} GiB of KV cache: {found[1].capacity:,} tokens)",
                    found[0],
                    found[1].capacity,
                )
            )
            break

    if kv_short and not settings.kv_cache_dtype.startswith("fp8"):
        candidate = replace(settings, kv_cache_dtype="fp8")
        if found := acceptable(candidate):
            fixes.append(
                Fix(
                    "kv_cache_dtype",
                    "model.kv_cache_dtype",
                    "fp8",
                    f"set model.kv_cache_dtype: fp8 (half the bytes per token: {found[1].capacity:,} tokens)",
                    found[0],
                    found[1].capacity,
                )
            )

    gpu_fix = _gpu_fix(settings, arch, good)
    count_fix: Fix | None = None
    impossible: list[int] = []
    for count in range(settings.gpu_count + 1, 9):
        candidate = replace(settings, gpu_count=count)
        if found := acceptable(candidate):
            count_fix = _count_fix(candidate, found, impossible, arch)
            break
        if _tp_problem(candidate, arch, memory.quant):
            impossible.append(count)
    quant_fixes = _quantization_fixes(settings, arch, good)
    if reason == "weights":
        fixes.extend(f for f in (gpu_fix, count_fix) if f)
        fixes.extend(quant_fixes)
    else:
        fixes.extend(quant_fixes)
        fixes.extend(f for f in (gpu_fix, count_fix) if f)
    return fixes


def _count_fix(candidate: FitSettings, found: tuple[Verdict, _Memory], impossible: list[int], arch: ModelArch) -> Fix:
    count = candidate.gpu_count
    price = _price(candidate.gpu)
    cost = f", {format_money(price * count)}/s per worker" if price is not None else ""
    skipped = ""
    if impossible:
        counts = ", ".join(str(n) for n in impossible)
        skipped = f"; {counts} cannot split the model's {arch.num_attention_heads} attention heads evenly"
    return Fix(
        "gpu_count",
        "endpoint.gpu_count",
        count,
        f"set endpoint.gpu_count: {count} (tensor parallel over {count} x {candidate.gpu.short}{cost}): "
        f"{found[1].capacity:,} tokens of KV cache{skipped}",
        found[0],
        found[1].capacity,
    )


def _gpu_fix(settings: FitSettings, arch: ModelArch, good: set[Verdict]) -> Fix | None:
    """The cheapest other GPU type (same gpu_count) the estimate accepts: fits before tight, then
    price, then the larger memory."""
    candidates: list[tuple[tuple[int, float, float], Verdict, _Memory, gpus.GpuType, float]] = []
    for gpu in gpus.GPU_TYPES:
        price = _price(gpu)
        if gpu.id == settings.gpu.id or price is None:
            continue
        verdict, memory = _verdict_of(replace(settings, gpu=gpu), arch)
        if verdict in good:
            key = (0 if verdict is Verdict.FITS else 1, price, -gpu.memory_gib)
            candidates.append((key, verdict, memory, gpu, price))
    if not candidates:
        return None
    _, verdict, memory, gpu, price = min(candidates, key=lambda item: item[0])
    return Fix(
        "gpu",
        "endpoint.gpu",
        gpu.short,
        f"use endpoint.gpu: {gpu.short} ({gpu.memory_gib:g} GiB, pool {gpu.pool}, {format_money(price)}/s per GPU): "
        f"{memory.capacity:,} tokens of KV cache",
        verdict,
        memory.capacity,
    )


def _quantization_fixes(settings: FitSettings, arch: ModelArch, good: set[Verdict]) -> list[Fix]:
    if arch.quantization is not None or settings.quantization is not None:
        return []
    fixes: list[Fix] = []
    plain = replace(settings, quantization=None, dtype="auto")
    variant = models_table.find_builtin(f"{arch.name}-AWQ")
    if variant is not None:
        awq_arch = arch_from_config(variant[1], name=variant[0], source="built-in table")
        verdict, memory = _verdict_of(plain, awq_arch)
        if verdict in good:
            fixes.append(
                Fix(
                    "model",
                    "model.name",
                    variant[0],
                    f"serve {variant[0]} (4-bit AWQ, {memory.weight_bytes_total / GIB:.1f} GiB of weights): "
                    f"{memory.capacity:,} tokens of KV cache",
                    verdict,
                    memory.capacity,
                )
            )
    verdict, memory = _verdict_of(replace(settings, quantization="fp8"), arch)
    if verdict in good:
        fixes.append(
            Fix(
                "quantization",
                "model.quantization",
                "fp8",
                f"set model.quantization: fp8 (weights quantized to 8 bits as they load, "
                f"{memory.weight_bytes_total / GIB:.1f} GiB): {memory.capacity:,} tokens of KV cache",
                verdict,
                memory.capacity,
            )
        )
    if variant is None:
        verdict, memory = _verdict_of(replace(settings, quantization="awq"), arch)
        if verdict in good:
            fixes.append(
                Fix(
                    "quantization",
                    "model.quantization",
                    "awq",
                    f"serve a 4-bit AWQ or GPTQ checkpoint of this model (about "
                    f"{memory.weight_bytes_total / GIB:.1f} GiB of weights): {memory.capacity:,} tokens of KV cache",
                    verdict,
                    memory.capacity,
                )
            )
    return fixes
