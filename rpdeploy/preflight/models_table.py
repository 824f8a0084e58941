"""A small built-in table of ``config.json`` values for common models: the fit check's last resort.

The fit check reads a model's architecture from a local file, the Hugging Face Hub or the local
HF cache first; this table is for a machine that has none of those (CI without network, a
gated model without a token). Each entry holds only the ``config.json`` fields the estimate
reads, with the values of the published file. Where an entry was checked against a stored copy
of the file rather than the Hub itself, the comment says which copy.

Quantized Qwen releases (``-AWQ``, ``-GPTQ-Int4``) share their base model's shape, are stored
in float16 and carry a ``quantization_config``; the 72B ones pad ``intermediate_size`` from
29568 to 29696 so that it splits into whole 128-wide quantization groups at tensor parallel 8.
"""

from __future__ import annotations

from typing import Any

_QWEN2_COMMON: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "torch_dtype": "bfloat16",
}

# AutoAWQ's GEMM format, as in the config.json of Qwen/Qwen2.5-72B-Instruct-AWQ (stored public copy
# in a planner's fixtures; the LDCC/Qwen2.5-72B-Instruct-ko-AWQ config on the Hub has the same block).
_AWQ: dict[str, Any] = {
    "bits": 4,
    "group_size": 128,
    "modules_to_not_convert": None,
    "quant_method": "awq",
    "version": "gemm",
    "zero_point": True,
}
# AutoGPTQ's format as Qwen publishes it for -GPTQ-Int4 (the shape of shuyuej/Qwen2-72B-Instruct-GPTQ's
# block on the Hub; Qwen's releases use desc_act false).
_GPTQ_INT4: dict[str, Any] = {
    "bits": 4,
    "damp_percent": 0.01,
    "desc_act": False,
    "group_size": 128,
    "quant_method": "gptq",
    "static_groups": False,
    "sym": True,
    "true_sequential": True,
}

