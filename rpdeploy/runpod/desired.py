"""The desired state: the template and endpoint deploy.yaml asks for, built from the config alone.

Owns the env the workers get (model settings, weights, the HF token or its secret reference,
RUNPOD_INIT_TIMEOUT, endpoint.env, the ownership mark, the release), the image they run, the
endpoint's settings, and the GPU selection read from RunPod's live pools. Nothing here reads or
changes what RunPod has (``plan`` compares; ``resolve_gpus`` only reads the pool list).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rpdeploy import __version__, versions
from rpdeploy.errors import ApiError, AuthError
from rpdeploy.methods import Method
from rpdeploy.output import NullReporter, Reporter
from rpdeploy.preflight import gpus as gpu_selection
from rpdeploy.runpod import release
from rpdeploy.runpod.models import EndpointSpec, EnvVar, TemplateSpec
from rpdeploy.runpod.ownership import MARK_KEY
from rpdeploy.secrets import Secret

if TYPE_CHECKING:
    from rpdeploy.config import Config
    from rpdeploy.runpod.controlplane import ControlPlane

#: The env var that carries the Hugging Face token to the workers. Not HF_TOKEN: worker-vllm
#: v2.25.2 turns every env var named like a `vllm serve` flag into that flag, HF_TOKEN into
#: `--hf-token <token>` (src/args_builder.py VALUE_FLAGS), and logs the whole argv at INFO
#: (src/main.py start_vllm), and vLLM logs it again among its non-default args. huggingface_hub
#: reads this name itself when HF_TOKEN is unset (src/huggingface_hub/utils/_auth.py,
#: _get_token_from_environment), and it is no flag's name, so it stays in the environment.
HF_TOKEN_ENV = "HUGGING_FACE_HUB_TOKEN"


def model_env(config: Config) -> list[EnvVar]:
    """The model settings as the env vars worker-vllm (and our own workers) read."""
    model = config.model
    env = [
        EnvVar("MODEL_NAME", model.name),
        EnvVar("MAX_MODEL_LEN", str(model.max_model_len)),
        EnvVar("GPU_MEMORY_UTILIZATION", str(model.gpu_memory_utilization)),
        EnvVar("MAX_CONCURRENCY", str(config.endpoint.max_concurrency)),
    ]
    if model.revision:
        env.append(EnvVar("MODEL_REVISION", model.revision))
    if model.dtype.value != "auto":
        env.append(EnvVar("DTYPE", model.dtype.value))
    if model.quantization is not None:
        env.append(EnvVar("QUANTIZATION", model.quantization.value))
    if model.kv_cache_dtype.value != "auto":
        env.append(EnvVar("KV_CACHE_DTYPE", model.kv_cache_dtype.value))
    if model.max_num_seqs is not None:
        env.append(EnvVar("MAX_NUM_SEQS", str(model.max_num_seqs)))
    if config.endpoint.gpu_count > 1:
        env.append(EnvVar("TENSOR_PARALLEL_SIZE", str(config.endpoint.gpu_count)))
    if model.served_model_name:
        env.append(EnvVar("OPENAI_SERVED_MODEL_NAME_OVERRIDE", model.served_model_name))
    if model.trust_remote_code:
        env.append(EnvVar("TRUST_REMOTE_CODE", "true"))
    if model.enforce_eager:
        env.append(EnvVar("ENFORCE_EAGER", "true"))
    env.extend(weights_env(config))
    return env


def weights_env(config: Config) -> list[EnvVar]:
    """Where the workers find the weights, for the strategies that need telling.

    Cached models need nothing: worker-vllm's image sets HF_HOME to RunPod's cache folder
    (worker-vllm v2.25.2 Dockerfile), and our workers look there first (settings.py). Our
    workers keep a network-volume download on the volume; a baked model is in the image.
    """
    from rpdeploy.config import RUNPOD_MODEL_CACHE, WeightsSource

    source = config.model.weights_source
    if not config.method.builds_image:
        return []
    if source is WeightsSource.NETWORK_VOLUME:
        return [EnvVar("HF_HUB_CACHE", RUNPOD_MODEL_CACHE)]
    if config.model.downloads_at_build:
        return [EnvVar("MODEL_PATH", BAKED_MODEL_PATH)]
    return []


#: Where the Dockerfile puts a baked model (templates/worker/common/Dockerfile.j2).
BAKED_MODEL_PATH = "/models/model"


def secret_reference(name: str) -> str:
    """A template env value RunPod replaces with the secret's value when a worker starts (docs
    pods/templates/secrets.mdx: ``{{ RUNPOD_SECRET_secret_name }}``; for serverless workers this
    is not documented, see README)."""
    return "{{ RUNPOD_SECRET_" + name + " }}"


def hf_token_secret(config: Config, environ: Mapping[str, str] | None = None) -> tuple[str, Secret] | None:
    """The RunPod secret rpdeploy keeps model.hf_token in: (name, value); None when there is none."""
    from rpdeploy.config import HfTokenDelivery

    model = config.model
    if model.hf_token is None or model.hf_token_delivery is not HfTokenDelivery.SECRET:
        return None
    token = model.hf_token.resolve(base_dir=config.base_dir, environ=environ, field="model.hf_token")
    return config.hf_token_secret_name, token


def resolve_env(
    config: Config, environ: Mapping[str, str] | None = None, *, init_timeout: int | None = None
) -> tuple[EnvVar, ...]:
    """Everything the workers get: model settings, the HF token (a reference to its RunPod secret),
    RUNPOD_INIT_TIMEOUT when the cold start needs longer than RunPod's default, endpoint.env
    (secrets resolved)."""
    from rpdeploy.config import HfTokenDelivery

    env = model_env(config)
    model = config.model
    if model.hf_token is not None:
        if model.hf_token_delivery is HfTokenDelivery.SECRET:
            env.append(EnvVar(HF_TOKEN_ENV, secret_reference(config.hf_token_secret_name)))
        else:
            token = model.hf_token.resolve(base_dir=config.base_dir, environ=environ, field="model.hf_token")
            env.append(EnvVar(HF_TOKEN_ENV, token))
    if init_timeout is not None:
        env.append(EnvVar("RUNPOD_INIT_TIMEOUT", str(init_timeout)))
    for key, value in config.endpoint.env.items():
        if isinstance(value, str):
            env.append(EnvVar(key, value))
        else:
            env.append(
                EnvVar(key, value.resolve(base_dir=config.base_dir, environ=environ, field=f"endpoint.env.{key}"))
            )
    env.append(EnvVar(MARK_KEY, config.deployment_mark))
    return tuple(env)


def worker_image(config: Config, image: str | None) -> str:
    """The image the template runs: the pinned worker-vllm image, or our pushed digest."""
    if config.method is Method.WORKER_VLLM:
        return versions.WORKER_VLLM_IMAGE
    if not image:
        raise ApiError(
            f"method {config.method.value} runs our own image, and none has been pushed yet",
            hint="run `rpdeploy build --push` (or `rpdeploy deploy`), or pass --image REF",
        )
    return image


def desired_template(
    config: Config,
    *,
    image: str,
    registry_auth_id: str = "",
    environ: Mapping[str, str] | None = None,
    init_timeout: int | None = None,
) -> TemplateSpec:
    """The template deploy.yaml asks for, with the id of the release it makes (``rpdeploy.runpod.release``)."""
    env = resolve_env(config, environ, init_timeout=init_timeout)
    content_env = [(var.key, var.reveal(), var.secret) for var in env]
    hf_secret = hf_token_secret(config, environ)
    if hf_secret is not None:
        # The token as a RunPod secret: the env holds only its reference, and a worker reads the
        # value when it starts. A new value is a new release all the same (counted here as its
        # sha256), so the template changes and RunPod replaces the workers that hold the old one.
        content_env.append((f"runpod-secret:{hf_secret[0]}", hf_secret[1].reveal(), True))
    content = release.content_fingerprint(
        content_env,
        container_disk_gb=config.endpoint.container_disk_gb,
        registry_auth_id=registry_auth_id,
        docker_args="",
    )
    release_id = release.release_id(image, content)
    return TemplateSpec(
        name=config.endpoint.template,
        image=image,
        env=with_release(config, env, release_id),
        container_disk_gb=config.endpoint.container_disk_gb,
        registry_auth_id=registry_auth_id,
        readme=f"Managed by rpdeploy {__version__} ({config.method.value}, {config.model.name}). "
        "Edit deploy.yaml and re-run `rpdeploy deploy` instead of changing it here.",
        release=release_id,
    )


def with_release(config: Config, env: tuple[EnvVar, ...], release_id: str) -> tuple[EnvVar, ...]:
    """``env`` plus what tells the workers their release: ``RPDEPLOY_RELEASE`` (our workers read it)
    and, for worker-vllm, vLLM's fingerprint flags in front of the user's own VLLM_EXTRA_ARGS."""
    out = [var for var in env if var.key != release.VLLM_EXTRA_ARGS or config.method is not Method.WORKER_VLLM]
    if config.method is Method.WORKER_VLLM:
        mine = release.fingerprint_args(release_id)
        user = next((var for var in env if var.key == release.VLLM_EXTRA_ARGS), None)
        if user is None or not user.reveal().strip():
            out.append(EnvVar(release.VLLM_EXTRA_ARGS, mine))
        else:
            combined = f"{mine} {user.reveal().strip()}"
            # A user's args given as a secret reference stay a secret, with ours in front.
            value = Secret(combined, user.value.source) if isinstance(user.value, Secret) else combined
            out.append(EnvVar(release.VLLM_EXTRA_ARGS, value))
    out.append(EnvVar(release.RELEASE_ENV, release_id))
    return tuple(out)


def desired_endpoint(
    config: Config, *, template_id: str, gpus: gpu_selection.GpuSelection, container: TemplateSpec | None = None
) -> EndpointSpec:
    """The endpoint deploy.yaml wants; ``container`` where the endpoint carries it itself (REST v2)."""
    endpoint = config.endpoint
    return EndpointSpec(
        name=endpoint.name,
        template_id=template_id,
        gpus=gpus,
        gpu_count=endpoint.gpu_count,
        workers_min=endpoint.workers_min,
        workers_max=endpoint.workers_max,
        idle_timeout=endpoint.idle_timeout,
        scaler_type=endpoint.scaler_type.api_value,
        scaler_value=endpoint.scaler_value,
        flashboot=endpoint.flashboot,
        execution_timeout_ms=endpoint.execution_timeout * 1000,
        allowed_cuda_versions=tuple(config.cuda_versions()),
        locations=tuple(endpoint.locations),
        container=container,
        **weights_endpoint_fields(config),
    )


def weights_endpoint_fields(config: Config) -> dict[str, Any]:
    """The endpoint side of model.weights: the cached model's reference (one per endpoint; none for
    the other strategies) and, for network-volume, the volume. A volume is left as it is otherwise."""
    from rpdeploy.config import WeightsSource

    source = config.model.weights_source
    fields: dict[str, Any] = {"model_references": (config.model.reference,) if source is WeightsSource.CACHED else ()}
    if source is WeightsSource.NETWORK_VOLUME and config.endpoint.network_volume_id:
        fields["network_volume_ids"] = (config.endpoint.network_volume_id,)
    return fields


def estimated_init_timeout(
    config: Config, *, reporter: Reporter | None = None, environ: Mapping[str, str] | None = None
) -> int | None:
    """RUNPOD_INIT_TIMEOUT for the template: endpoint.init_timeout, else from the cold-start estimate
    (which needs the model's size: the fit check's architecture lookup)."""
    if config.endpoint.init_timeout is not None:
        return config.endpoint.init_timeout
    from rpdeploy.preflight.check import check_deployment

    check = check_deployment(config, reporter=reporter or NullReporter(), environ=environ)
    return check.cost.cold_start_plan.init_timeout


def resolve_gpus(cp: ControlPlane, config: Config, reporter: Reporter | None = None) -> gpu_selection.GpuSelection:
    """The pools and exclusions for exactly the configured GPU type, from RunPod's live pool list only.

    No built-in fallback: a table that missed a card RunPod has since added to the pool
    would leave that card unexcluded, and RunPod ignores exclusions it does not recognise,
    so a stale list silently widens the pin. When the pools cannot be read, stop.
    """
    gpu = config.endpoint.gpu_type
    try:
        pools = cp.gpu_pools()
    except AuthError:
        raise
    except ApiError as exc:
        raise ApiError(
            f"cannot read RunPod's GPU pools ({exc.message}), so the endpoint cannot be pinned to {gpu.id}",
            hint="rpdeploy builds the GPU selection only from RunPod's live pool list (a built-in one may be "
            "out of date and let other GPUs in); re-run when the RunPod API answers",
            status=exc.status,
            retryable=True,
        ) from exc
    if not pools:
        raise ApiError(
            f"RunPod answered an empty GPU pool list, so the endpoint cannot be pinned to {gpu.id}",
            hint="re-run later; if it persists, RunPod's GPU pool list has changed",
        )
    try:
        return gpu_selection.selection_for(gpu, pools)
    except gpu_selection.PoolError as exc:
        raise ApiError(
            str(exc), hint=f"pick another endpoint.gpu; serverless pools now: {', '.join(sorted(pools))}"
        ) from exc


def describe_gpus(selection: gpu_selection.GpuSelection, pools: dict[str, tuple[str, ...]] | None) -> str:
    """A GPU selection as people name GPUs: "NVIDIA L4" for pool AMPERE_24 without the A5000 and 3090.

    Needs the live pool membership; without it (or for a CPU endpoint) the answer says so.
    """
    if not selection.pools:
        return "(none: a CPU endpoint)"
    if pools is None:
        return "(unknown: RunPod's GPU pools could not be read)"
    allowed = selection.allowed(pools)
    return ", ".join(allowed) if allowed else "(none: every GPU of its pools is excluded)"
