"""Will the model fit the GPU? A memory estimate for a vLLM deployment, made before anything is built.

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

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from rpdeploy import gpus, models_table
from rpdeploy.cost import RUNPOD_INIT_TIMEOUT_DEFAULT, ColdStartPlan, CostEstimate, estimate_cost, format_money
from rpdeploy.errors import ConfigError, PreflightError
from rpdeploy.output import NullReporter, Reporter

if TYPE_CHECKING:
    import httpx

    from rpdeploy.config import Config
    from rpdeploy.secrets import Secret

GIB = 1 << 30
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
#: Hugging Face Hub timeouts: an offline machine must fall back to the table in seconds.
HUB_CONNECT_TIMEOUT = 3.0
HUB_READ_TIMEOUT = 5.0
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"

_DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float8": 1}
_MARLIN = {"awq_marlin": "awq", "gptq_marlin": "gptq"}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class Verdict(str, Enum):
    FITS = "fits"
    TIGHT = "tight"
    DOES_NOT_FIT = "does-not-fit"


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


# --- where the architecture comes from ----------------------------------------------------


@dataclass(frozen=True)
class ArchLookup:
    """The architecture found (or None) and what happened on the way, for people."""

    arch: ModelArch | None
    notes: tuple[str, ...] = ()


def hf_cache_dir(environ: Mapping[str, str]) -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub resolves it."""
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if environ.get(key):
            return Path(environ[key]).expanduser()
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub"
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub"
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".cache" / "huggingface" / "hub"


