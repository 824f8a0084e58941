"""The fit estimate: known model/GPU outcomes, the published Qwen2.5-7B-on-L4 figures, and the sources
of config.json (local file, the Hub through a mock transport and a real local server, the HF cache,
the built-in table)."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from rpdeploy.cli import boundary
from rpdeploy.commands.check import check
from rpdeploy.config import Config, load_config
from rpdeploy.errors import ConfigError
from rpdeploy.output import RecordingReporter
from rpdeploy.preflight import gpus, models_table
from rpdeploy.preflight.arch import GIB, ModelArch, arch_from_config, parameter_breakdown
from rpdeploy.preflight.check import check_deployment, format_check
from rpdeploy.preflight.estimate import estimate, estimate_settings
from rpdeploy.preflight.memory import FitSettings, Verdict
from rpdeploy.preflight.sources import load_arch

TOKEN = "hf_not_a_real_token_4f9c2e"


def write_config(
    folder: Path,
    *,
    name: str = "Qwen/Qwen2.5-7B-Instruct",
    max_model_len: int = 8192,
    utilization: float = 0.9,
    gpu: str = "L4",
    gpu_count: int = 1,
    model_extra: str = "",
    endpoint_extra: str = "",
) -> Path:
    text = (
        "method: worker-vllm\n"
        "model:\n"
        f"  name: {name}\n"
        f"  max_model_len: {max_model_len}\n"
        f"  gpu_memory_utilization: {utilization}\n"
        f"{model_extra}"
        "endpoint:\n"
        "  name: fit-check-test\n"
        f"  gpu: {gpu}\n"
        f"  gpu_count: {gpu_count}\n"
        "  workers_min: 0\n"
        "  workers_max: 2\n"
        f"{endpoint_extra}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "deploy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def make_config(tmp_path: Path, **kwargs: Any) -> Config:
    return load_config(write_config(tmp_path, **kwargs))


def table_arch(name: str) -> ModelArch:
    found = models_table.find_builtin(name)
    assert found is not None, name
    return arch_from_config(found[1], name=found[0], source="built-in table")


def gpu(short: str) -> gpus.GpuType:
    found = gpus.find_gpu(short)
    assert found is not None
    return found


def no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected request to {request.url}")


# --- the architecture and its parameters -----------------------------------------------------

# Totals the Hub reports (safetensors.total) for the unquantized checkpoints, from a stored public
# table of them; Qwen2.5-14B's is its model card's 14.7 B, exactly what the architecture gives.
PUBLISHED_PARAMETERS = {
    "Qwen/Qwen2.5-0.5B-Instruct": 494_032_768,
    "Qwen/Qwen2.5-1.5B-Instruct": 1_543_714_304,
    "Qwen/Qwen2.5-3B-Instruct": 3_085_938_688,
    "Qwen/Qwen2.5-7B-Instruct": 7_615_616_512,
    "Qwen/Qwen2.5-14B-Instruct": 14_770_033_664,
    "Qwen/Qwen2.5-32B-Instruct": 32_763_876_352,
    "Qwen/Qwen2.5-72B-Instruct": 72_706_203_648,
    "meta-llama/Llama-3.1-8B-Instruct": 8_030_261_248,
    "mistralai/Mistral-7B-Instruct-v0.3": 7_248_023_552,
}


@pytest.mark.parametrize(("name", "published"), sorted(PUBLISHED_PARAMETERS.items()))
def test_parameter_count_from_the_architecture_matches_the_published_total(name: str, published: int) -> None:
    arch = table_arch(name)
    assert arch.parameter_count_source == "architecture"
    assert arch.parameter_count == published


def test_the_table_has_the_whole_qwen25_instruct_family_with_quantized_variants() -> None:
    for size in ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B"):
        base = table_arch(f"Qwen/Qwen2.5-{size}-Instruct")
        for suffix, method in (("AWQ", "awq"), ("GPTQ-Int4", "gptq")):
            quantized = table_arch(f"qwen/qwen2.5-{size}-instruct-{suffix.lower()}")  # case-insensitive
            assert quantized.quantization is not None
            assert (quantized.quantization.method, quantized.quantization.bits) == (method, 4)
            assert quantized.quantization.group_size == 128
            assert quantized.num_layers == base.num_layers
            assert quantized.torch_dtype == "float16"
    assert table_arch("Qwen/Qwen2.5-72B-Instruct-AWQ").intermediate_size == 29696


def test_reference_bf16_weights_are_the_published_safetensors_size(tmp_path: Path) -> None:
    fit = estimate(make_config(tmp_path), table_arch("Qwen/Qwen2.5-7B-Instruct"))
    # model.safetensors.index.json metadata.total_size of Qwen/Qwen2.5-7B-Instruct.
    assert fit.weight_bytes_total == 15_231_233_024
    assert fit.kv_bytes_per_token == 57_344  # 2 x 28 layers x 4 KV heads x 128 x 2 bytes = 56 KiB


def test_awq_weights_match_the_published_checkpoint_size(tmp_path: Path) -> None:
    # Qwen2.5-7B-Instruct-AWQ-shaped checkpoints are 4.48 GB + 1.09 GB of safetensors.
    fit = estimate(
        make_config(tmp_path, name="Qwen/Qwen2.5-7B-Instruct-AWQ"), table_arch("Qwen/Qwen2.5-7B-Instruct-AWQ")
    )
    assert fit.weight_bytes_total == pytest.approx(5.57e9, rel=0.01)
    assert fit.weight_bytes_total == 5_570_747_392


def test_arch_from_config_reads_text_config_and_quantization_and_names_missing_fields() -> None:
    wrapped = {"model_type": "llava", "text_config": dict(table_arch_config("Qwen/Qwen2.5-3B-Instruct"))}
    arch = arch_from_config(wrapped, name="acme/vlm", source="test")
    assert (arch.num_layers, arch.hidden_size, arch.tie_word_embeddings) == (36, 2048, True)

    bnb = dict(table_arch_config("Qwen/Qwen2.5-7B-Instruct"))
    bnb["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    quant = arch_from_config(bnb, name="x", source="test").quantization
    assert quant is not None and (quant.method, quant.bits) == ("bitsandbytes", 4)

    compressed = dict(bnb)
    compressed["quantization_config"] = {
        "quant_method": "compressed-tensors",
        "config_groups": {"group_0": {"weights": {"num_bits": 8, "group_size": None}}},
    }
    quant = arch_from_config(compressed, name="x", source="test").quantization
    assert quant is not None and (quant.method, quant.bits, quant.group_size) == ("compressed-tensors", 8, None)

    with pytest.raises(ValueError, match="num_hidden_layers"):
        arch_from_config({"hidden_size": 8, "num_attention_heads": 2, "vocab_size": 10}, name="x", source="t")


def table_arch_config(name: str) -> dict[str, Any]:
    found = models_table.find_builtin(name)
    assert found is not None
    return found[1]


# --- known outcomes ----------------------------------------------------------------------------


def test_reference_deployment_fits_with_kv_room_in_the_published_range(tmp_path: Path) -> None:
    fit = estimate(make_config(tmp_path), table_arch("Qwen/Qwen2.5-7B-Instruct"))
    assert fit.verdict is Verdict.FITS and fit.reason is None
    assert fit.budget_gib == pytest.approx(22.04 * 0.9)
    # vLLM logs "Loading model weights took 14.25 GB" for this model.
    assert fit.weights_gib == pytest.approx(14.25, rel=0.01)
    # reference/worker-vllm.md 4.3: 3.5-4.5 GiB of KV, 65k-85k tokens.
    assert 3.5 <= fit.kv_cache_gib <= 4.5
    assert 65_000 <= fit.kv_capacity_tokens <= 85_000
    assert fit.kv_capacity_tokens % 16 == 0
    assert fit.max_concurrency == pytest.approx(fit.kv_capacity_tokens / 8192)
    assert fit.max_concurrency > 8
    assert (fit.max_num_batched_tokens, fit.max_num_seqs) == (2048, 256)
    assert fit.fixes == () and fit.warnings == ()


def test_long_context_on_an_l4_fails_on_the_kv_cache(tmp_path: Path) -> None:
    fit = estimate(make_config(tmp_path, max_model_len=131072), table_arch("Qwen/Qwen2.5-7B-Instruct"))
    assert fit.verdict is Verdict.DOES_NOT_FIT and fit.reason == "kv-cache"
    assert fit.kv_capacity_tokens < 131072
    main = fit.main_fix
    assert main is not None
    # The KV cache holds ~77k tokens, but the model stops at 32,768 without rope scaling.
    assert (main.kind, main.setting, main.value, main.verdict) == (
        "max_model_len",
        "model.max_model_len",
        32768,
        Verdict.FITS,
    )
    kinds = {fix.kind: fix for fix in fit.fixes}
    assert kinds["kv_cache_dtype"].kv_capacity_tokens == pytest.approx(2 * fit.kv_capacity_tokens, abs=16)
    assert any("max_position_embeddings 32,768" in w for w in fit.warnings)


def test_kv_shortage_within_the_model_limit_suggests_a_length_and_a_utilisation(tmp_path: Path) -> None:
    config = make_config(tmp_path, max_model_len=32768, utilization=0.75)
    fit = estimate(config, table_arch("Qwen/Qwen2.5-7B-Instruct"))
    assert fit.verdict is Verdict.DOES_NOT_FIT and fit.reason == "kv-cache"
    by_kind = {fix.kind: fix for fix in fit.fixes}
    length = by_kind["max_model_len"]
    assert length.value == fit.kv_capacity_tokens // 1024 * 1024
    assert length.value < 32768 and length.verdict is not Verdict.DOES_NOT_FIT
    utilization = by_kind["gpu_memory_utilization"]
    assert utilization.value == 0.8  # 0.79 leaves 31.9k tokens, 0.80 leaves 36k
    settings = FitSettings.from_config(config)
    assert (
        estimate_settings(
            dataclasses.replace(settings, gpu_memory_utilization=0.79), table_arch("Qwen/Qwen2.5-7B-Instruct")
        ).verdict
        is Verdict.DOES_NOT_FIT
    )


def test_32b_in_bf16_fails_on_weights_and_points_at_a_bigger_gpu(tmp_path: Path) -> None:
    fit = estimate(make_config(tmp_path, name="Qwen/Qwen2.5-32B-Instruct"), table_arch("Qwen/Qwen2.5-32B-Instruct"))
    assert fit.verdict is Verdict.DOES_NOT_FIT and fit.reason == "weights"
    assert fit.weights_gib == pytest.approx(32_763_876_352 * 2 / GIB)
    assert fit.kv_capacity_tokens == 0
    by_kind = {fix.kind: fix for fix in fit.fixes}
    assert by_kind["gpu"].value == "A100"  # the cheapest pool with room: AMPERE_80 at $0.00076/s
    assert by_kind["gpu_count"].value == 4  # 2 x L4 is 30.5 GiB of weights each
    assert "gpu_memory_utilization" not in by_kind


def test_14b_needs_two_l4s_and_fits_on_two(tmp_path: Path) -> None:
    arch = table_arch("Qwen/Qwen2.5-14B-Instruct")
    one = estimate(make_config(tmp_path / "one", name="Qwen/Qwen2.5-14B-Instruct"), arch)
    assert one.verdict is Verdict.DOES_NOT_FIT and one.reason == "weights"
    count_fix = next(fix for fix in one.fixes if fix.kind == "gpu_count")
    assert (count_fix.setting, count_fix.value, count_fix.verdict) == ("endpoint.gpu_count", 2, Verdict.FITS)
    assert any(fix.kind == "model" and fix.value == "Qwen/Qwen2.5-14B-Instruct-AWQ" for fix in one.fixes)

    two = estimate(make_config(tmp_path / "two", name="Qwen/Qwen2.5-14B-Instruct", gpu_count=2), arch)
    assert two.verdict is Verdict.FITS
    assert two.weights_gib == pytest.approx(one.weights_gib / 2)
    assert two.kv_bytes_per_token == one.kv_bytes_per_token // 2  # 8 KV heads split 4 + 4
    assert two.kv_capacity_tokens == count_fix.kv_capacity_tokens


@pytest.mark.parametrize("name", ["Qwen/Qwen2.5-14B-Instruct-AWQ", "Qwen/Qwen2.5-14B-Instruct-GPTQ-Int4"])
def test_a_4bit_14b_fits_one_l4(tmp_path: Path, name: str) -> None:
    fit = estimate(make_config(tmp_path, name=name), table_arch(name))
    assert fit.verdict is Verdict.FITS
    assert fit.weights_gib == pytest.approx(9.3, abs=0.1)  # the AWQ release is 9.99 GB of safetensors
    assert fit.kv_bytes_per_token == 2 * 48 * 8 * 128 * 2


def test_72b_on_h100s(tmp_path: Path) -> None:
    arch = table_arch("Qwen/Qwen2.5-72B-Instruct")
    one = estimate(make_config(tmp_path / "1", name="Qwen/Qwen2.5-72B-Instruct", gpu="H100", max_model_len=32768), arch)
    assert one.verdict is Verdict.DOES_NOT_FIT and one.reason == "weights"
    assert (one.max_num_batched_tokens, one.max_num_seqs) == (8192, 1024)
    by_kind = {fix.kind: fix for fix in one.fixes}
    assert by_kind["gpu_count"].value == 4
    assert by_kind["model"].value == "Qwen/Qwen2.5-72B-Instruct-AWQ"

    three = estimate(
        make_config(tmp_path / "3", name="Qwen/Qwen2.5-72B-Instruct", gpu="H100", gpu_count=3, max_model_len=32768),
        arch,
    )
    assert three.verdict is Verdict.DOES_NOT_FIT and three.reason == "tensor-parallel"
    assert three.main_fix is not None and three.main_fix.value == 4

    four = estimate(
        make_config(tmp_path / "4", name="Qwen/Qwen2.5-72B-Instruct", gpu="H100", gpu_count=4, max_model_len=32768),
        arch,
    )
    assert four.verdict is Verdict.FITS
    assert four.kv_capacity_tokens > 4 * 32768

    awq = table_arch("Qwen/Qwen2.5-72B-Instruct-AWQ")
    alone = estimate(make_config(tmp_path / "awq", name=awq.name, gpu="H100", max_model_len=32768), awq)
    assert alone.verdict is Verdict.FITS


def test_a100_keeps_the_small_batching_defaults(tmp_path: Path) -> None:
    fit = estimate(
        make_config(tmp_path, name="meta-llama/Llama-3.1-8B-Instruct", gpu="A100", max_model_len=131072),
        table_arch("meta-llama/Llama-3.1-8B-Instruct"),
    )
    assert (fit.max_num_batched_tokens, fit.max_num_seqs) == (2048, 256)
    assert fit.verdict is Verdict.FITS  # 16 GiB of KV for 128k tokens at 128 KiB each
    assert fit.kv_bytes_per_token == 131_072
    assert fit.warnings == ()  # llama3 rope scaling: 131072 is the model's own limit


def test_tight_when_the_kv_cache_holds_barely_one_request(tmp_path: Path) -> None:
    fit = estimate(make_config(tmp_path, max_model_len=65536), table_arch("Qwen/Qwen2.5-7B-Instruct"))
    assert fit.verdict is Verdict.TIGHT
    assert 1 <= fit.max_concurrency < 2
    shorter = next(fix for fix in fit.fixes if fix.kind == "max_model_len")
    assert shorter.verdict is Verdict.FITS
    assert isinstance(shorter.value, int) and shorter.value * 2 <= fit.kv_capacity_tokens


def test_enforce_eager_and_fp8_kv_cache_change_what_they_should(tmp_path: Path) -> None:
    arch = table_arch("Qwen/Qwen2.5-7B-Instruct")
    base = estimate(make_config(tmp_path / "a"), arch)
    eager = estimate(make_config(tmp_path / "b", model_extra="  enforce_eager: true\n"), arch)
    assert eager.cuda_graph_gib == 0 and eager.kv_cache_gib == pytest.approx(base.kv_cache_gib + base.cuda_graph_gib)
    fp8 = estimate(make_config(tmp_path / "c", model_extra="  kv_cache_dtype: fp8\n"), arch)
    assert fp8.kv_bytes_per_token == base.kv_bytes_per_token // 2
    online = estimate(make_config(tmp_path / "d", model_extra="  quantization: fp8\n"), arch)
    breakdown = parameter_breakdown(arch)
    assert online.weight_bytes_total == breakdown.linear + 2 * (
        breakdown.embedding + breakdown.lm_head + breakdown.other
    )


def test_awq_requested_on_an_unquantized_checkpoint_is_warned(tmp_path: Path) -> None:
    fit = estimate(make_config(tmp_path, model_extra="  quantization: awq\n"), table_arch("Qwen/Qwen2.5-7B-Instruct"))
    assert any("needs a checkpoint quantized that way" in w for w in fit.warnings)


def test_tensor_parallel_needs_whole_quantization_groups() -> None:
    data = dict(table_arch_config("Qwen/Qwen2.5-72B-Instruct-AWQ"), intermediate_size=29568)
    unpadded = arch_from_config(data, name="unpadded", source="test")
    padded = table_arch("Qwen/Qwen2.5-72B-Instruct-AWQ")
    settings = FitSettings(gpu=gpu("H100"), gpu_count=8, max_model_len=8192)
    assert estimate_settings(settings, unpadded).reason == "tensor-parallel"  # 29568 / 8 = 3696, not 128 x n
    assert estimate_settings(settings, padded).verdict is Verdict.FITS


# --- where config.json comes from ---------------------------------------------------------------


def test_local_config_file_wins_and_needs_no_network(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    data = dict(table_arch_config("Qwen/Qwen2.5-3B-Instruct"))
    (tmp_path / "model" / "config.json").write_text(json.dumps(data), encoding="utf-8")
    config = make_config(tmp_path, name="acme/my-finetune", model_extra="  config_file: model/config.json\n")
    lookup = load_arch(config, environ={}, transport=httpx.MockTransport(no_network))
    assert lookup.arch is not None
    assert lookup.arch.source == "file model/config.json"
    assert lookup.arch.parameter_count == 3_085_938_688


def test_unreadable_config_file_is_a_config_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, model_extra="  config_file: missing/config.json\n")
    with pytest.raises(ConfigError, match=r"model\.config_file: cannot read"):
        load_arch(config, environ={}, transport=httpx.MockTransport(no_network))


class FakeHub:
    """The Hub's two routes, recording what it was sent."""

    def __init__(self, *, status: int = 200, parameters: int | None = None) -> None:
        self.status = status
        self.parameters = parameters
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "Access to model is restricted"})
        path = request.url.path
        if path.endswith("/config.json"):
            return httpx.Response(200, json=table_arch_config("Qwen/Qwen2.5-7B-Instruct"))
        if path.startswith("/api/models/"):
            body: dict[str, Any] = {"id": "x"}
            if self.parameters:
                body["safetensors"] = {"parameters": {"BF16": self.parameters}, "total": self.parameters}
            return httpx.Response(200, json=body)
        return httpx.Response(404)


