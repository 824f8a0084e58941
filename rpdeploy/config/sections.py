"""The sections of deploy.yaml that describe what is deployed: ``model:``, ``image:``, ``endpoint:``, ``runpod:``.

Owns: their closed sets (:class:`Dtype`, :class:`Quantization`, :class:`WeightsSource`,
:class:`HfTokenDelivery`, :class:`TagPolicy`, :class:`ScalerType`, :class:`RunpodApi`, ...), the
syntax checks of their fields (repo ids, registries, tags, GPU types, CUDA versions), the env
vars rpdeploy manages itself (:data:`MANAGED_ENV`) and RunPod's default URLs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import Enum
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator

from rpdeploy import versions
from rpdeploy.config.refs import _CONTROL, ApiKeyRef, SecretRef, _Model, check_display_name, check_project_path
from rpdeploy.errors import ConfigError
from rpdeploy.limits import shorten
from rpdeploy.preflight import gpus

DEFAULT_API_URL = "https://api.runpod.io"
DEFAULT_ENDPOINT_URL = "https://api.runpod.ai/v2"

# A Hugging Face repo id ("Qwen/Qwen2.5-7B-Instruct") or a path inside the image ("/models/x").
_MODEL_NAME = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,95}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?|/[A-Za-z0-9._/-]{1,250})$"
)
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
# Registry host with optional port: docker.io, ghcr.io, 127.0.0.1:5000, my-registry.local
_REGISTRY = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*(?::[0-9]{1,5})?$")
# Docker repository path components: lowercase, separators . _ __ - (distribution spec).
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}$")
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$")
_CUDA = re.compile(r"^[0-9]{1,2}\.[0-9]$")


class Dtype(str, Enum):
    AUTO = "auto"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    FLOAT32 = "float32"


class Quantization(str, Enum):
    AWQ = "awq"
    AWQ_MARLIN = "awq_marlin"
    GPTQ = "gptq"
    GPTQ_MARLIN = "gptq_marlin"
    FP8 = "fp8"
    BITSANDBYTES = "bitsandbytes"
    COMPRESSED_TENSORS = "compressed-tensors"


class KvCacheDtype(str, Enum):
    AUTO = "auto"
    FP8 = "fp8"
    FP8_E4M3 = "fp8_e4m3"
    FP8_E5M2 = "fp8_e5m2"


class WeightsSource(str, Enum):
    """Where a new worker gets the model's weights (what its cold start waits for)."""

    #: RunPod's model cache: the endpoint names the model (modelReferences) and RunPod puts it on
    #: the host before the worker starts, under /runpod-volume/huggingface-cache/hub.
    CACHED = "cached"
    #: A network volume (endpoint.network_volume_id): the first worker downloads to it, later ones read it.
    NETWORK_VOLUME = "network-volume"
    #: Inside the image (methods 2 and 3, downloaded at build time).
    BAKE = "bake"
    #: From the Hugging Face Hub, at every cold start, onto the container disk.
    DOWNLOAD = "download"


class HfTokenDelivery(str, Enum):
    """How the Hugging Face token reaches the workers."""

    #: A RunPod account secret, referenced from the template env as {{ RUNPOD_SECRET_<name> }}.
    SECRET = "secret"
    #: The value itself in the template env (RunPod keeps and shows it): the way out if secret
    #: references turn out not to resolve on serverless workers.
    TEMPLATE_ENV = "template-env"


#: RunPod secret names: the docs give no rule ("a unique identifier"); their examples are
#: lowercase words with underscores, and a hyphen inside {{ RUNPOD_SECRET_... }} is unproven.
_SECRET_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
#: Where RunPod's model cache puts a model: the Hugging Face cache layout under this folder
#: (docs serverless/endpoints/model-caching.mdx, "Where cached models are stored").
RUNPOD_MODEL_CACHE = "/runpod-volume/huggingface-cache/hub"


