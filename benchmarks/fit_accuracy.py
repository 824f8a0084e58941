"""Print rpdeploy's fit and speed estimates next to the published figures, with the error of each.

    python benchmarks/fit_accuracy.py

No network: the architectures come from the built-in table. The published figures and where
they come from (details in /work/shared/reference/worker-vllm.md, sections 4 and 5):

* Qwen2.5-7B-Instruct: 7.61 B parameters (model card); safetensors index total_size
  15,231,233,024 bytes (the reference quotes 15,230,967,808 from a third-party file list);
  "Loading model weights took 14.25 GB" in a vLLM log; 56 KiB of KV cache per token;
  8192 tokens fit an L4 at utilization 0.9 with roughly 3.5-4.5 GiB (65k-85k tokens) of KV.
* Qwen2.5-7B-Instruct-AWQ-shaped checkpoints: 4.48 GB + 1.09 GB of safetensors;
  Qwen2.5-7B-Instruct-GPTQ-Int4: 4 GB + 1.58 GB (Hub file listings).
* Decode at batch 1: Mistral-7B fp16 on an L4, 17.9 tok/s (vLLM 0.16.0, llm-inference-bench);
  Qwen2.5-7B-Instruct bf16 on an A100 80GB, 84.3 tok/s (Qwen's speed benchmark, vLLM 0.6.3).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Measure the checkout this script is in, not whichever rpdeploy happens to be installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rpdeploy.preflight import gpus, models_table
from rpdeploy.preflight.arch import ModelArch, arch_from_config
from rpdeploy.preflight.cost import decode_tokens_per_second, estimate_cold_start
from rpdeploy.preflight.estimate import estimate_settings
from rpdeploy.preflight.memory import FitSettings


def arch(name: str) -> ModelArch:
    found = models_table.find_builtin(name)
    assert found is not None, name
    return arch_from_config(found[1], name=found[0], source="built-in table")


def gpu(short: str) -> gpus.GpuType:
    found = gpus.find_gpu(short)
    assert found is not None, short
    return found


def error(ours: float, published: float) -> str:
    return f"{(ours - published) / published * 100:+.3f} %"


def main() -> None:
    rows: list[tuple[str, str, str, str]] = []
    qwen = arch("Qwen/Qwen2.5-7B-Instruct")
    reference = estimate_settings(FitSettings(gpu=gpu("L4"), max_model_len=8192, gpu_memory_utilization=0.9), qwen)

    rows.append(
        (
            "Qwen2.5-7B parameters",
            f"{qwen.parameter_count:,}",
            "7,615,616,512",
            error(qwen.parameter_count, 7_615_616_512),
        )
    )
    rows.append(
        (
            "bf16 weights, bytes (index total_size)",
            f"{reference.weight_bytes_total:,}",
            "15,231,233,024",
            error(reference.weight_bytes_total, 15_231_233_024),
        )
    )
    rows.append(
        (
            "bf16 weights, bytes (reference's figure)",
            f"{reference.weight_bytes_total:,}",
            "15,230,967,808",
            error(reference.weight_bytes_total, 15_230_967_808),
        )
    )
    rows.append(
        (
            "weights in GPU memory, GiB (vLLM log)",
            f"{reference.weights_gib:.3f}",
            "14.25",
            error(reference.weights_gib, 14.25),
        )
    )
    rows.append(
        (
            "KV cache per token, KiB",
            f"{reference.kv_bytes_per_token / 1024:g}",
            "56",
            error(reference.kv_bytes_per_token / 1024, 56),
        )
    )
    rows.append(
        (
            "max_model_len 8192 on one L4 at 0.9",
            reference.verdict.value,
            "fits",
            "same" if reference.verdict.value == "fits" else "DIFFERENT",
        )
    )
    inside = 65_000 <= reference.kv_capacity_tokens <= 85_000
    rows.append(
        (
            "KV capacity, tokens (65k-85k)",
            f"{reference.kv_capacity_tokens:,}",
            "75,000 (mid)",
            f"{error(reference.kv_capacity_tokens, 75_000)}{'' if inside else ' OUTSIDE the range'}",
        )
    )
    rows.append(
        ("KV cache, GiB (3.5-4.5)", f"{reference.kv_cache_gib:.2f}", "4.00 (mid)", error(reference.kv_cache_gib, 4.0))
    )

    for name, published in (("Qwen/Qwen2.5-7B-Instruct-AWQ", 5.57e9), ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", 5.58e9)):
        quantized = estimate_settings(FitSettings(gpu=gpu("L4")), arch(name))
        label = name.removeprefix("Qwen/Qwen2.5-7B-Instruct-")
        rows.append(
            (
                f"{label} checkpoint, GB",
                f"{quantized.weight_bytes_total / 1e9:.2f}",
                f"{published / 1e9:.2f}",
                error(quantized.weight_bytes_total, published),
            )
        )

    mistral = estimate_settings(FitSettings(gpu=gpu("L4")), arch("mistralai/Mistral-7B-Instruct-v0.3"))
    speed = decode_tokens_per_second(gpu("L4"), 1, mistral.decode_bytes_per_token) or 0.0
    rows.append(("Mistral-7B decode on L4, tok/s (v0.3 shape)", f"{speed:.1f}", "17.9", error(speed, 17.9)))
    a100 = gpu("A100-SXM")
    speed = decode_tokens_per_second(a100, 1, reference.decode_bytes_per_token) or 0.0
    rows.append(("Qwen2.5-7B decode on A100 80GB, tok/s", f"{speed:.1f}", "84.3", error(speed, 84.3)))
    cold = estimate_cold_start(reference.weight_bytes_total, bake=False, enforce_eager=False, flashboot=False)
    rows.append(
        ("cold start without FlashBoot, s (90-300)", f"{cold.seconds:.0f}", "195 (mid)", error(cold.seconds, 195))
    )

    width = max(len(row[0]) for row in rows)
    print(f"{'quantity':<{width}}  {'ours':>16}  {'published':>16}  error")
    for label, ours, published, err in rows:
        print(f"{label:<{width}}  {ours:>16}  {published:>16}  {err}")
    print(f"\nreference deployment: {reference.summary}")
    print(
        f"  budget {reference.budget_gib:.2f} GiB = weights {reference.weights_gib:.2f} + activations "
        f"{reference.activation_gib:.2f} + non-torch {reference.non_torch_gib:.2f} + CUDA graphs "
        f"{reference.cuda_graph_gib:.2f} + KV cache {reference.kv_cache_gib:.2f}"
    )


if __name__ == "__main__":
    main()
