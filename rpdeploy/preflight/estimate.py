"""The fit estimate of one deployment: memory, verdict, summary line, fixes and warnings
(:func:`estimate_settings`, :func:`estimate`).

Accuracy, against the published figures for the reference deployment (Qwen2.5-7B-Instruct,
one L4, max_model_len 8192, utilization 0.9; ``python benchmarks/fit_accuracy.py``):

* parameters 7,615,616,512 and bf16 weights 15,231,233,024 bytes: exactly the Hub's
  safetensors total and index ``total_size`` (reference/worker-vllm.md quotes 15,230,967,808
  from a third-party file list: -0.002 %);
* weights 14.185 GiB against vLLM's log "Loading model weights took 14.25 GB": -0.46 %
  (vLLM also holds rotary caches and allocator slack);
* KV per token 56 KiB: exact; 8192 tokens fit: same verdict;
* KV capacity ~77,400 tokens (4.13 GiB) against the 65k-85k tokens (3.5-4.5 GiB) the
  reference derives: inside the range, +3 % from its middle. The overhead terms are the
  uncertain part (about +/-0.5 GiB), which is why ``tight`` asks for 1 GiB of spare room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpdeploy.preflight import gpus
from rpdeploy.preflight.arch import _MARLIN, GIB, ModelArch
from rpdeploy.preflight.fixes import Fix, _fixes
from rpdeploy.preflight.memory import FitSettings, Verdict, _judge, _measure, _Memory

if TYPE_CHECKING:
    from rpdeploy.config import Config


@dataclass(frozen=True)
class FitEstimate:
    """Memory per GPU (GiB unless named otherwise) and the verdict, with fixes when it is not ``fits``."""

    model: str
    arch_source: str
    gpu: str  # RunPod GPU type id
    gpu_short: str
    gpu_count: int
    gpu_memory_gib: float  # as CUDA reports it
    gpu_memory_utilization: float
    budget_gib: float
    parameter_count: int
    weight_format: str
    weight_bytes_total: int  # all GPUs together
    weights_gib: float
    activation_gib: float
    non_torch_gib: float
    cuda_graph_gib: float
    kv_cache_gib: float  # what is left for the KV cache (negative: short by that much)
    kv_bytes_per_token: int  # per GPU
    kv_bytes_per_token_model: int  # the whole model (all GPUs)
    kv_capacity_tokens: int
    max_model_len: int
    max_concurrency: float  # max_model_len-long requests the KV cache holds at once
    max_num_batched_tokens: int
    max_num_seqs: int
    decode_bytes_per_token: int  # weights read per generated token (all GPUs)
    verdict: Verdict
    reason: str | None  # weights, kv-cache, tensor-parallel
    summary: str
    fixes: tuple[Fix, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def overhead_gib(self) -> float:
        return self.activation_gib + self.non_torch_gib + self.cuda_graph_gib

    @property
    def main_fix(self) -> Fix | None:
        return self.fixes[0] if self.fixes else None


def _weight_format(settings: FitSettings, memory: _Memory, arch: ModelArch) -> str:
    checkpoint = "float16" if arch.torch_dtype == "float16" else "bfloat16"  # float32 is served in 16 bits
    dtype = checkpoint if settings.dtype == "auto" else settings.dtype
    if memory.quant is None:
        return f"{dtype}, {memory.act_bytes} bytes/parameter"
    return (
        f"{memory.quant.describe()} linear layers ({memory.quant.bytes_per_param:.3f} bytes/parameter), "
        f"embeddings in {dtype}"
    )


def _warnings(settings: FitSettings, arch: ModelArch) -> list[str]:
    out: list[str] = []
    limit = arch.max_position_embeddings
    if limit and settings.max_model_len > limit and not arch.rope_scaling:
        out.append(
            f"max_model_len {settings.max_model_len:,} is above the model's max_position_embeddings {limit:,}: "
            "vLLM refuses it unless rope scaling (e.g. YaRN) is configured"
        )
    requested = _MARLIN.get(settings.quantization or "", settings.quantization)
    if arch.quantization is not None and requested and requested != arch.quantization.method:
        out.append(
            f"model.quantization {settings.quantization} does not match the checkpoint "
            f"({arch.quantization.method}); vLLM will refuse it: leave model.quantization unset"
        )
    if arch.quantization is None and requested in ("awq", "gptq", "compressed-tensors"):
        out.append(
            f"model.quantization {settings.quantization} needs a checkpoint quantized that way, and "
            f"{arch.name} is not: vLLM will fail to load it (the estimate shows what a 4-bit checkpoint would need)"
        )
    if arch.num_experts:
        out.append("mixture-of-experts model: the activation estimate is rough")
    return out


def _summary(settings: FitSettings, memory: _Memory, verdict: Verdict, reason: str | None) -> str:
    length = settings.max_model_len
    if verdict is Verdict.FITS:
        return (
            f"fits: {memory.capacity:,} tokens of KV cache, room for {memory.capacity / length:.1f} "
            f"requests of {length:,} tokens at once"
        )
    if verdict is Verdict.TIGHT:
        spare = (memory.capacity - length) * memory.kv_per_token / GIB
        return (
            f"tight: {memory.capacity:,} tokens of KV cache, room for only {memory.capacity / length:.1f} "
            f"requests of {length:,} tokens at once ({spare:.2f} GiB to spare)"
        )
    if reason == "tensor-parallel":
        return f"does not fit: {memory.tp_problem}"
    if reason == "weights":
        return (
            f"does not fit: weights ({memory.weights:.2f} GiB per GPU) and overhead "
            f"({memory.non_kv - memory.weights:.2f} GiB) need {memory.non_kv:.2f} GiB, more than the "
            f"{memory.budget:.2f} GiB budget ({settings.gpu.memory_gib:g} GiB x {settings.gpu_memory_utilization:.2f})"
        )
    need = length * memory.kv_per_token / GIB
    return (
        f"does not fit: one request of max_model_len {length:,} needs {need:.2f} GiB of KV cache, but only "
        f"{max(memory.kv, 0):.2f} GiB ({memory.capacity:,} tokens) is left after weights and overhead; vLLM stops "
        f'with "... KV cache is needed, which is larger than the available KV cache memory"'
    )


def estimate_settings(settings: FitSettings, arch: ModelArch, *, model: str | None = None) -> FitEstimate:
    """The estimate for explicit settings (what :func:`estimate` does for a deploy.yaml)."""
    memory = _measure(settings, arch)
    verdict, reason = _judge(settings, memory)
    return FitEstimate(
        model=model or arch.name,
        arch_source=arch.source,
        gpu=settings.gpu.id,
        gpu_short=settings.gpu.short,
        gpu_count=settings.gpu_count,
        gpu_memory_gib=settings.gpu.memory_gib,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        budget_gib=memory.budget,
        parameter_count=arch.parameter_count,
        weight_format=_weight_format(settings, memory, arch),
        weight_bytes_total=memory.weight_bytes_total,
        weights_gib=memory.weights,
        activation_gib=memory.activation,
        non_torch_gib=memory.non_torch,
        cuda_graph_gib=memory.cuda_graph,
        kv_cache_gib=memory.kv,
        kv_bytes_per_token=memory.kv_per_token,
        kv_bytes_per_token_model=memory.kv_per_token_model,
        kv_capacity_tokens=memory.capacity,
        max_model_len=settings.max_model_len,
        max_concurrency=memory.capacity / settings.max_model_len,
        max_num_batched_tokens=memory.batched_tokens,
        max_num_seqs=memory.num_seqs,
        decode_bytes_per_token=memory.decode_bytes,
        verdict=verdict,
        reason=reason,
        summary=_summary(settings, memory, verdict, reason),
        fixes=tuple(_fixes(settings, arch, memory, verdict, reason)),
        warnings=tuple(_warnings(settings, arch)),
    )


def estimate(config: Config, arch: ModelArch, gpu: gpus.GpuType | None = None) -> FitEstimate:
    """Will ``config``'s model fit ``gpu`` (default: the configured one) x endpoint.gpu_count?"""
    return estimate_settings(FitSettings.from_config(config, gpu), arch, model=config.model.name)