def test_hub_config_and_parameter_count_with_the_token_as_bearer(tmp_path: Path) -> None:
    hub = FakeHub(parameters=7_615_616_512)
    config = make_config(tmp_path, name="acme/qwen-7b-clone", model_extra="  hf_token: HF_TOKEN\n  revision: v1.0\n")
    reporter = RecordingReporter()
    result = check_deployment(
        config, reporter=reporter, environ={"HF_TOKEN": TOKEN}, transport=httpx.MockTransport(hub)
    )
    assert [r.url.path for r in hub.requests] == [
        "/acme/qwen-7b-clone/resolve/v1.0/config.json",
        "/api/models/acme/qwen-7b-clone/revision/v1.0",
    ]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in hub.requests)
    assert result.arch is not None
    assert (result.arch.source, result.arch.parameter_count_source) == ("Hugging Face Hub", "hub")
    assert result.verdict == "fits"
    shown = "\n".join(format_check(result)) + json.dumps(dataclasses.asdict(result)) + reporter.text()
    assert TOKEN not in shown


def test_gated_model_without_token_falls_back_and_says_how_to_fix_it(tmp_path: Path) -> None:
    hub = FakeHub(status=401)
    config = make_config(tmp_path, name="meta-llama/Llama-3.1-8B-Instruct")
    lookup = load_arch(config, environ={}, transport=httpx.MockTransport(hub))
    assert len(hub.requests) == 1 and "authorization" not in hub.requests[0].headers
    assert lookup.arch is not None and lookup.arch.source == "built-in table"
    assert any("HTTP 401" in note and "model.hf_token" in note for note in lookup.notes)


