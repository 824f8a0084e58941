"""The model's architecture, as the fit estimate reads it from a ``config.json``: layers, heads,
sizes, quantization, and the parameter count those imply (embeddings, attention, MLP).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


GIB = 1 << 30

_DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float8": 1}
_MARLIN = {"awq_marlin": "awq", "gptq_marlin": "gptq"}


# --- the model's architecture -------------------------------------------------------------


@dataclass(frozen=True)
class QuantInfo:
    """How a checkpoint's linear layers are quantized (from ``quantization_config``)."""

    method: str  # awq, gptq, fp8, bitsandbytes, compressed-tensors, ...
    bits: int
    group_size: int | None = None  # None: per channel or per tensor scales

    @property
    def bytes_per_param(self) -> float:
        """Bytes one quantized weight takes in GPU memory, scales and zero points included."""
        if self.method == "fp8":
            return 1.0
        if self.method == "bitsandbytes":
            # NF4 with one float32 absmax per 64 weights; int8 with per-row scales.
            return 0.5 + 4 / 64 if self.bits == 4 else 1.0
        base = self.bits / 8
        if self.group_size and self.group_size > 0:
            # One fp16 scale and one packed zero point per group of inputs (AWQ/GPTQ layout).
            return base + (2 + self.bits / 8) / self.group_size
        return base

    def describe(self) -> str:
        group = f", group {self.group_size}" if self.group_size else ""
        return f"{self.method} {self.bits}-bit{group}"


@dataclass(frozen=True)
class ModelArch:
    """What the estimate needs from a model's ``config.json``, and where it came from."""

    name: str
    source: str  # "file PATH", "Hugging Face Hub", "HF cache PATH", "built-in table"
    model_type: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    torch_dtype: str
    parameter_count: int
    parameter_count_source: str  # "hub" or "architecture"
    max_position_embeddings: int | None = None
    quantization: QuantInfo | None = None
    attention_bias: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    rope_scaling: bool = False

    @property
    def breakdown(self) -> ParameterBreakdown:
        return parameter_breakdown(self)


@dataclass(frozen=True)
class ParameterBreakdown:
    """Parameters by how vLLM stores them: only ``linear`` is ever quantized."""

    embedding: int
    lm_head: int
    linear: int  # attention and MLP projections of every layer
    other: int  # norms, biases, routers

    @property
    def total(self) -> int:
        return self.embedding + self.lm_head + self.linear + self.other


def parameter_breakdown(arch: ModelArch) -> ParameterBreakdown:
    """Parameter counts from the architecture (exact for Qwen2/Llama/Mistral-style decoders)."""
    h = arch.hidden_size
    q_dim = arch.num_attention_heads * arch.head_dim
    kv_dim = arch.num_kv_heads * arch.head_dim
    attention = h * q_dim + 2 * h * kv_dim + q_dim * h
    router = 0
    if arch.num_experts:
        expert_width = arch.moe_intermediate_size or arch.intermediate_size
        mlp = arch.num_experts * 3 * h * expert_width + 3 * h * arch.shared_expert_intermediate_size
        router = h * arch.num_experts + (h if arch.shared_expert_intermediate_size else 0)
    else:
        mlp = 3 * h * arch.intermediate_size  # gated MLP: gate, up, down
    bias = q_dim + 2 * kv_dim if arch.attention_bias else 0
    qk_norm = 2 * arch.head_dim if arch.model_type.startswith("qwen3") else 0
    per_layer_other = 2 * h + bias + qk_norm + router
    embedding = arch.vocab_size * h
    return ParameterBreakdown(
        embedding=embedding,
        lm_head=0 if arch.tie_word_embeddings else embedding,
        linear=arch.num_layers * (attention + mlp),
        other=arch.num_layers * per_layer_other + h,
    )


