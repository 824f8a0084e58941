"""How much GPU memory a vLLM deployment needs, per GPU, and the verdict: fits, tight or does-not-fit.

The commonest vLLM failure shows up ten minutes into a cold start: the KV cache cannot hold one
``max_model_len``-long request, or the weights do not fit at all. This module predicts it from the
model's ``config.json`` and deploy.yaml, the way vLLM's own start-up profiling decides it:

    budget   = GPU memory as CUDA reports it  x  gpu_memory_utilization          (per GPU)
    non-KV   = weights / gpu_count + activation peak + non-torch memory + CUDA graphs
    KV cache = budget - non-KV, in 16-token blocks of  2 x layers x KV heads/GPU x head_dim x bytes

*Weights*: parameters x bytes per parameter; 2 for bf16/fp16 (also for float32 checkpoints
served with dtype auto, which vLLM loads in 16 bits), 4 for dtype float32, 1 for fp8 linear
layers. AWQ/GPTQ 4-bit stores 0.5 byte per weight plus, per group of ``group_size`` inputs, one
fp16 scale and one packed 4-bit zero point: 0.5 + 2.5/128 = 0.5195 byte at group size 128.
Quantization touches the attention and MLP projections only; embeddings, lm_head, norms and
biases stay in 16 bits. Tensor parallelism splits everything by ``gpu_count`` (norms are
replicated but negligible; KV heads are replicated when there are fewer of them than GPUs).

*Activation peak*: vLLM profiles one forward pass at ``max_num_batched_tokens`` (2048 on GPUs
under 70 GiB and on A100s, 8192 above) plus a sampler pass over ``max_num_seqs`` (256, or
1024 on the large non-A100 GPUs) rows of logits. We count
``tokens x (3 x intermediate/gpu_count + 6 x hidden) x 2 bytes`` for the layer temporaries and
``max_num_seqs x vocab x 8 bytes`` for float32 logits and probabilities.
*Non-torch memory*: 0.4 GiB (CUDA context, cuBLAS workspaces; 0.35 GiB measured on a 3090 in
vllm-project/vllm#10517), 0.25 GiB more with tensor parallelism (NCCL buffers).
*CUDA graphs*: 0.25 GiB + 0.01 GiB per layer unless ``enforce_eager`` (recent vLLM subtracts
its graph-memory estimate from the KV budget before allocating).
*Verdict*: ``fits``; ``tight`` when it fits but the KV cache holds fewer than two
``max_model_len``-long requests or less than 1 GiB is left after one; ``does-not-fit`` with the
reason ``weights`` (weights and overhead exceed the budget), ``kv-cache`` (fewer KV tokens than
``max_model_len``) or ``tensor-parallel`` (``gpu_count`` does not divide the attention heads).
Sliding-window and MLA attention are not modelled: every layer gets a full KV cache, which
over-estimates the KV need of such models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from rpdeploy.preflight import gpus
from rpdeploy.preflight.arch import _DTYPE_BYTES, _MARLIN, GIB, ModelArch, QuantInfo, parameter_breakdown

if TYPE_CHECKING:
    from rpdeploy.config import Config


#: vLLM allocates the KV cache in blocks of this many tokens.
KV_BLOCK_TOKENS = 16
#: The highest gpu_memory_utilization a fix suggests: above it, the CUDA context and other
#: processes' memory leave too little headroom and start-up fails on "Free memory ... is less than desired".
MAX_SUGGESTED_UTILIZATION = 0.95
#: ``tight`` below this many max_model_len-long requests in the KV cache at once...
TIGHT_CONCURRENCY = 2.0
#: ...or with less than this much KV room left over after one full-length request: about twice
#: the estimate's own uncertainty, so "tight" means "vLLM may well refuse this".
TIGHT_SPARE_GIB = 1.0
NON_TORCH_GIB = 0.4
NON_TORCH_TENSOR_PARALLEL_GIB = 0.25
CUDA_GRAPH_BASE_GIB = 0.25
CUDA_GRAPH_PER_LAYER_GIB = 0.01
#: vLLM's threshold for the larger batching defaults (``get_batch_defaults``).
LARGE_GPU_GIB = 70.0


class Verdict(str, Enum):
    FITS = "fits"
    TIGHT = "tight"
    DOES_NOT_FIT = "does-not-fit"


# --- the estimate -------------------------------------------------------------------------


@dataclass(frozen=True)
class FitSettings:
    """The deploy.yaml values the estimate depends on (a fix changes one of them)."""

    gpu: gpus.GpuType
    gpu_count: int = 1
    max_model_len: int = 8192
    gpu_memory_utilization: float = 0.9
    dtype: str = "auto"
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    max_num_seqs: int | None = None
    enforce_eager: bool = False

    @classmethod
    def from_config(cls, config: Config, gpu: gpus.GpuType | None = None) -> FitSettings:
        model = config.model
        return cls(
            gpu=gpu or config.endpoint.gpu_type,
            gpu_count=config.endpoint.gpu_count,
            max_model_len=model.max_model_len,
            gpu_memory_utilization=model.gpu_memory_utilization,
            dtype=model.dtype.value,
            quantization=model.quantization.value if model.quantization is not None else None,
            kv_cache_dtype=model.kv_cache_dtype.value,
            max_num_seqs=model.max_num_seqs,
            enforce_eager=model.enforce_eager,
        )


@dataclass(frozen=True)
class _Memory:
    budget: float
    quant: QuantInfo | None
    act_bytes: int
    weight_bytes_total: int
    weights: float
    activation: float
    non_torch: float
    cuda_graph: float
    kv: float
    kv_per_token: int
    kv_per_token_model: int
    capacity: int
    batched_tokens: int
    num_seqs: int
    decode_bytes: int
    tp_problem: str | None

    @property
    def non_kv(self) -> float:
        return self.weights + self.activation + self.non_torch + self.cuda_graph


def _activation_dtype_bytes(settings: FitSettings, arch: ModelArch) -> int:
    if settings.dtype != "auto":
        return _DTYPE_BYTES.get(settings.dtype, 2)
    # dtype auto: the checkpoint's own, except that float32 checkpoints are served in 16 bits.
    return min(_DTYPE_BYTES.get(arch.torch_dtype, 2), 2)


def _effective_quant(settings: FitSettings, arch: ModelArch) -> QuantInfo | None:
    """What vLLM will run: a quantized checkpoint decides; otherwise fp8/bitsandbytes quantize at load."""
    if arch.quantization is not None:
        return arch.quantization
    requested = _MARLIN.get(settings.quantization or "", settings.quantization)
    if requested == "fp8":
        return QuantInfo("fp8", 8)
    if requested == "bitsandbytes":
        return QuantInfo("bitsandbytes", 4)
    if requested in ("awq", "gptq"):
        return QuantInfo(requested, 4, 128)  # what a 4-bit checkpoint of this model would take
    return None


def _tp_problem(settings: FitSettings, arch: ModelArch, quant: QuantInfo | None) -> str | None:
    n = settings.gpu_count
    if n == 1:
        return None
    if arch.num_attention_heads % n:
        return f"tensor parallel over {n} GPUs needs the {arch.num_attention_heads} attention heads divisible by {n}"
    if arch.num_kv_heads % n and n % arch.num_kv_heads:
        return f"tensor parallel over {n} GPUs needs the {arch.num_kv_heads} KV heads divisible by {n} (or {n} by them)"
    # AWQ/GPTQ kernels need each GPU's slice of the MLP to be whole quantization groups.
    group = quant.group_size if quant is not None and quant.method in ("awq", "gptq") else None
    if group and (arch.intermediate_size % n or (arch.intermediate_size // n) % group):
        return (
            f"tensor parallel over {n} GPUs splits intermediate_size {arch.intermediate_size} into parts that "
            f"are not whole {group}-wide quantization groups"
        )
    return None


def _measure(settings: FitSettings, arch: ModelArch) -> _Memory:
    n = settings.gpu_count
    gpu = settings.gpu
    act_bytes = _activation_dtype_bytes(settings, arch)
    quant = _effective_quant(settings, arch)
    parts = parameter_breakdown(arch)
    # A Hub count larger than the architecture's goes to "other" (kept in 16 bits).
    other = max(parts.other, arch.parameter_count - parts.embedding - parts.lm_head - parts.linear)
    linear_bytes = parts.linear * (quant.bytes_per_param if quant else act_bytes)
    embedding_bytes = parts.embedding * act_bytes
    weight_bytes = round(linear_bytes + embedding_bytes + (parts.lm_head + other) * act_bytes)

    kv_dtype_bytes = 1 if settings.kv_cache_dtype.startswith("fp8") else act_bytes
    kv_heads_per_gpu = max(1, math.ceil(arch.num_kv_heads / n))
    kv_per_token = 2 * arch.num_layers * kv_heads_per_gpu * arch.head_dim * kv_dtype_bytes
    kv_per_token_model = 2 * arch.num_layers * arch.num_kv_heads * arch.head_dim * kv_dtype_bytes

    large = gpu.memory_gib >= LARGE_GPU_GIB and "A100" not in gpu.id.upper()
    batched = 8192 if large else 2048
    seqs = settings.max_num_seqs or (1024 if large else 256)
    width = max(arch.intermediate_size, arch.moe_intermediate_size * max(arch.experts_per_token, 1))
    layer_temporaries = batched * (3 * width / n + 6 * arch.hidden_size) * act_bytes
    sampler = seqs * arch.vocab_size * 8  # float32 logits and probabilities
    activation = (layer_temporaries + sampler) / GIB
    non_torch = NON_TORCH_GIB + (NON_TORCH_TENSOR_PARALLEL_GIB if n > 1 else 0.0)
    graphs = 0.0 if settings.enforce_eager else CUDA_GRAPH_BASE_GIB + CUDA_GRAPH_PER_LAYER_GIB * arch.num_layers

    budget = gpu.memory_gib * settings.gpu_memory_utilization
    weights = weight_bytes / n / GIB
    kv = budget - weights - activation - non_torch - graphs
    block = kv_per_token * KV_BLOCK_TOKENS
    capacity = int(kv * GIB // block) * KV_BLOCK_TOKENS if kv > 0 else 0
    # Decoding reads every weight once per token, except the input embedding (a row gather).
    decode_bytes = weight_bytes - (0 if arch.tie_word_embeddings else embedding_bytes)
    return _Memory(
        budget=budget,
        quant=quant,
        act_bytes=act_bytes,
        weight_bytes_total=weight_bytes,
        weights=weights,
        activation=activation,
        non_torch=non_torch,
        cuda_graph=graphs,
        kv=kv,
        kv_per_token=kv_per_token,
        kv_per_token_model=kv_per_token_model,
        capacity=capacity,
        batched_tokens=batched,
        num_seqs=seqs,
        decode_bytes=round(decode_bytes),
        tp_problem=_tp_problem(settings, arch, quant),
    )


def _judge(settings: FitSettings, memory: _Memory) -> tuple[Verdict, str | None]:
    if memory.tp_problem:
        return Verdict.DOES_NOT_FIT, "tensor-parallel"
    if memory.capacity < KV_BLOCK_TOKENS:
        return Verdict.DOES_NOT_FIT, "weights"
    if memory.capacity < settings.max_model_len:
        return Verdict.DOES_NOT_FIT, "kv-cache"
    spare = (memory.capacity - settings.max_model_len) * memory.kv_per_token / GIB
    if memory.capacity / settings.max_model_len < TIGHT_CONCURRENCY or spare < TIGHT_SPARE_GIB:
        return Verdict.TIGHT, None
    return Verdict.FITS, None


def _verdict_of(settings: FitSettings, arch: ModelArch) -> tuple[Verdict, _Memory]:
    memory = _measure(settings, arch)
    return _judge(settings, memory)[0], memory