def test_unknown_gated_model_is_unknown_not_blocking(tmp_path: Path) -> None:
    config = make_config(tmp_path, name="acme/private-model", model_extra="  hf_token: HF_TOKEN\n")
    result = check_deployment(
        config,
        reporter=RecordingReporter(),
        environ={"HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "empty-cache")},
        transport=httpx.MockTransport(FakeHub(status=403)),
    )
    assert (result.verdict, result.fit, result.blocking) == ("unknown", None, False)
    assert any("has no access" in w for w in result.warnings)
    assert any("model.config_file" in w for w in result.warnings)
    assert TOKEN not in "\n".join(format_check(result))


def test_hub_timeout_falls_back_to_the_table(tmp_path: Path) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    lookup = load_arch(make_config(tmp_path), environ={}, transport=httpx.MockTransport(slow))
    assert lookup.arch is not None and lookup.arch.source == "built-in table"
    assert any("did not answer" in note for note in lookup.notes)


def test_missing_token_variable_reads_the_hub_without_one(tmp_path: Path) -> None:
    hub = FakeHub()
    config = make_config(tmp_path, model_extra="  hf_token: HF_TOKEN\n")
    lookup = load_arch(config, environ={}, transport=httpx.MockTransport(hub))
    assert lookup.arch is not None and lookup.arch.source == "Hugging Face Hub"
    assert "authorization" not in hub.requests[0].headers
    assert any("HF_TOKEN is not set" in note for note in lookup.notes)


def write_cache(home: Path, name: str, data: dict[str, Any], commit: str = "a" * 40) -> Path:
    folder = home / "hub" / f"models--{name.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(data), encoding="utf-8")
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit, encoding="utf-8")
    return snapshot