class ModelConfig(_Model):
    """The model vLLM serves and how."""

    name: str = Field(
        description="Hugging Face repo id, e.g. Qwen/Qwen2.5-7B-Instruct.", examples=["Qwen/Qwen2.5-7B-Instruct"]
    )
    revision: str | None = Field(default=None, description="Branch, tag or commit of the model repo.")
    max_model_len: int = Field(
        default=8192, ge=16, le=1_048_576, description="Longest context (prompt + answer), tokens."
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0.0, le=1.0, description="Fraction of GPU memory vLLM may use (weights, activations, KV cache)."
    )
    dtype: Dtype = Field(default=Dtype.AUTO, description="Weight dtype; auto takes the model's own.")
    quantization: Quantization | None = Field(
        default=None, description="Quantization method, if the weights are quantized."
    )
    kv_cache_dtype: KvCacheDtype = Field(default=KvCacheDtype.AUTO, description="KV cache dtype; fp8 halves its size.")
    max_num_seqs: int | None = Field(default=None, ge=1, le=4096, description="Most sequences vLLM batches at once.")
    served_model_name: str | None = Field(default=None, description="Name clients send as `model` (default: name).")
    trust_remote_code: bool = Field(
        default=False, description="Run the model repo's own Python code (needed by a few models)."
    )
    enforce_eager: bool = Field(default=False, description="Skip CUDA graphs: faster start, slower decoding.")
    hf_token: SecretRef | None = Field(default=None, description="Hugging Face token for gated models (a reference).")
    hf_token_secret: str | None = Field(
        default=None,
        description="Name of the RunPod secret rpdeploy stores hf_token in (default: rpdeploy_<deployment>_hf_token).",
    )
    hf_token_delivery: HfTokenDelivery = Field(
        default=HfTokenDelivery.SECRET,
        description="secret: a RunPod secret the template env references; template-env: the value in the template "
        "env (visible in RunPod's console; only if secret references do not work for you).",
    )
    bake: bool = Field(default=False, description="Methods 2/3: download the model into the image at build time.")
    weights: WeightsSource | None = Field(
        default=None,
        description="Where workers get the weights at a cold start: cached (RunPod's model cache; the default for "
        "a Hugging Face model), network-volume (endpoint.network_volume_id), bake (in the image, methods 2/3; "
        "the default with bake: true) or download (from the Hub at every cold start).",
    )
    config_file: str | None = Field(
        default=None,
        description="Local copy of the model's config.json, for the fit check when the Hub is unreachable.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _MODEL_NAME.match(value) or ".." in value:
            raise ValueError(
                f"{shorten(value)} is not a Hugging Face repo id (like Qwen/Qwen2.5-7B-Instruct) or an absolute path"
            )
        return value

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str | None) -> str | None:
        if value is not None and (not _REVISION.match(value) or ".." in value):
            raise ValueError(f"{shorten(value)} is not a branch, tag or commit id")
        return value

    @field_validator("served_model_name")
    @classmethod
    def _served(cls, value: str | None) -> str | None:
        if value is not None and not _MODEL_NAME.match(value):
            raise ValueError(f"{shorten(value)} is not a valid model name (letters, digits, . _ - and one /)")
        return value

    @field_validator("hf_token_secret")
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        if value is not None and not _SECRET_NAME.match(value):
            raise ValueError(f"{value!r} is not a RunPod secret name rpdeploy uses: letters, digits and _ (at most 64)")
        return value

    @property
    def public_name(self) -> str:
        """The model id clients use."""
        return self.served_model_name or self.name

    @property
    def is_path(self) -> bool:
        """A folder inside the image rather than a Hugging Face repo id."""
        return self.name.startswith("/")

    @property
    def weights_source(self) -> WeightsSource:
        """``weights`` as given, else: in the image for bake: true or a path, RunPod's cache for a Hub model."""
        if self.weights is not None:
            return self.weights
        return WeightsSource.BAKE if self.bake or self.is_path else WeightsSource.CACHED

    @property
    def downloads_at_build(self) -> bool:
        """Does the image build download the model (bake: a Hub model put into the image)?"""
        return self.weights_source is WeightsSource.BAKE and not self.is_path

    @property
    def reference(self) -> str:
        """The model as RunPod's cache names it: ``https://huggingface.co/ORG/NAME:REF`` (runpodctl
        ``--model-reference``, cmd/serverless/create.go; RunPod answers the ref resolved to a commit)."""
        return f"https://huggingface.co/{self.name}:{self.revision or 'main'}"