_QWEN25_SHAPES: dict[str, dict[str, Any]] = {
    # huggingface.co/Qwen/Qwen2.5-0.5B-Instruct/blob/main/config.json; checked against the stored
    # copy of Qwen/Qwen2.5-0.5B's config (osllmai-community mirror): same shape, tied embeddings.
    "0.5B": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_attention_heads": 14,
        "num_hidden_layers": 24,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    # huggingface.co/Qwen/Qwen2.5-1.5B-Instruct/blob/main/config.json; checked against a stored
    # fixture quoting that file's fields.
    "1.5B": {
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_attention_heads": 12,
        "num_hidden_layers": 28,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    # huggingface.co/Qwen/Qwen2.5-3B-Instruct/blob/main/config.json; checked against the stored
    # unsloth/Qwen2.5-3B-Instruct copy (_name_or_path Qwen/Qwen2.5-3B-Instruct).
    "3B": {
        "hidden_size": 2048,
        "intermediate_size": 11008,
        "num_attention_heads": 16,
        "num_hidden_layers": 36,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    # huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/config.json; /work/shared/reference/
    # worker-vllm.md section 4.1 and the stored osllmai-community/Qwen2.5-7B-Instruct copy agree.
    "7B": {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_attention_heads": 28,
        "num_hidden_layers": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
    # huggingface.co/Qwen/Qwen2.5-14B-Instruct/blob/main/config.json; checked against the stored
    # jebish7/Qwen2.5-14B-Instruct copy ("Duplicate from Qwen/Qwen2.5-14B-Instruct").
    "14B": {
        "hidden_size": 5120,
        "intermediate_size": 13824,
        "num_attention_heads": 40,
        "num_hidden_layers": 48,
        "num_key_value_heads": 8,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
    # huggingface.co/Qwen/Qwen2.5-32B-Instruct/blob/main/config.json; checked against the stored
    # Qwen/Qwen2.5-32B config on the Hub and a copy with _name_or_path Qwen/Qwen2.5-32B-Instruct.
    "32B": {
        "hidden_size": 5120,
        "intermediate_size": 27648,
        "num_attention_heads": 40,
        "num_hidden_layers": 64,
        "num_key_value_heads": 8,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
    # huggingface.co/Qwen/Qwen2.5-72B-Instruct/blob/main/config.json; checked against a stored
    # verbatim copy of that file in a model report.
    "72B": {
        "hidden_size": 8192,
        "intermediate_size": 29568,
        "num_attention_heads": 64,
        "num_hidden_layers": 80,
        "num_key_value_heads": 8,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
    },
}


def _qwen25_entries() -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for size, shape in _QWEN25_SHAPES.items():
        base = {**_QWEN2_COMMON, **shape}
        entries[f"Qwen/Qwen2.5-{size}-Instruct"] = base
        quantized_shape = dict(base, torch_dtype="float16")
        if size == "72B":
            # The published 72B AWQ config has 29696; the GPTQ-Int4 release is assumed to carry the
            # same padding (same reason; only the AWQ file was checked).
            quantized_shape["intermediate_size"] = 29696
        entries[f"Qwen/Qwen2.5-{size}-Instruct-AWQ"] = dict(quantized_shape, quantization_config=dict(_AWQ))
        entries[f"Qwen/Qwen2.5-{size}-Instruct-GPTQ-Int4"] = dict(quantized_shape, quantization_config=dict(_GPTQ_INT4))
    return entries


_OTHERS: dict[str, dict[str, Any]] = {
    # huggingface.co/meta-llama/Llama-3.1-8B-Instruct/blob/main/config.json (gated); checked against
    # stored copies with _name_or_path meta-llama/Meta-Llama-3.1-8B-Instruct.
    "meta-llama/Llama-3.1-8B-Instruct": {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "mlp_bias": False,
        "head_dim": 128,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "max_position_embeddings": 131072,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 8,
        "rope_scaling": {
            "factor": 8.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "vocab_size": 128256,
    },
    # huggingface.co/mistralai/Mistral-7B-Instruct-v0.3/blob/c170c708c41dac9275d15a8fff4eca08d52bab71/config.json
    # (stored copy of the Hub page).
    "mistralai/Mistral-7B-Instruct-v0.3": {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "max_position_embeddings": 32768,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 8,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "vocab_size": 32768,
    },
}

#: Model id -> the config.json fields the fit estimate reads.
BUILTIN_CONFIGS: dict[str, dict[str, Any]] = {**_qwen25_entries(), **_OTHERS}

_BY_LOWER: dict[str, str] = {name.lower(): name for name in BUILTIN_CONFIGS}


def find_builtin(name: str) -> tuple[str, dict[str, Any]] | None:
    """The table's spelling of ``name`` (case-insensitive) and a copy of its config, or None."""
    key = _BY_LOWER.get(name.strip().lower())
    if key is None:
        return None
    return key, dict(BUILTIN_CONFIGS[key])


def builtin_names() -> list[str]:
    return sorted(BUILTIN_CONFIGS)


# --- gated models ---------------------------------------------------------------------------
# Models whose Hub page asks you to accept terms before it serves the files (a token with access
# is then needed): the answer when the Hub itself cannot be asked (rpdeploy.preflight.hub). Each is marked
# gated in its model card's front matter (the extra_gated_* keys the Hub reads).

#: Exact repository ids.
GATED: dict[str, str] = {
    # huggingface.co/meta-llama/Llama-3.1-8B-Instruct README.md: extra_gated_prompt (Llama 3.1 license).
    "meta-llama/Llama-3.1-8B-Instruct": "Llama 3.1 Community License",
    # huggingface.co/mistralai/Mistral-7B-Instruct-v0.3 README.md: extra_gated_description (stored copy
    # of the card's front matter, refs/pr/68).
    "mistralai/Mistral-7B-Instruct-v0.3": "Mistral AI's terms",
}
#: Repository id prefixes: organisations that publish every model of a family behind terms.
GATED_PREFIXES: tuple[str, ...] = (
    "meta-llama/",  # every Llama repo of Meta's organisation asks for its license first
    "google/gemma-",  # Gemma's terms of use (extra_gated_heading on each Gemma card)
)

_GATED_LOWER = {name.lower() for name in GATED}


def gated_in_table(name: str) -> bool:
    """Whether the built-in table knows ``name`` as gated (case-insensitive)."""
    key = name.strip().lower()
    return key in _GATED_LOWER or key.startswith(GATED_PREFIXES)
