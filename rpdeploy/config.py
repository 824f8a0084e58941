"""deploy.yaml: the pydantic model and a loader that points at ``deploy.yaml:LINE:COL``.

Unknown keys are errors (a typo must never become a silent default), closed sets are enums
whose errors list the valid values, and secrets are references (an env var name or a file),
never values. :func:`load_config` reports *every* problem at once, each with its line,
column and field path, before anything slow runs.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shlex
import unicodedata
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from rpdeploy import versions
from rpdeploy.errors import AuthError, ConfigError, ConfigIssue, Location
from rpdeploy.limits import DEPLOY_YAML, compose_yaml, decode_text, read_limited, read_secret_file, shorten
from rpdeploy.methods import Method
from rpdeploy.preflight import gpus
from rpdeploy.runpod.models import SECRET_REFERENCE
from rpdeploy.secrets import SECRET_NAME, Secret

DEFAULT_CONFIG = Path("deploy.yaml")
DEFAULT_API_URL = "https://api.runpod.io"
DEFAULT_ENDPOINT_URL = "https://api.runpod.ai/v2"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UPPER_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
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
_HOST = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\])(?::(?P<port>[0-9]{1,5}))?$"
)
# systemd's unit name characters (src/basic/unit-name.c, VALID_CHARS plus the instance '@'),
# without the backslash of its \xNN escapes: the name also ends up in file paths.
_SERVICE = re.compile(r"^[A-Za-z0-9:_.@-]+$")
#: The longest unit name systemd takes is 255 characters, ".service" included (UNIT_NAME_MAX).
_UNIT_NAME_MAX = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CUDA = re.compile(r"^[0-9]{1,2}\.[0-9]$")


#: Prefixes of credentials people paste where the NAME of a variable belongs, and what each is.
#: RunPod API keys start with rpa_ (docs public-endpoints/ai-coding-tools.mdx: "rpa_YOUR_API_KEY"),
#: Hugging Face user tokens with hf_, GitHub tokens with ghp_/gho_/ghs_/ghu_/github_pat_.
_TOKEN_PREFIXES = (
    ("rpa_", "a RunPod API key"),
    ("hf_", "a Hugging Face token"),
    ("github_pat_", "a GitHub token"),
    ("ghp_", "a GitHub token"),
    ("gho_", "a GitHub token"),
    ("ghs_", "a GitHub token"),
    ("ghu_", "a GitHub token"),
)
# A variable name is words joined by "_"; 32+ characters of letters and digits without one is a key.
_RANDOM_LOOKING = re.compile(r"^(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{32,}$")


def token_kind(name: str) -> str | None:
    """What credential ``name`` looks like ("a RunPod API key"), or None for a plausible variable name."""
    lower = name.lower()
    for prefix, kind in _TOKEN_PREFIXES:
        if lower.startswith(prefix) and len(name) >= len(prefix) + 16:
            return kind
    return "a key" if _RANDOM_LOOKING.match(name) else None


def check_service_name(value: str) -> str:
    """``backend.service`` as systemd takes it for a service to restart, minus what rpdeploy cannot use safely.

    systemd (man systemd.unit; src/basic/unit-name.c ``unit_name_is_valid``): ASCII letters,
    digits and ``: _ . - \\``, an optional ``@instance``, a non-empty prefix, 255 characters
    at most with the ``.service`` suffix; ``name@.service`` is a template, which cannot be
    restarted. rpdeploy also refuses a leading ``-`` (systemctl would read it as an option),
    a leading ``.`` or ``..`` anywhere (the name is part of ``/opt/<service>/.env`` and the
    drop-in's path) and the backslash of systemd's ``\\xNN`` escapes.
    """
    name = value.removesuffix(".service")
    if not name or not _SERVICE.match(name):
        raise ValueError(
            f"{shorten(value)} is not a systemd service name (letters, digits and : _ . - @, like spring-boot)"
        )
    if len(name) + len(".service") > _UNIT_NAME_MAX:
        raise ValueError(f"a systemd unit name has at most {_UNIT_NAME_MAX} characters, .service included")
    if name.startswith(("-", ".", "@")) or ".." in name:
        raise ValueError(f"{shorten(value)}: a service name may not start with '-', '.' or '@', nor contain '..'")
    if name.endswith("@"):
        raise ValueError(f"{shorten(value)} is a template unit; name an instance (like app@1)")
    return name


# Unicode categories a display name must not contain: control, format (bidi overrides,
# zero-width), surrogate, private-use and unassigned characters, and line/paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def check_display_name(value: str) -> str:
    """An endpoint or template name: printable text only.

    RunPod takes 3 to 191 characters (runpodctl AGENTS.md, REST v1 ``name`` maxLength) and
    documents no character set (REST v2's OpenAPI: ``minLength: 1`` only), so letters of any
    script are fine. rpdeploy refuses what could disguise the name where it is shown (a
    terminal, a CI job summary): control characters (ESC, BEL, newlines), bidi overrides and
    other invisible format characters, and whitespace other than a plain space or at either end.
    """
    for char in value:
        if unicodedata.category(char) in _HIDDEN_CATEGORIES or (char.isspace() and char != " "):
            raise ValueError(f"contains the invisible or control character U+{ord(char):04X}; use printable text")
    if value != value.strip():
        raise ValueError("must not start or end with a space")
    return value


def check_project_path(value: str) -> str:
    """A folder deploy.yaml names for rpdeploy to write into: relative, inside the project, not ours."""
    text = value.replace("\\", "/")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if text.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", text) or ".." in parts:
        raise ValueError(
            f"{shorten(value)} must be a folder inside the project: a relative path without '..' (like worker)"
        )
    if parts and parts[0] in (".rpdeploy", ".git"):
        raise ValueError(f"{shorten(value)} is rpdeploy's or git's own folder; pick another (like worker)")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, validate_default=True)


# --- secrets -----------------------------------------------------------------------------


class SecretRef(_Model):
    """Where a secret lives: ``{env: NAME}``, ``{file: PATH}``, or the shorthand ``NAME``."""

    env: str | None = Field(default=None, description="Name of the environment variable holding the secret.")
    file: str | None = Field(default=None, description="Path of a file whose content is the secret.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("env:"):
                return {"env": text[4:].strip()}
            if text.startswith("file:"):
                return {"file": text[5:].strip()}
            if _UPPER_ENV_NAME.match(text):
                return {"env": text}
            raise ValueError(
                "this looks like a literal secret; deploy.yaml holds only references: "
                "write the NAME of an environment variable (e.g. HF_TOKEN), {env: NAME} or {file: PATH}"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env: or file:")
        if self.env is not None and not _ENV_NAME.match(self.env):
            raise ValueError(f"{shorten(self.env)} is not a valid environment variable name")
        if self.env is not None and (kind := token_kind(self.env)):
            # Never echoed: it is most likely the secret itself.
            raise ValueError(
                f"env: takes the NAME of an environment variable, and this looks like {kind} itself; write "
                "{env: NAME} (e.g. RUNPOD_API_KEY) and export NAME=... outside deploy.yaml"
            )
        if self.file is not None and not self.file.strip():
            raise ValueError("file: must not be empty")
        return self

    def describe(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"

    def resolve(self, *, base_dir: Path, environ: Mapping[str, str] | None = None, field: str = "") -> Secret:
        """Read the secret. Raises ConfigError naming the reference (never the value)."""
        environ = os.environ if environ is None else environ
        label = f"{field} ({self.describe()})" if field else self.describe()
        if self.env is not None:
            value = environ.get(self.env, "")
            if not value:
                raise ConfigError(
                    f"{label}: environment variable {self.env} is not set",
                    hint=f"export {self.env}=... (in CI, from the pipeline's secret store)",
                )
            return Secret(value, f"env:{self.env}")
        assert self.file is not None
        path = Path(os.path.expanduser(self.file))
        if not path.is_absolute():
            path = base_dir / path
        return Secret(read_secret_file(path, label=label), f"file:{self.file}")


class ApiKeyRef(SecretRef):
    """Where the RunPod API key is. A key that is not there is an AuthError (exit 8), as the
    exit-code table says for a missing key, not a config error."""

    def resolve(self, *, base_dir: Path, environ: Mapping[str, str] | None = None, field: str = "") -> Secret:
        try:
            return super().resolve(base_dir=base_dir, environ=environ, field=field)
        except ConfigError as exc:
            raise AuthError(exc.message, hint=exc.hint) from None


def _secret_ref(default_env: str) -> Any:
    return Field(default_factory=lambda: SecretRef(env=default_env))


# --- sections -----------------------------------------------------------------------------


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


class BackendMode(str, Enum):
    DOTENV = "dotenv"
    SYSTEMD = "systemd"


class BackendEnvNames(_Model):
    """Names of the env vars the backend reads (Spring's relaxed binding of runpod.*)."""

    endpoint_url: str = Field(default="RUNPOD_ENDPOINT_URL")
    api_key: str = Field(default="RUNPOD_API_KEY")
    endpoint_id: str = Field(default="RUNPOD_ENDPOINT_ID")

    @field_validator("endpoint_url", "api_key", "endpoint_id")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(f"{shorten(value)} is not a valid environment variable name")
        return value


class HttpMethod(str, Enum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class SendFrom(str, Enum):
    HOST = "host"
    LOCAL = "local"


# Header names that carry credentials: their values must come from env/file references.
_CREDENTIAL_HEADER = re.compile(r"AUTH|KEY|TOKEN|SECRET|PASS|COOKIE|SESSION|SIGN|CRED", re.IGNORECASE)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_JSON_PATH = re.compile(r"^(?:\$\.?)?(?:[A-Za-z_][\w-]*|\[\d+\])(?:\.[A-Za-z_][\w-]*|\.\d+|\[\d+\])*$")


class IntegrationExpect(_Model):
    """What the backend's answer must be for the integration test to pass."""

    status: int = Field(default=200, ge=100, le=599, description="HTTP status the backend must answer.")
    json_path: str | None = Field(
        default=None,
        description="Path into the JSON answer that must hold a non-empty value, like choices[0].message.content.",
    )
    contains: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="Text the answer must contain (the json_path value's text, when json_path is set).",
    )

    @field_validator("json_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not _JSON_PATH.match(value):
            raise ValueError(f"{shorten(value)} is not a path like answer, data.items[0].text or $.choices[0]")
        return value


class IntegrationTestConfig(_Model):
    """Step 11 through the backend: one request to its own API that exercises the model."""

    url: str = Field(description="The backend's API URL, e.g. http://localhost:8080/api/chat.")
    send_from: SendFrom = Field(
        default=SendFrom.HOST,
        description="host: sent on the backend host (over SSH, like health_url); local: from where rpdeploy runs.",
    )
    method: HttpMethod = Field(default=HttpMethod.POST, description="HTTP method.")
    headers: dict[str, EnvValue] = Field(
        default_factory=dict,
        description="Request headers; credentials as {env: NAME} or {file: PATH}, never literal.",
    )
    body: Any = Field(default=None, description="Request body: an object or list is sent as JSON, text as is.")
    expect: IntegrationExpect = Field(default_factory=IntegrationExpect, description="What the answer must be.")
    timeout: int = Field(default=120, ge=1, le=3600, description="Seconds the backend has to answer.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s]+$", value) or _CONTROL.search(value):
            raise ValueError(f"{shorten(value)} is not an http(s) URL")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, item in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{shorten(name)} is not an HTTP header name")
            if isinstance(item, str):
                if _CONTROL.search(item):
                    raise ValueError(f"header {name}: the value contains a control character or line break")
                if _CREDENTIAL_HEADER.search(name):
                    raise ValueError(
                        f"header {name} carries a credential but has a literal value; write {name}: {{env: NAME}} "
                        "so the value stays out of deploy.yaml"
                    )
        return value


class BackendConfig(_Model):
    """The application that calls the endpoint (a Spring Boot service on a host)."""

    host: str | None = Field(default=None, description="user@host[:port] reached over SSH; unset means this machine.")
    identity_file: str | None = Field(
        default=None, description="SSH private key file (default: your ssh config/agent)."
    )
    accept_new_host_key: bool = Field(
        default=False, description="Trust the host key on first contact (otherwise it must already be in known_hosts)."
    )
    mode: BackendMode = Field(
        default=BackendMode.DOTENV, description="dotenv: edit an env file; systemd: a unit drop-in."
    )
    service: str = Field(default="spring-boot", description="systemd unit name of the backend.")
    env_file: str | None = Field(
        default=None,
        description=(
            "Env file to write (default: /opt/<service>/.env for dotenv, /etc/rpdeploy/<service>.env for systemd)."
        ),
    )
    restart: str | None = Field(
        default=None, description="Restart command (default: sudo systemctl restart <service>)."
    )
    health_url: str | None = Field(default=None, description="URL that answers 2xx when the backend is healthy.")
    health_timeout: int = Field(
        default=120, ge=1, le=3600, description="Seconds to wait for the backend to be healthy."
    )
    env_names: BackendEnvNames = Field(default_factory=BackendEnvNames, description="Env var names the backend reads.")
    api_key: SecretRef | None = Field(
        default=None,
        description="The RunPod key the backend gets (default: runpod.api_key). A restricted key that can only "
        "call this endpoint keeps the deploy key off the host.",
    )
    integration_test: IntegrationTestConfig | None = Field(
        default=None,
        description="Step 11 through the backend: a request to its own API that must reach the model.",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None:
            match = _HOST.match(value)
            if not match:
                raise ValueError(f"{shorten(value)} is not user@host[:port]")
            port = match.group("port")
            if port is not None and not 0 < int(port) < 65536:
                raise ValueError(f"port {port} is out of range")
        return value

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        return check_service_name(value)

    @field_validator("env_file")
    @classmethod
    def _env_file(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("/", "~")) or _CONTROL.search(value)):
            raise ValueError("must be an absolute path on the backend host")
        return value

    @field_validator("restart")
    @classmethod
    def _restart(cls, value: str | None) -> str | None:
        # Tabs and line breaks make a multi-line script; other control characters have no business there.
        if value is not None and (not value.strip() or re.search(r"[\x00-\x08\x0b-\x1f\x7f]", value)):
            raise ValueError("must be a command (without control characters)")
        return value

    @field_validator("health_url")
    @classmethod
    def _health(cls, value: str | None) -> str | None:
        if value is not None and (not re.match(r"^https?://[^\s]+$", value) or _CONTROL.search(value)):
            raise ValueError(f"{shorten(value)} is not an http(s) URL")
        return value

    @property
    def resolved_env_file(self) -> str:
        if self.env_file:
            return self.env_file
        if self.mode is BackendMode.SYSTEMD:
            return f"/etc/rpdeploy/{self.service}.env"
        return f"/opt/{self.service}/.env"

    @property
    def restart_command(self) -> str:
        # "--" and quoting: the unit name is validated, and still never read as an option or two words.
        return self.restart or f"sudo systemctl restart -- {shlex.quote(self.service)}"


class SmokeTestConfig(_Model):
    """The request that proves the endpoint works."""

    prompt: str = Field(default="Reply with one short sentence: what is RunPod?", min_length=1, max_length=20000)
    max_tokens: int = Field(default=32, ge=1, le=32768, description="Always set: vLLM's completions default is 16.")
    timeout: int = Field(default=600, ge=1, le=7200, description="Seconds to wait, cold start included.")
    stream: bool = Field(default=False, description="Also check a streamed answer on the OpenAI route.")


def _parse_method(value: Any) -> Any:
    try:
        return Method.parse(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


MethodField = Annotated[
    Method,
    BeforeValidator(_parse_method),
    WithJsonSchema(
        {
            "enum": [m.value for m in Method] + [m.number for m in Method],
            "description": "1/worker-vllm, 2/custom-handler, 3/fastapi",
        }
    ),
]


class Config(_Model):
    """deploy.yaml."""

    version: Literal[1] = Field(default=1, description="Format version of this file.")
    deployment_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="Marks what this deployment makes on RunPod, so an endpoint of the same name made "
        "elsewhere is never taken over (written by `rpdeploy init`; default: endpoint.name).",
    )
    method: MethodField = Field(description="1 worker-vllm, 2 custom-handler, 3 fastapi.")
    model: ModelConfig
    image: ImageConfig | None = Field(default=None, description="Methods 2 and 3: where our image goes.")
    endpoint: EndpointConfig
    runpod: RunpodConfig = Field(default_factory=RunpodConfig)
    backend: BackendConfig | None = Field(default=None, description="Optional: the app to point at the endpoint.")
    smoke_test: SmokeTestConfig = Field(default_factory=SmokeTestConfig)

    _path: Path = PrivateAttr(default=DEFAULT_CONFIG)
    _text_sha256: str = PrivateAttr(default="")

    @property
    def path(self) -> Path:
        return self._path

    @property
    def base_dir(self) -> Path:
        """Folder of deploy.yaml: relative paths in it are relative to this."""
        return self._path.parent

    @property
    def state_dir(self) -> Path:
        return self.base_dir / ".rpdeploy"

    @property
    def hf_token_secret_name(self) -> str:
        """The RunPod secret that holds model.hf_token: given, else one named after this deployment."""
        if self.model.hf_token_secret:
            return self.model.hf_token_secret
        slug = re.sub(r"[^A-Za-z0-9]+", "_", self.deployment_mark).strip("_").lower()[:40]
        return f"rpdeploy_{slug}_hf_token"

    @property
    def deployment_mark(self) -> str:
        """The ownership mark this deployment writes on its template (RPDEPLOY_DEPLOYMENT).

        From deploy.yaml, so every machine (a laptop, CI) and a lost ledger agree on it; a
        file without ``deployment_id`` falls back to the endpoint's name.
        """
        return self.deployment_id or self.endpoint.name

    @property
    def worker_dir(self) -> Path | None:
        if self.image is None:
            return None
        return self.base_dir / self.image.worker_dir

    @property
    def fingerprint(self) -> str:
        """sha256 of the file as written."""
        return self._text_sha256

    def cuda_versions(self) -> list[str]:
        if self.endpoint.allowed_cuda_versions:
            return list(self.endpoint.allowed_cuda_versions)
        if self.method is Method.WORKER_VLLM:
            return list(versions.WORKER_VLLM_CUDA_VERSIONS)
        if self.image is not None and self.image.base_image == versions.VLLM_BASE_IMAGE:
            return list(versions.VLLM_BASE_CUDA_VERSIONS)
        return []


# --- loading ------------------------------------------------------------------------------

_Path = tuple[str | int, ...]


class _Marks:
    """Line/column of every key and value in a YAML document, by field path."""

    def __init__(self) -> None:
        self.keys: dict[_Path, yaml.Mark] = {}
        self.values: dict[_Path, yaml.Mark] = {}
        self.duplicates: list[tuple[_Path, yaml.Mark]] = []

    def walk(self, node: yaml.Node, path: _Path = ()) -> None:
        self.values[path] = node.start_mark
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                if key in seen:
                    self.duplicates.append((child, key_node.start_mark))
                seen.add(key)
                self.keys[child] = key_node.start_mark
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))

    def locate(self, path: _Path, *, key: bool = False) -> tuple[int | None, int | None]:
        """Best line/column for ``path``: the exact node, else its nearest ancestor."""
        probe = path
        while True:
            table = self.keys if key and probe in self.keys else self.values
            mark = table.get(probe)
            if mark is not None:
                return mark.line + 1, mark.column + 1
            if not probe:
                return None, None
            probe = probe[:-1]


def _field_path(loc: tuple[Any, ...]) -> _Path:
    # pydantic inserts the name of the union member or validator into loc ("str", "SecretRef",
    # "function-before[...]"): those are not keys of the document.
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, int):
            out.append(part)
        elif isinstance(part, str) and (part in ("str", "SecretRef", "ApiKeyRef") or "[" in part):
            continue
        else:
            out.append(part)
    return tuple(out)


def _dotted(path: _Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_for(path: _Path) -> type[BaseModel] | None:
    """The pydantic model that owns the mapping at ``path`` (for valid-field hints)."""
    model: type[BaseModel] = Config
    for part in path:
        if isinstance(part, int):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nested is None:
            return None
        model = nested
    return model


def _describe_error(error: Any, path: _Path) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_for(path[:-1])
        name = str(path[-1])
        if parent is not None:
            valid = list(parent.model_fields)
            guess = difflib.get_close_matches(name, valid, n=1)
            suggestion = f" (did you mean {guess[0]!r}?)" if guess else ""
            return f"unknown field {shorten(name)}{suggestion}; valid fields here: {', '.join(valid)}"
        return f"unknown field {shorten(name)}"
    if kind == "missing":
        return "required field is missing"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if kind in ("enum", "literal_error") and isinstance(error.get("input"), str):
        # The valid values are in the message ('a', 'b' or 'c'): suggest the nearest one.
        valid = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
        guess = difflib.get_close_matches(error["input"], valid, n=1)
        if guess:
            return f"{message} (got {shorten(error['input'])}; did you mean {guess[0]!r}?)"
    if kind.startswith(("int_", "float_", "bool_", "string_", "greater", "less", "literal", "enum", "list_", "dict_")):
        value = error.get("input")
        if not isinstance(value, (dict, list)):
            message = f"{message} (got {shorten(value)})"
    return message


def _semantic_issues(config: Config) -> list[tuple[_Path, str, bool]]:
    """Rules that span fields. (path, message, point at key?)"""
    issues: list[tuple[_Path, str, bool]] = []
    method = config.method
    if method.builds_image and config.image is None:
        issues.append(
            (
                ("method",),
                f"method {method.value} builds our own image: add an image: section (registry, repository)",
                False,
            )
        )
    if not method.builds_image and config.image is not None:
        issues.append(
            (("image",), "image: is only used by methods custom-handler and fastapi; remove it for worker-vllm", True)
        )
    if not method.builds_image and config.model.bake:
        issues.append((("model", "bake"), "bake needs our own image (methods custom-handler and fastapi)", True))
    if config.endpoint.workers_min > config.endpoint.workers_max:
        issues.append(
            (
                ("endpoint", "workers_min"),
                f"workers_min ({config.endpoint.workers_min}) is larger than "
                f"workers_max ({config.endpoint.workers_max})",
                False,
            )
        )
    for key, item in config.endpoint.env.items():
        key_path: _Path = ("endpoint", "env", key)
        if not _ENV_NAME.match(key):
            issues.append((key_path, f"{shorten(key)} is not a valid environment variable name", True))
        elif key.upper() in MANAGED_ENV:
            issues.append(
                (key_path, f"{key} is set by rpdeploy from the model: and endpoint: sections; set it there", True)
            )
        elif isinstance(item, str) and item and SECRET_NAME.search(key) and not SECRET_REFERENCE.match(item):
            issues.append(
                (
                    key_path,
                    f"{key} looks like a credential but has a literal value; write {key}: {{env: NAME}} so the value "
                    "stays out of deploy.yaml (or a RunPod secret reference: '{{ RUNPOD_SECRET_name }}')",
                    False,
                )
            )
    backend = config.backend
    if backend is not None:
        names = [backend.env_names.endpoint_url, backend.env_names.api_key, backend.env_names.endpoint_id]
        if len(set(names)) != len(names):
            issues.append((("backend", "env_names"), "the env var names must be different from each other", True))
        test = backend.integration_test
        if test is not None and test.expect.json_path is None and test.expect.contains is None:
            issues.append(
                (
                    ("backend", "integration_test", "expect"),
                    "give json_path or contains: a status alone does not show that the model answered",
                    True,
                )
            )
    issues.extend(_weights_issues(config))
    return issues


def _weights_issues(config: Config) -> list[tuple[_Path, str, bool]]:
    """model.weights, the network volume it may need, and the HF token's secret."""
    issues: list[tuple[_Path, str, bool]] = []
    model, endpoint = config.model, config.endpoint
    chosen = model.weights
    where: _Path = ("model", "weights")
    if chosen is WeightsSource.BAKE and not config.method.builds_image:
        issues.append((where, "weights: bake needs our own image (methods custom-handler and fastapi)", False))
    if model.bake and chosen not in (None, WeightsSource.BAKE):
        issues.append((where, f"bake: true puts the weights in the image, but weights is {chosen.value}", False))
    if model.is_path and chosen not in (None, WeightsSource.BAKE):
        issues.append(
            (
                where,
                f"{model.name} is a folder inside the image: its weights come with the image (weights: bake)",
                False,
            )
        )
    source = model.weights_source
    if source is WeightsSource.NETWORK_VOLUME and endpoint.network_volume_id is None:
        issues.append(
            (
                where,
                "weights: network-volume needs endpoint.network_volume_id (a volume in the endpoint's region)",
                False,
            )
        )
    if endpoint.network_volume_id is not None and source is not WeightsSource.NETWORK_VOLUME:
        issues.append(
            (
                ("endpoint", "network_volume_id"),
                f"a network volume is only used with model.weights: network-volume (weights is {source.value}; "
                "RunPod mounts its model cache at the same path, /runpod-volume)",
                True,
            )
        )
    if source is WeightsSource.CACHED:
        # "Each endpoint is currently limited to one cached model at a time." (docs
        # serverless/endpoints/model-caching.mdx): a second repo would be downloaded by every worker.
        tokenizer = endpoint.env.get("TOKENIZER_NAME")
        if isinstance(tokenizer, str) and tokenizer and tokenizer != model.name:
            issues.append(
                (
                    ("endpoint", "env", "TOKENIZER_NAME"),
                    f"RunPod caches one model per endpoint, and TOKENIZER_NAME names a second repo ({tokenizer}) "
                    "that every cold start would download; drop it, or set model.weights: download",
                    False,
                )
            )
    if model.hf_token is None:
        for key in ("hf_token_secret", "hf_token_delivery"):
            if key in model.model_fields_set:
                issues.append((("model", key), "there is no model.hf_token to deliver", True))
    return issues


def parse_config(text: str, *, path: Path = DEFAULT_CONFIG, display: str | None = None) -> Config:
    """Validate deploy.yaml's text. Raises ConfigError listing every problem with its location."""
    shown = display or str(path)
    try:
        node, data = compose_yaml(text, DEPLOY_YAML)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = Location(shown, mark.line + 1, mark.column + 1) if mark else Location(shown)
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        if "'\\t'" in problem or "\t" in problem:
            problem += " (YAML indents with spaces, not tabs: replace the tab with spaces)"
        raise ConfigError(
            f"{shown} is not valid YAML", issues=(ConfigIssue(location, "", problem or "syntax error"),)
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown} is not valid YAML: {exc}") from None

    if node is None or data is None:
        raise ConfigError(f"{shown} is empty", hint="run `rpdeploy init` to write one")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{shown} must be a mapping of sections (method:, model:, endpoint:, ...)",
            issues=(
                ConfigIssue(Location(shown, node.start_mark.line + 1, node.start_mark.column + 1), "", "not a mapping"),
            ),
        )

    marks = _Marks()
    marks.walk(node)
    issues: list[ConfigIssue] = []
    for dup_path, mark in marks.duplicates:
        issues.append(
            ConfigIssue(
                Location(shown, mark.line + 1, mark.column + 1),
                _dotted(dup_path),
                "duplicate key (a second value would silently win)",
            )
        )
    if issues:
        raise ConfigError(f"{shown} has {len(issues)} problem(s)", issues=tuple(issues))

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            field_path = _field_path(error["loc"])
            on_key = error["type"] in ("extra_forbidden",)
            line, column = marks.locate(field_path, key=on_key)
            issues.append(
                ConfigIssue(
                    Location(shown, line, column), _dotted(field_path), _bounded(_describe_error(error, field_path))
                )
            )
        raise ConfigError(f"{shown} has {len(issues)} problem(s)", issues=tuple(_unique(issues))) from None

    for field_path, message, on_key in _semantic_issues(config):
        line, column = marks.locate(field_path, key=on_key)
        issues.append(ConfigIssue(Location(shown, line, column), _dotted(field_path), message))
    if issues:
        raise ConfigError(f"{shown} has {len(issues)} problem(s)", issues=tuple(issues))

    config._path = path
    config._text_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return config


def _bounded(message: str, limit: int = 600) -> str:
    """A message cut to ``limit`` characters: values in it are shortened already, this is the backstop."""
    return message if len(message) <= limit else message[:limit] + "..."


def _unique(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: set[str] = set()
    out = []
    for issue in issues:
        key = str(issue)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


def load_config(path: Path = DEFAULT_CONFIG) -> Config:
    """Read and validate deploy.yaml."""
    try:
        raw = read_limited(path, DEPLOY_YAML.size, what="")
    except FileNotFoundError:
        raise ConfigError(f"{path} not found", hint="run `rpdeploy init` to create it, or pass --config PATH") from None
    text = decode_text(raw, what="", path=path)
    return parse_config(text, path=path.absolute(), display=str(path))


def field_location(config: Config, *path: str, display: str | None = None) -> Location:
    """Where ``path`` (e.g. "image", "repository") is in the file ``config`` was read from."""
    shown = display or str(config.path)
    try:
        node, _ = compose_yaml(config.path.read_text(encoding="utf-8"), DEPLOY_YAML)
    except (OSError, ValueError, yaml.YAMLError, ConfigError):
        return Location(shown)
    if node is None:
        return Location(shown)
    marks = _Marks()
    marks.walk(node)
    line, column = marks.locate(tuple(path))
    return Location(shown, line, column)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of deploy.yaml, for editors (yaml-language-server)."""
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rpdeploy deploy.yaml"
    return schema