def test_hf_cache_is_used_offline(tmp_path: Path) -> None:
    home = tmp_path / "hf-home"
    write_cache(home, "acme/tiny-qwen", table_arch_config("Qwen/Qwen2.5-0.5B-Instruct"))
    config = make_config(tmp_path / "project", name="acme/tiny-qwen")
    lookup = load_arch(config, offline=True, environ={"HF_HOME": str(home)}, transport=httpx.MockTransport(no_network))
    assert lookup.arch is not None
    assert lookup.arch.source == "HF cache aaaaaaaaaaaa"
    assert lookup.arch.parameter_count == 494_032_768


def test_hf_hub_offline_variable_means_offline(tmp_path: Path) -> None:
    lookup = load_arch(
        make_config(tmp_path), environ={"HF_HUB_OFFLINE": "1"}, transport=httpx.MockTransport(no_network)
    )
    assert lookup.arch is not None and lookup.arch.source == "built-in table"


class _HubHandler(BaseHTTPRequestHandler):
    seen_authorization: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).seen_authorization.append(self.headers.get("Authorization"))
        if self.path.endswith("/config.json"):
            body = json.dumps(table_arch_config("Qwen/Qwen2.5-7B-Instruct")).encode()
            self.send_response(200)
        else:
            body = b'{"error": "not here"}'
            self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def local_hub() -> Iterator[str]:
    """A real HTTP server standing in for huggingface.co (HF_ENDPOINT points at it)."""
    _HubHandler.seen_authorization = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- the command ---------------------------------------------------------------------------------