class TagPolicy(str, Enum):
    GIT = "git"
    CONTENT = "content"


class RegistryCredentials(_Model):
    """Registry login, as references. Without it, rpdeploy uses your docker credentials."""

    username: SecretRef = Field(description="Registry user name (a reference).")
    password: SecretRef = Field(description="Registry password or access token (a reference).")


class ImageConfig(_Model):
    """Our own worker image (methods custom-handler and fastapi)."""

    registry: str = Field(
        default="docker.io", description="Registry host[:port], e.g. docker.io, ghcr.io, 127.0.0.1:5000."
    )
    repository: str = Field(description="Repository path in the registry, e.g. acme/qwen-worker.")
    tag: str | None = Field(default=None, description="Explicit tag; default: from tag_policy.")
    tag_policy: TagPolicy = Field(
        default=TagPolicy.GIT,
        description=(
            "git: the commit's short sha (a content hash outside git or when dirty); "
            "content: a hash of the build context."
        ),
    )
    base_image: str = Field(default=versions.VLLM_BASE_IMAGE, description="Base image with vLLM and CUDA inside.")
    platform: str = Field(default="linux/amd64", description="Target platform; RunPod runs linux/amd64.")
    worker_dir: str = Field(
        default="worker", description="Folder with handler.py and Dockerfile, relative to deploy.yaml."
    )
    credentials: RegistryCredentials | None = Field(default=None, description="Registry login from env vars or files.")

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str) -> str:
        value = value.strip()
        if value.startswith(("http://", "https://")):
            raise ValueError("give the registry host without a scheme, e.g. ghcr.io or 127.0.0.1:5000")
        if not _REGISTRY.match(value):
            raise ValueError(f"{shorten(value)} is not a registry host[:port] (lowercase, e.g. docker.io)")
        return value

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not _REPOSITORY.match(value) or len(value) > 255:
            raise ValueError(
                f"{shorten(value)} is not a repository path: lowercase letters, digits and . _ - separated by /, "
                "e.g. acme/qwen-worker"
            )
        return value

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        if value is not None and not _TAG.match(value):
            raise ValueError(f"{shorten(value)} is not a valid tag (letters, digits, _ . -; at most 128)")
        if value == "latest":
            raise ValueError("'latest' is mutable; use an immutable tag (or leave tag unset)")
        return value

    @field_validator("base_image")
    @classmethod
    def _base(cls, value: str) -> str:
        if not _IMAGE_REF.match(value):
            raise ValueError(f"{shorten(value)} is not an image reference")
        return value

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str) -> str:
        if not _PLATFORM.match(value):
            raise ValueError(f"{shorten(value)} is not a platform like linux/amd64")
        return value

    @field_validator("worker_dir")
    @classmethod
    def _worker_dir(cls, value: str) -> str:
        if not value.strip() or _CONTROL.search(value):
            raise ValueError("must be a folder path")
        return check_project_path(value)

    @property
    def name(self) -> str:
        """registry/repository as docker names it (Docker Hub needs no host prefix)."""
        if self.registry in ("docker.io", "index.docker.io", "registry-1.docker.io"):
            return self.repository
        return f"{self.registry}/{self.repository}"


class ScalerType(str, Enum):
    QUEUE_DELAY = "queue-delay"
    REQUEST_COUNT = "request-count"

    @property
    def api_value(self) -> str:
        return self.value.upper().replace("-", "_")