def _read_json(path: Path) -> dict[str, Any]:
    """A config.json: at most 4 MiB and 64 levels (rpdeploy.limits); ValueError when it is not usable."""
    from rpdeploy.limits import MODEL_CONFIG_BYTES, MODEL_CONFIG_DEPTH, decode_text, loads_json, read_limited

    try:
        raw = read_limited(path, MODEL_CONFIG_BYTES, what="config.json")
        data = loads_json(decode_text(raw, what="config.json", path=path), depth=MODEL_CONFIG_DEPTH, what=str(path))
    except ConfigError as exc:
        raise ValueError(exc.message) from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _from_file(config: Config) -> ModelArch:
    assert config.model.config_file is not None
    path = Path(os.path.expanduser(config.model.config_file))
    if not path.is_absolute():
        path = config.base_dir / path
    try:
        data = _read_json(path)
        return arch_from_config(data, name=config.model.name, source=f"file {config.model.config_file}")
    except OSError as exc:
        raise ConfigError(f"model.config_file: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise ConfigError(f"model.config_file: {path} is not a usable config.json: {exc}") from None


def _from_cache(name: str, revision: str | None, environ: Mapping[str, str]) -> tuple[ModelArch | None, str]:
    folder = hf_cache_dir(environ) / f"models--{name.replace('/', '--')}"
    snapshots = folder / "snapshots"
    if not snapshots.is_dir():
        return None, ""
    wanted = revision or "main"
    commit = wanted if _COMMIT.match(wanted) else None
    ref = folder / "refs" / wanted
    if commit is None and ref.is_file():
        from rpdeploy.limits import read_limited

        try:  # a commit id: 40 hex characters (a ref file is never longer than a few lines)
            commit = read_limited(ref, 4096, what="").decode("utf-8", "replace").strip() or None
        except (OSError, ConfigError):
            commit = None
    candidates = [snapshots / commit / "config.json"] if commit else []
    note = ""
    if not candidates or not candidates[0].is_file():
        candidates = sorted(snapshots.glob("*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        if candidates and revision:
            note = f"the HF cache has no snapshot of revision {revision}; used the newest one"
    for path in candidates:
        try:
            arch = arch_from_config(_read_json(path), name=name, source=f"HF cache {path.parent.name[:12]}")
        except (OSError, ValueError):
            continue
        return arch, note
    return None, ""


def _hub_parameter_count(data: Any) -> int | None:
    if not isinstance(data, Mapping):
        return None
    info = data.get("safetensors")
    if not isinstance(info, Mapping):
        return None
    total = info.get("total")
    if isinstance(total, int) and total > 0:
        return total
    parameters = info.get("parameters")
    if isinstance(parameters, Mapping):
        counts = [v for v in parameters.values() if isinstance(v, int)]
        return sum(counts) or None
    return None


def _from_hub(
    name: str,
    revision: str | None,
    token: Secret | None,
    *,
    environ: Mapping[str, str],
    transport: httpx.BaseTransport | None,
    reporter: Reporter,
) -> tuple[ModelArch | None, str]:
    """config.json (and the parameter count) from the Hub; (None, why) when it cannot."""
    import httpx

    endpoint = (environ.get("HF_ENDPOINT") or DEFAULT_HUB_ENDPOINT).rstrip("/")
    rev = quote(revision or "main", safe="")
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token.reveal()}"
    timeout = httpx.Timeout(HUB_READ_TIMEOUT, connect=HUB_CONNECT_TIMEOUT)
    # httpx drops Authorization on a redirect to another host (the Hub's CDN), as it should.
    with httpx.Client(transport=transport, timeout=timeout, headers=headers, follow_redirects=True) as client:
        try:
            response = client.get(f"{endpoint}/{name}/resolve/{rev}/config.json")
        except httpx.TimeoutException:
            return None, f"the Hugging Face Hub did not answer within {HUB_CONNECT_TIMEOUT:.0f} s"
        except httpx.HTTPError as exc:
            return None, f"could not reach the Hugging Face Hub ({type(exc).__name__})"
        status = response.status_code
        if status in (401, 403):
            why = (
                "the token in model.hf_token has no access to it"
                if token is not None
                else "it is gated or private: set model.hf_token to the env var holding a token with access"
            )
            return None, f"the Hugging Face Hub refused {name} (HTTP {status}): {why}"
        if status == 404:
            return None, f"the Hugging Face Hub has no {name} at revision {revision or 'main'} (HTTP 404)"
        if status != 200:
            return None, f"the Hugging Face Hub answered HTTP {status} for {name}'s config.json"
        try:
            data = response.json()
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            arch = arch_from_config(data, name=name, source="Hugging Face Hub")
        except ValueError as exc:
            return None, f"{name}'s config.json on the Hub is not usable: {exc}"
        if arch.quantization is not None:
            return arch, ""
        api = f"{endpoint}/api/models/{name}" + (f"/revision/{rev}" if revision else "")
        try:
            info = client.get(api)
            count = _hub_parameter_count(info.json()) if info.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            reporter.debug(f"parameter count from the Hub API: {type(exc).__name__}; counting from config.json")
            count = None
    if count:
        return arch_from_config(data, name=name, source="Hugging Face Hub", parameter_count=count), ""
    return arch, ""


def load_arch(
    config: Config,
    *,
    reporter: Reporter | None = None,
    offline: bool = False,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ArchLookup:
    """The model's architecture from, in order: model.config_file, the Hub, the HF cache, the table.

    A ``model.config_file`` that cannot be read is a ConfigError (the user asked for it); every
    other source falls back to the next, and the notes say why. ``HF_HUB_OFFLINE=1`` counts as
    ``offline``. The token (``model.hf_token``) goes only into the Authorization header.
    """
    reporter = reporter or NullReporter()
    environ = os.environ if environ is None else environ
    name = config.model.name
    revision = config.model.revision
    if config.model.config_file:
        return ArchLookup(_from_file(config))

    notes: list[str] = []
    if name.startswith("/"):
        local = Path(name) / "config.json"
        if local.is_file():
            try:
                return ArchLookup(arch_from_config(_read_json(local), name=name, source=f"file {local}"))
            except (OSError, ValueError) as exc:
                notes.append(f"{local} is not a usable config.json: {exc}")
        notes.append(f"{name} is a path inside the image; set model.config_file to a copy of its config.json")
        return ArchLookup(None, tuple(notes))

    hub_note = ""
    offline = offline or environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if offline:
        hub_note = "the Hub was not asked (offline)"
    else:
        token: Secret | None = None
        if config.model.hf_token is not None:
            try:
                token = config.model.hf_token.resolve(base_dir=config.base_dir, environ=environ, field="model.hf_token")
            except ConfigError as exc:
                notes.append(f"{exc.message}; reading the Hub without a token")
        with reporter.status(f"Reading {name}'s config.json from the Hugging Face Hub"):
            arch, hub_note = _from_hub(name, revision, token, environ=environ, transport=transport, reporter=reporter)
        if arch is not None:
            return ArchLookup(arch, tuple(notes))
        reporter.debug(hub_note)

    arch, cache_note = _from_cache(name, revision, environ)
    if arch is not None:
        notes.append(f"architecture from the local HF cache: {hub_note}")
        if cache_note:
            notes.append(cache_note)
        return ArchLookup(arch, tuple(notes))

    found = models_table.find_builtin(name)
    if found is not None:
        key, data = found
        arch = arch_from_config(data, name=key, source="built-in table")
        pinned = f"; model.revision {revision} was not checked" if revision else ""
        notes.append(f"architecture from rpdeploy's built-in table: {hub_note}{pinned}")
        return ArchLookup(arch, tuple(notes))

    notes.append(
        f"no architecture for {name} ({hub_note}; not in the HF cache or the built-in table): "
        "set model.config_file to a copy of its config.json to check the fit"
    )
    return ArchLookup(None, tuple(notes))


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
class Fix:
    """One change to deploy.yaml and what the estimate says it gives."""

    kind: str  # max_model_len, gpu_memory_utilization, kv_cache_dtype, gpu, gpu_count, quantization, model
    setting: str  # the deploy.yaml key, e.g. "model.max_model_len"
    value: str | int | float
    message: str
    verdict: Verdict
    kv_capacity_tokens: int


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


def _round_length(tokens: float) -> int:
    """The largest multiple of 1024 (of 256 below 1024) not above ``tokens``; 0 below 256."""
    if tokens >= 1024:
        return int(tokens // 1024) * 1024
    if tokens >= 256:
        return int(tokens // 256) * 256
    return 0


def _weight_format(settings: FitSettings, memory: _Memory, arch: ModelArch) -> str:
    checkpoint = "float16" if arch.torch_dtype == "float16" else "bfloat16"  # float32 is served in 16 bits
    dtype = checkpoint if settings.dtype == "auto" else settings.dtype
    if memory.quant is None:
        return f"{dtype}, {memory.act_bytes} bytes/parameter"
    return (
        f"{memory.quant.describe()} linear layers ({memory.quant.bytes_per_param:.3f} bytes/parameter), "
        f"embeddings in {dtype}"
    )


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


# --- fit + cost ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """Everything `rpdeploy check` (and deploy's stage 7, and plan) says about a deploy.yaml."""

    config: str
    model: str
    gpu: str
    gpu_count: int
    verdict: str  # fits, tight, does-not-fit, or unknown (no architecture found)
    arch: ModelArch | None
    fit: FitEstimate | None
    cost: CostEstimate
    warnings: tuple[str, ...]
    blocking: bool  # true only for does-not-fit


class DoesNotFitError(PreflightError):
    """The estimate says vLLM cannot start with this deploy.yaml. Exit 11, the main fix as hint."""

    def __init__(self, result: CheckResult) -> None:
        assert result.fit is not None
        main = result.fit.main_fix
        hint = main.message if main else "use a larger GPU, more GPUs or a smaller model"
        super().__init__(
            f"{result.model} on {result.gpu_count} x {result.fit.gpu_short}: {result.fit.summary}", hint=hint
        )
        self.result = result

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["check"] = dataclasses.asdict(self.result)
        return data


def check_deployment(
    config: Config,
    *,
    reporter: Reporter,
    requests_per_day: int | None = None,
    latency: float | None = None,
    offline: bool = False,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    price_override: float | None = None,
    price_source: str = "RunPod API",
) -> CheckResult:
    """The fit estimate and the cost preview for ``config``. Prints nothing; see :func:`format_check`.

    ``price_override`` is the pool's price per GPU-second when the control plane gave one (its
    ``price_source`` is shown); otherwise the dated built-in table is used. ``transport`` is for
    tests (an ``httpx.MockTransport`` standing in for the Hub).
    """
    lookup = load_arch(config, reporter=reporter, offline=offline, environ=environ, transport=transport)
    fit = estimate(config, lookup.arch) if lookup.arch is not None else None
    cost = estimate_cost(
        config,
        weights_bytes=fit.weight_bytes_total if fit else None,
        decode_bytes_per_token=fit.decode_bytes_per_token if fit else None,
        requests_per_day=requests_per_day,
        latency=latency,
        price_override=price_override,
        price_source=price_source,
    )
    warnings = list(lookup.notes)
    if fit is not None:
        if fit.verdict is Verdict.TIGHT:
            warnings.append(f"{fit.summary}; vLLM may refuse to start if the estimate is off by a little")
        warnings.extend(fit.warnings)
    warnings.extend(cost.warnings)
    warnings.extend(_token_warnings(config))
    from rpdeploy.hub import token_problem

    gated = token_problem(config, offline=offline, environ=environ, transport=transport)
    if gated is not None:
        warnings.append(gated)
    return CheckResult(
        config=str(config.path),
        model=config.model.name,
        gpu=config.endpoint.gpu_type.id,
        gpu_count=config.endpoint.gpu_count,
        verdict=fit.verdict.value if fit else "unknown",
        arch=lookup.arch,
        fit=fit,
        cost=cost,
        warnings=tuple(warnings),
        blocking=fit is not None and fit.verdict is Verdict.DOES_NOT_FIT,
    )


def _token_warnings(config: Config) -> list[str]:
    from rpdeploy.config import HfTokenDelivery

    if config.model.hf_token is None or config.model.hf_token_delivery is not HfTokenDelivery.TEMPLATE_ENV:
        return []
    return [
        "model.hf_token_delivery: template-env puts the Hugging Face token in the template env in plain text, "
        "where RunPod's console shows it to everyone on the account; use it only if {{ RUNPOD_SECRET_... }} "
        "references do not resolve on your serverless workers (RunPod documents them for Pods only)"
    ]


def _gib(value: float) -> str:
    return f"{value:6.2f} GiB"


def _fit_lines(fit: FitEstimate) -> list[str]:
    params = f"{fit.parameter_count / 1e9:.2f} B parameters"
    lines = [
        f"  memory per GPU ({fit.gpu_short}: {fit.gpu_memory_gib:g} GiB as CUDA reports it):",
        f"    budget       {_gib(fit.budget_gib)}  ({fit.gpu_memory_gib:g} GiB x {fit.gpu_memory_utilization:.2f})",
        f"    weights      {_gib(fit.weights_gib)}  ({params}, {fit.weight_format}"
        + (f", split over {fit.gpu_count} GPUs)" if fit.gpu_count > 1 else ")"),
        f"    activations  {_gib(fit.activation_gib)}  (profiling at {fit.max_num_batched_tokens:,} batched tokens, "
        f"{fit.max_num_seqs} sequences)",
        f"    non-torch    {_gib(fit.non_torch_gib)}",
        f"    CUDA graphs  {_gib(fit.cuda_graph_gib)}" + ("  (enforce_eager)" if fit.cuda_graph_gib == 0 else ""),
        f"    KV cache     {_gib(fit.kv_cache_gib)}  ({fit.kv_capacity_tokens:,} tokens at "
        f"{fit.kv_bytes_per_token / 1024:g} KiB per token)",
        f"  {fit.summary}",
    ]
    if fit.fixes:
        lines.append("  fixes:" if fit.verdict is Verdict.DOES_NOT_FIT else "  for more room:")
        lines.extend(f"    - {fix.message}" for fix in fit.fixes)
    return lines


def _cost_lines(cost: CostEstimate) -> list[str]:
    money = format_money
    lines = [f"cost ({cost.price_source}):"]
    if cost.price_per_second is None:
        lines.append(f"  no price known for pool {cost.pool}")
    else:
        per_gpu = f" ({cost.gpu_count} x {money(cost.price_per_gpu_second or 0)})" if cost.gpu_count > 1 else ""
        lines.append(
            f"  {cost.gpu_short} in pool {cost.pool}: {money(cost.price_per_second)}/s per worker{per_gpu}"
            f" = {money(cost.price_per_hour or 0)}/hour while it runs"
        )
        if cost.workers_min:
            lines.append(
                f"  always on: workers_min {cost.workers_min} = {money(cost.floor_per_hour or 0)}/hour, "
                f"{money(cost.floor_per_month or 0)} per 30-day month with no traffic at all"
            )
        else:
            lines.append("  always on: nothing (workers_min 0: scales to zero)")
    cold = cost.cold_start
    parts = ", ".join(f"{label} {seconds:.0f} s" for label, seconds in cold.parts)
    cold_cost = f" = {money(cost.cold_start_cost)} each" if cost.cold_start_cost is not None else ""
    lines.append(
        f"  cold start (model.weights: {cold.strategy}): ~{cold.seconds:.0f} s ({parts}) + idle_timeout "
        f"{cost.idle_timeout} s billed{cold_cost}"
    )
    lines.extend(f"    {line}" for line in cold_start_lines(cost.cold_start_plan))
    if cost.latency_seconds is not None:
        each = f", {money(cost.request_cost)} each" if cost.request_cost is not None else ""
        if cost.latency_source == "estimate" and cost.decode_tokens_per_second:
            lines.append(
                f"  one request: {cost.output_tokens} tokens at ~{cost.decode_tokens_per_second:.0f} tokens/s "
                f"(memory-bandwidth bound) = {cost.latency_seconds:.1f} s{each}"
            )
        else:
            lines.append(f"  one request: {cost.latency_seconds:.1f} s (--latency){each}")
    if cost.requests_per_day is not None and cost.daily_cost is not None:
        line = (
            f"  {cost.requests_per_day:,} requests/day: {money(cost.daily_cost)}/day, "
            f"{money(cost.monthly_cost or 0)} per 30 days"
        )
        if cost.daily_cost_all_cold is not None:
            line += f" (up to {money(cost.daily_cost_all_cold)}/day if every request starts a worker)"
        lines.append(line)
    return lines


def cold_start_lines(plan: ColdStartPlan) -> list[str]:
    """The cold start's details: the other strategies, the fastest, RUNPOD_INIT_TIMEOUT, the figures."""
    chosen = plan.chosen
    lines = []
    if chosen.unbilled_seconds:
        lines.append(
            f"RunPod puts the cached model on the host before the worker starts (~{chosen.unbilled_seconds:.0f} s "
            "when no host has it yet, not billed)"
        )
    if chosen.first_seconds is not None:
        lines.append(f"the first start downloads the model onto the volume: ~{chosen.first_seconds:.0f} s")
    if chosen.flashboot:
        lines.append("FlashBoot can cut this to seconds on a host that ran the image recently")
    if not plan.weights_known:
        lines.append("the model's size is unknown: its download and load are left out")
    others = [o for o in plan.options if o.strategy != chosen.strategy]
    if others:
        shown = ", ".join(
            f"{o.strategy} ~{o.seconds:.0f} s" + (f" (first ~{o.first_seconds:.0f} s)" if o.first_seconds else "")
            for o in others
        )
        lines.append(f"other strategies: {shown}")
    fastest = plan.options[0]
    if fastest.strategy == chosen.strategy or fastest.seconds >= chosen.seconds:
        lines.append(f"recommended: {chosen.strategy} (the fastest here)")
    else:
        lines.append(
            f"recommended: model.weights: {fastest.strategy} (~{fastest.seconds:.0f} s instead of "
            f"~{chosen.seconds:.0f} s)"
        )
    limit = RUNPOD_INIT_TIMEOUT_DEFAULT
    if plan.init_timeout_source == "endpoint.init_timeout":
        lines.append(f"RUNPOD_INIT_TIMEOUT={plan.init_timeout} (endpoint.init_timeout)")
    elif plan.init_timeout is not None:
        lines.append(
            f"RUNPOD_INIT_TIMEOUT={plan.init_timeout}: the estimate (~{chosen.longest:.0f} s) is over RunPod's "
            f"{limit // 60}-minute limit, after which it marks a starting worker unhealthy"
        )
    else:
        lines.append(f"RUNPOD_INIT_TIMEOUT: not needed (under RunPod's {limit // 60}-minute limit)")
    lines.append("figures assumed:")
    lines.extend(f"  {figure.name}: {figure.value} ({figure.source})" for figure in plan.figures)
    return lines


def format_check(result: CheckResult) -> list[str]:
    """The check as lines for people (no colour, no markup): used by check, deploy stage 7 and plan."""
    fit = result.fit
    arch = result.arch
    head = f"{result.model} on {result.gpu_count} x {result.gpu}"
    if fit is not None:
        head += f", max_model_len {fit.max_model_len:,}, gpu_memory_utilization {fit.gpu_memory_utilization:.2f}"
    lines = [head]
    if fit is not None and arch is not None:
        lines.append(
            f"  architecture: {arch.source} ({arch.model_type}, {arch.num_layers} layers, "
            f"{arch.num_kv_heads} KV heads of {arch.head_dim})"
        )
        lines.extend(_fit_lines(fit))
    else:
        lines.append("  fit: unknown (no architecture found; see warnings)")
    lines.extend(_cost_lines(result.cost))
    if result.warnings:
        lines.append("warnings:")
        lines.extend(f"  - {warning}" for warning in result.warnings)
    return lines


__all__ = [
    "ArchLookup",
    "CheckResult",
    "DoesNotFitError",
    "FitEstimate",
    "FitSettings",
    "Fix",
    "ModelArch",
    "ParameterBreakdown",
    "QuantInfo",
    "Verdict",
    "arch_from_config",
    "check_deployment",
    "estimate",
    "estimate_settings",
    "format_check",
    "hf_cache_dir",
    "load_arch",
    "parameter_breakdown",
]