@pytest.fixture
def run_check(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`rpdeploy check` on a tiny app behind the real error boundary (until cli.py registers it)."""
    app = typer.Typer()
    app.command("check")(boundary(check))
    app.command("version")(lambda: None)  # a second command keeps "check" a subcommand
    runner = CliRunner()
    # This machine's own HF cache must not decide where the architecture comes from.
    isolated = {"HF_HOME": str(tmp_path_factory.mktemp("hf-home")), "HF_HUB_CACHE": None, "HF_ENDPOINT": None}

    def run(*args: str, expected_code: int = 0, env: dict[str, str] | None = None) -> Result:
        merged: dict[str, str | None] = {**isolated, **(env or {})}
        result = runner.invoke(app, ["check", *args], env=merged, catch_exceptions=False)
        assert result.exit_code == expected_code, f"{result.stdout}\n{result.stderr}"
        return result

    return run


def test_check_json_for_the_reference(run_check: Any, project: Path) -> None:
    write_config(project)
    result = run_check("--offline", "--json", "--requests-per-day", "1000")
    document = json.loads(result.stdout)
    assert document["ok"] is True
    check_doc = document["check"]
    assert (check_doc["verdict"], check_doc["blocking"]) == ("fits", False)
    assert check_doc["arch"]["source"] == "built-in table"
    assert check_doc["fit"]["kv_bytes_per_token"] == 57_344
    assert 65_000 <= check_doc["fit"]["kv_capacity_tokens"] <= 85_000
    assert check_doc["cost"]["price_per_gpu_second"] == 0.00019
    assert check_doc["cost"]["requests_per_day"] == 1000


def test_check_does_not_fit_exits_11_with_the_fix_as_hint(run_check: Any, project: Path) -> None:
    write_config(project, max_model_len=131072)
    human = run_check("--offline", expected_code=11)
    assert human.stdout.splitlines()[0].startswith("Qwen/Qwen2.5-7B-Instruct on 1 x NVIDIA L4")
    assert "Hint: lower model.max_model_len to 32,768" in human.stderr

    machine = run_check("--offline", "--json", expected_code=11)
    document = json.loads(machine.stdout)  # one document: the error, carrying the check
    assert document["ok"] is False
    error = document["error"]
    assert (error["type"], error["exit_code"]) == ("DoesNotFitError", 11)
    assert error["check"]["fit"]["reason"] == "kv-cache"
    assert error["check"]["fit"]["fixes"][0]["value"] == 32768


def test_check_tight_exits_0_with_a_warning_on_stderr(run_check: Any, project: Path) -> None:
    write_config(project, max_model_len=65536)
    result = run_check("--offline")
    assert "Warning: tight:" in result.stderr
    assert "tight:" in result.stdout


def test_check_sends_the_token_to_the_hub_and_never_prints_it(run_check: Any, project: Path, local_hub: str) -> None:
    write_config(project, name="acme/qwen-7b-clone", model_extra="  hf_token: HF_TOKEN\n")
    env = {"HF_ENDPOINT": local_hub, "HF_TOKEN": TOKEN, "HF_HOME": str(project / "no-cache")}
    human = run_check(env=env)
    machine = run_check("--json", env=env)
    assert _HubHandler.seen_authorization[0] == f"Bearer {TOKEN}"
    assert json.loads(machine.stdout)["check"]["arch"]["source"] == "Hugging Face Hub"
    for output in (human.stdout, human.stderr, machine.stdout, machine.stderr):
        assert TOKEN not in output


def test_check_help_has_examples(run_check: Any) -> None:
    result = run_check("--help")
    assert "rpdeploy check --requests-per-day 5000" in result.stdout
    assert "--offline" in result.stdout


def test_check_json_contract(run_check: Any, project: Path) -> None:
    """The --json document's shape is a contract: deploy's stage 7, plan and CI scripts read it."""
    write_config(project)
    document = json.loads(run_check("--offline", "--json").stdout)
    assert set(document) == {"ok", "check"}
    check_doc = document["check"]
    assert set(check_doc) == {
        "config", "model", "gpu", "gpu_count", "verdict", "arch", "fit", "cost", "warnings", "blocking"
    }  # fmt: skip
    assert {
        "verdict", "reason", "summary", "fixes", "warnings", "budget_gib", "weights_gib", "activation_gib",
        "non_torch_gib", "cuda_graph_gib", "kv_cache_gib", "kv_bytes_per_token", "kv_capacity_tokens",
        "max_model_len", "max_concurrency", "weight_bytes_total",
    } <= set(check_doc["fit"])  # fmt: skip
    assert {
        "price_per_gpu_second", "price_per_second", "price_per_hour", "price_source", "price_table_date",
        "floor_per_hour", "floor_per_month", "cold_start", "cold_start_cost", "latency_seconds", "request_cost",
        "daily_cost", "monthly_cost", "warnings",
    } <= set(check_doc["cost"])  # fmt: skip
    assert check_doc["fit"]["fixes"] == []
    assert check_doc["cost"]["cold_start"]["parts"][0][0] == "image pull"