# Env vars rpdeploy sets from model:/endpoint: itself; a second value in endpoint.env would
# silently fight with them.
MANAGED_ENV = frozenset(
    {
        "MODEL_NAME",
        "MODEL_REVISION",
        "MAX_MODEL_LEN",
        "GPU_MEMORY_UTILIZATION",
        "DTYPE",
        "QUANTIZATION",
        "KV_CACHE_DTYPE",
        "MAX_NUM_SEQS",
        "TENSOR_PARALLEL_SIZE",
        "OPENAI_SERVED_MODEL_NAME_OVERRIDE",
        "SERVED_MODEL_NAME",
        "TRUST_REMOTE_CODE",
        "ENFORCE_EAGER",
        "MAX_CONCURRENCY",
        "HF_TOKEN",
        "RPDEPLOY_DEPLOYMENT",  # the ownership mark (rpdeploy.runpod.deployment.MARK_KEY)
        "RPDEPLOY_RELEASE",  # the release id the workers answer with (rpdeploy.runpod.release)
        "HUGGING_FACE_HUB_TOKEN",  # model.hf_token (see rpdeploy.runpod.deployment.HF_TOKEN_ENV)
        "RUNPOD_INIT_TIMEOUT",  # endpoint.init_timeout, or rpdeploy's cold-start estimate
        "MODEL_PATH",  # model.weights: bake
        "HF_HUB_CACHE",  # model.weights: network-volume (methods 2 and 3)
    }
)

EnvValue = Annotated[
    str | SecretRef,
    BeforeValidator(
        lambda v: str(v).lower() if isinstance(v, bool) else (str(v) if isinstance(v, (int, float)) else v)
    ),
]