def _int(data: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    return None


def _quant_info(data: Any) -> QuantInfo | None:
    if not isinstance(data, Mapping):
        return None
    method = str(data.get("quant_method") or data.get("method") or "").lower()
    if not method:
        return None
    method = _MARLIN.get(method, method)
    if method == "bitsandbytes":
        return QuantInfo("bitsandbytes", 4 if data.get("load_in_4bit") else 8)
    if method == "fp8":
        return QuantInfo("fp8", 8)
    bits = _int(data, "bits", "w_bit", "weight_bits", "num_bits")
    group = _int(data, "group_size", "q_group_size")
    groups = data.get("config_groups")
    if method == "compressed-tensors" and isinstance(groups, Mapping):
        for group_config in groups.values():
            weights = group_config.get("weights") if isinstance(group_config, Mapping) else None
            if isinstance(weights, Mapping):
                bits = _int(weights, "num_bits") or bits
                group = _int(weights, "group_size") or group
                break
    if bits is None or bits >= 16:
        return None
    return QuantInfo(method, bits, group if group and group > 0 else None)


def arch_from_config(
    data: Mapping[str, Any], *, name: str, source: str, parameter_count: int | None = None
) -> ModelArch:
    """Read a ``config.json`` mapping. Raises ValueError naming missing fields.

    ``parameter_count`` is the Hub's count for unquantized checkpoints (for quantized ones the
    Hub counts packed int32 words, not weights, so the architecture's count is used).
    """
    fields: dict[str, Any] = dict(data)
    text = fields.get("text_config")
    if isinstance(text, Mapping) and "num_hidden_layers" not in fields:
        fields = {**fields, **text}  # multimodal wrappers keep the language model in text_config
    hidden = _int(fields, "hidden_size", "d_model", "n_embd")
    layers = _int(fields, "num_hidden_layers", "n_layer", "num_layers")
    heads = _int(fields, "num_attention_heads", "n_head")
    vocab = _int(fields, "vocab_size")
    intermediate = _int(fields, "intermediate_size", "ffn_hidden_size")
    moe_width = _int(fields, "moe_intermediate_size") or 0
    missing = [
        key
        for key, value in (
            ("hidden_size", hidden),
            ("num_hidden_layers", layers),
            ("num_attention_heads", heads),
            ("vocab_size", vocab),
            ("intermediate_size", intermediate or moe_width or None),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"config.json has no {', '.join(missing)}")
    assert hidden and layers and heads and vocab
    model_type = str(fields.get("model_type") or "unknown")
    kv_heads = _int(fields, "num_key_value_heads", "num_kv_heads") or heads
    head_dim = _int(fields, "head_dim") or hidden // heads
    quant = _quant_info(fields.get("quantization_config"))
    experts = _int(fields, "num_local_experts", "num_experts", "n_routed_experts") or 0
    shared = _int(fields, "shared_expert_intermediate_size") or 0
    if not shared and _int(fields, "n_shared_experts"):
        shared = (_int(fields, "n_shared_experts") or 0) * moe_width
    bias = fields.get("attention_bias", fields.get("qkv_bias"))
    dtype = str(fields.get("torch_dtype") or fields.get("dtype") or "bfloat16").removeprefix("torch.")
    arch = ModelArch(
        name=name,
        source=source,
        model_type=model_type,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate or moe_width,
        vocab_size=vocab,
        tie_word_embeddings=bool(fields.get("tie_word_embeddings", False)),
        torch_dtype=dtype,
        parameter_count=0,
        parameter_count_source="architecture",
        max_position_embeddings=_int(fields, "max_position_embeddings", "n_positions"),
        quantization=quant,
        attention_bias=bool(bias) if bias is not None else model_type in ("qwen2", "qwen2_moe"),
        num_experts=experts,
        experts_per_token=_int(fields, "num_experts_per_tok") or 0,
        moe_intermediate_size=moe_width,
        shared_expert_intermediate_size=shared,
        rope_scaling=bool(fields.get("rope_scaling")),
    )
    computed = parameter_breakdown(arch).total
    if parameter_count and quant is None:
        return replace(arch, parameter_count=parameter_count, parameter_count_source="hub")
    return replace(arch, parameter_count=computed)