class EndpointConfig(_Model):
    """The RunPod Serverless endpoint."""

    name: str = Field(
        min_length=3, max_length=180, description="Endpoint name on RunPod (found by this name on re-runs)."
    )
    gpu: str = Field(
        default="L4", description="GPU type: a short name like L4, A100, H100, or RunPod's id ('NVIDIA L4')."
    )
    gpu_count: int = Field(default=1, ge=1, le=8, description="GPUs per worker (vLLM tensor parallelism).")
    workers_min: int = Field(default=0, ge=0, le=100, description="Always-on workers (billed even when idle).")
    workers_max: int = Field(default=2, ge=0, le=100, description="Most workers RunPod may start.")
    idle_timeout: int = Field(default=5, ge=1, le=3600, description="Seconds an idle worker stays up (billed).")
    flashboot: bool = Field(default=True, description="RunPod FlashBoot: much faster cold starts.")
    execution_timeout: int = Field(
        default=600, ge=5, le=604800, description="Seconds a job may run before RunPod stops it."
    )
    container_disk_gb: int = Field(
        default=50, ge=5, le=2000, description="Container disk; must hold the model when downloaded at start."
    )
    scaler_type: ScalerType = Field(default=ScalerType.QUEUE_DELAY, description="What triggers scaling up.")
    scaler_value: int = Field(default=4, ge=1, le=1000, description="Seconds of queue delay, or requests per worker.")
    max_concurrency: int = Field(
        default=30, ge=1, le=1000, description="Jobs one worker handles at once (MAX_CONCURRENCY)."
    )
    locations: list[str] = Field(default_factory=list, description="Data centres to run in; empty means any.")
    allowed_cuda_versions: list[str] | None = Field(
        default=None, description="CUDA versions the host must support; default: what the image needs."
    )
    template_name: str | None = Field(
        default=None,
        min_length=3,
        max_length=191,
        description="Name of the RunPod template (default: '<name>-template').",
    )
    env: dict[str, EnvValue] = Field(
        default_factory=dict, description="Extra env vars for the workers; secrets as {env: NAME} or {file: PATH}."
    )
    network_volume_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Network volume mounted at /runpod-volume (model.weights: network-volume); the model lives on it.",
    )
    init_timeout: int | None = Field(
        default=None,
        ge=60,
        le=86400,
        description="Seconds a worker may take to start before RunPod marks it unhealthy (RUNPOD_INIT_TIMEOUT; "
        "RunPod's default is 7 minutes). Default: set by rpdeploy when its cold-start estimate is longer.",
    )

    @field_validator("name", "template_name")
    @classmethod
    def _display_name(cls, value: str | None) -> str | None:
        return None if value is None else check_display_name(value)

    @field_validator("gpu")
    @classmethod
    def _gpu(cls, value: str) -> str:
        gpu = gpus.find_gpu(value)
        if gpu is None:
            guess = gpus.suggest_gpu(value)
            hint = f" (did you mean {guess!r}?)" if guess else ""
            raise ValueError(f"{shorten(value)} is not a RunPod GPU type{hint}; valid: {', '.join(gpus.gpu_choices())}")
        return gpu.short

    @field_validator("allowed_cuda_versions")
    @classmethod
    def _cuda(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for item in value:
                if not _CUDA.match(item):
                    raise ValueError(f"{shorten(item)} is not a CUDA version like 12.8")
            if not value:
                raise ValueError("give at least one version, or leave it unset")
        return value

    @property
    def gpu_type(self) -> gpus.GpuType:
        gpu = gpus.find_gpu(self.gpu)
        assert gpu is not None  # validated
        return gpu

    @property
    def template(self) -> str:
        return self.template_name or f"{self.name}-template"


class RunpodApi(str, Enum):
    """Which of RunPod's control-plane APIs rpdeploy speaks (rpdeploy.runpod.controlplane / rest)."""

    GRAPHQL = "graphql"
    REST = "rest"


#: Picks runpod.api when deploy.yaml leaves it out (CI runs the same project on both).
RUNPOD_API_ENV = "RPDEPLOY_RUNPOD_API"


class RunpodConfig(_Model):
    """How to reach RunPod."""

    api: RunpodApi | None = Field(
        default=None,
        description=f"Control-plane API: graphql (default) or rest (RunPod's REST API v2); else env {RUNPOD_API_ENV}. "
        "RunPod retires GraphQL in early 2027.",
    )

    api_key: ApiKeyRef = Field(
        default_factory=lambda: ApiKeyRef(env="RUNPOD_API_KEY"),
        description="Where the RunPod API key is (default: env RUNPOD_API_KEY).",
    )
    api_url: str | None = Field(
        default=None, description=f"Control-plane base URL (default: env RUNPOD_API_BASE_URL, else {DEFAULT_API_URL})."
    )
    endpoint_url: str | None = Field(
        default=None,
        description=f"Invoke API base URL (default: env RUNPOD_ENDPOINT_BASE_URL, else {DEFAULT_ENDPOINT_URL}).",
    )

    @field_validator("api_url", "endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/$.?#][^\s]*$", value):
            raise ValueError(f"{shorten(value)} is not an http(s) URL")
        return value.rstrip("/") if value else value

    def resolved_api(self, environ: Mapping[str, str] | None = None) -> RunpodApi:
        """runpod.api, else RPDEPLOY_RUNPOD_API, else graphql (as the design says, while RunPod serves it)."""
        if self.api is not None:
            return self.api
        environ = os.environ if environ is None else environ
        value = environ.get(RUNPOD_API_ENV, "").strip().lower()
        if not value:
            return RunpodApi.GRAPHQL
        try:
            return RunpodApi(value)
        except ValueError:
            valid = ", ".join(a.value for a in RunpodApi)
            raise ConfigError(
                f"{RUNPOD_API_ENV}={shorten(value)} is not a RunPod API rpdeploy speaks; valid: {valid}",
                hint=f"unset {RUNPOD_API_ENV}, or set runpod.api in deploy.yaml",
            ) from None

    def resolved_api_url(self, environ: Mapping[str, str] | None = None) -> str:
        environ = os.environ if environ is None else environ
        return (self.api_url or environ.get("RUNPOD_API_BASE_URL") or DEFAULT_API_URL).rstrip("/")

    def resolved_endpoint_url(self, environ: Mapping[str, str] | None = None) -> str:
        environ = os.environ if environ is None else environ
        return (self.endpoint_url or environ.get("RUNPOD_ENDPOINT_BASE_URL") or DEFAULT_ENDPOINT_URL).rstrip("/")
