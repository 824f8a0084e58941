"""From deploy.yaml to a RunPod template and endpoint: desired state, plan, apply, delete.

RunPod is the source of truth. Objects are found by their exact names every time, so a
lost ledger, a re-run after a timeout or a second run of the same config converges on the
same template and endpoint instead of creating new ones. A name alone does not make an
object ours, though: rpdeploy changes or deletes only what this project's ledger recorded
or what carries this deployment's mark (env ``RPDEPLOY_DEPLOYMENT`` in the container's env,
which RunPod keeps), and refuses anything else unless told ``--adopt``. A plan lists the
exact mutations; applying it sends only those (a no-change run sends none).

Everything here is in rpdeploy's terms and works over either transport. Where the container
(image, env, disk, registry) lives is the transport's answer (``cp.container_on_endpoint``):
under GraphQL on a template the endpoint is bound to, under REST v2 on the endpoint itself
(``rest.py`` says why). The mark is found either way: in the endpoint's own env (REST shows
it there, also for an endpoint made over GraphQL) or in its bound template's. So a project
switched from one API to the other finds the same endpoint and keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from rpdeploy import __version__, versions
from rpdeploy.errors import ApiError, AuthError, NotOursError
from rpdeploy.methods import Method
from rpdeploy.output import NullReporter, Reporter
from rpdeploy.preflight import gpus as gpu_selection
from rpdeploy.runpod import release
from rpdeploy.runpod.models import (
    AccountSecret,
    Container,
    Endpoint,
    EndpointSpec,
    EnvVar,
    RegistryAuth,
    Template,
    TemplateSpec,
)
from rpdeploy.secrets import MASK, Secret

if TYPE_CHECKING:
    from pathlib import Path

    from rpdeploy.config import Config
    from rpdeploy.deploy.ledger import Ledger
    from rpdeploy.runpod.controlplane import ControlPlane

NEW_TEMPLATE_ID = "<new template>"
#: The ownership mark: an env var of the container. RunPod keeps it as sent and returns it on
#: every read: on the template (GraphQL, which the endpoint reaches through its templateId),
#: or on the endpoint itself (REST v2).
MARK_KEY = "RPDEPLOY_DEPLOYMENT"
#: The ledger's record of a delete under way (``Ledger.extra``): what it deletes and how far
#: it got, so a delete killed halfway resumes on the same objects.
PENDING_DELETE = "deleting"
#: The env var that carries the Hugging Face token to the workers. Not HF_TOKEN: worker-vllm
#: v2.25.2 turns every env var named like a `vllm serve` flag into that flag, HF_TOKEN into
#: `--hf-token <token>` (src/args_builder.py VALUE_FLAGS), and logs the whole argv at INFO
#: (src/main.py start_vllm), and vLLM logs it again among its non-default args. huggingface_hub
#: reads this name itself when HF_TOKEN is unset (src/huggingface_hub/utils/_auth.py,
#: _get_token_from_environment), and it is no flag's name, so it stays in the environment.
HF_TOKEN_ENV = "HUGGING_FACE_HUB_TOKEN"

OperationKind = Literal[
    "create-registry-auth",
    "update-registry-auth",
    "create-secret",
    "update-secret",
    "create-template",
    "update-template",
    "create-endpoint",
    "update-endpoint",
    "scale-to-zero",
    "delete-endpoint",
    "delete-template",
]


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.field}: {_show(self.old)} -> {_show(self.new)}"


def _show(value: Any) -> str:
    return "(unset)" if value in (None, "") else repr(value)


@dataclass(frozen=True)
class Operation:
    """One mutation, as shown to people before it is sent. Secret values are masked."""

    kind: OperationKind
    target: str
    changes: tuple[FieldChange, ...] = ()

    def describe(self) -> str:
        head = f"{self.kind} {self.target!r}"
        return head if not self.changes else head + "\n" + "\n".join(f"    {c}" for c in self.changes)


@dataclass(frozen=True)
class EndpointUrls:
    run: str
    runsync: str
    status: str
    health: str
    openai_base: str | None


@dataclass(frozen=True)
class EndpointPlan:
    template_spec: TemplateSpec
    template: Template | None
    endpoint_spec: EndpointSpec
    endpoint: Endpoint | None
    operations: tuple[Operation, ...]

    @property
    def changed(self) -> bool:
        return bool(self.operations)


@dataclass(frozen=True)
class EndpointResult:
    name: str
    endpoint_id: str
    template_id: str
    image: str
    operations: tuple[Operation, ...]
    urls: EndpointUrls

    @property
    def created(self) -> bool:
        return any(op.kind == "create-endpoint" for op in self.operations)


# --- desired state ------------------------------------------------------------------------


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


# --- finding and ownership ---------------------------------------------------------------


@dataclass(frozen=True)
class Ownership:
    """What makes an object on RunPod this deployment's.

    ``mark``: the value of ``RPDEPLOY_DEPLOYMENT`` this deployment writes on its template
    (deploy.yaml's ``deployment_id``, else the endpoint name). ``known_ids``: endpoint and
    template ids this project's ledger recorded as made by it (objects made before marks
    existed count as ours through these). ``adopt``: take over same-named objects anyway.
    """

    mark: str
    known_ids: frozenset[str] = frozenset()
    adopt: bool = False

    def owns_template(self, template: Template) -> bool:
        return template.id in self.known_ids or template_mark(template) == self.mark

    def owns_endpoint(self, endpoint: Endpoint, templates: Iterable[Template]) -> bool:
        if endpoint.id in self.known_ids:
            return True
        return endpoint_mark(endpoint, templates) == self.mark


def template_mark(template: Template) -> str | None:
    return template.env_map().get(MARK_KEY)


def bound_template(endpoint: Endpoint, templates: Iterable[Template]) -> Template | None:
    """The template the endpoint is bound to, where the API keeps that link (GraphQL)."""
    if not endpoint.template_id:
        return None
    return next((t for t in templates if t.id == endpoint.template_id), None)


def endpoint_mark(endpoint: Endpoint, templates: Iterable[Template]) -> str | None:
    """The mark in the endpoint's container env: its own (REST v2), else its bound template's."""
    if endpoint.container is not None:
        return endpoint.container.env_map().get(MARK_KEY)
    template = bound_template(endpoint, templates)
    return template_mark(template) if template is not None else None


def live_container(endpoint: Endpoint | None, templates: Iterable[Template]) -> Container | None:
    """What the endpoint runs: its own container settings (REST v2), else its bound template's."""
    if endpoint is None:
        return None
    if endpoint.container is not None:
        return endpoint.container
    template = bound_template(endpoint, templates)
    return template.container if template is not None else None


def ownership(
    config: Config, *, ledger: Ledger | None = None, state_dir: Path | None = None, adopt: bool = False
) -> Ownership:
    """This deployment's mark, and the ids its ledger (given, or loaded from ``state_dir``) says it made."""
    if ledger is None:
        from rpdeploy.deploy.ledger import Ledger

        ledger = Ledger.load(state_dir or config.state_dir)
    known: set[str] = set()
    for stage, key in (("template", "template_id"), ("endpoint", "endpoint_id"), ("endpoint", "template_id")):
        record = ledger.stages.get(stage)
        value = record.outputs.get(key) if record is not None else None
        if value:
            known.add(str(value))
    pending = ledger.extra.get(PENDING_DELETE)
    if isinstance(pending, dict):
        known.update(str(pending[k]) for k in ("endpoint_id", "template_id") if pending.get(k))
    return Ownership(config.deployment_mark, frozenset(known), adopt)


def find_template(templates: Iterable[Template], name: str) -> Template | None:
    """The template with exactly this name (RunPod keeps template names unique)."""
    return next((t for t in templates if t.name == name), None)


def find_endpoint(
    endpoints: Iterable[Endpoint],
    name: str,
    *,
    templates: Iterable[Template] = (),
    owner: Ownership | None = None,
) -> Endpoint | None:
    """The endpoint with exactly this name. Names are not unique on RunPod: among several,
    the one that is ours (when exactly one is) is the answer; otherwise rpdeploy stops."""
    matches = [e for e in endpoints if e.name == name]
    if len(matches) > 1 and owner is not None:
        templates = list(templates)
        ours = [e for e in matches if owner.owns_endpoint(e, templates)]
        if len(ours) == 1:
            return ours[0]
    if len(matches) > 1:
        ids = ", ".join(e.id for e in matches)
        raise ApiError(
            f"{len(matches)} endpoints are named {name!r} ({ids}); rpdeploy will not guess which one is yours",
            hint="delete or rename the extra ones in the RunPod console, then re-run",
        )
    return matches[0] if matches else None


def _whose(endpoint: Endpoint, templates: list[Template], owner: Ownership) -> str:
    if endpoint.container is not None:
        mark = endpoint.container.env_map().get(MARK_KEY)
        if mark is None:
            return f"its env carries no {MARK_KEY} mark"
        return f"its env is marked {MARK_KEY}={mark}, this deployment is {owner.mark}"
    template = bound_template(endpoint, templates)
    if template is None:
        return "its template is not on the account"
    mark = template_mark(template)
    if mark is None:
        return f"its template {template.name!r} carries no {MARK_KEY} mark"
    return f"its template {template.name!r} is marked {MARK_KEY}={mark}, this deployment is {owner.mark}"


def check_ownership(
    owner: Ownership,
    *,
    endpoint: Endpoint | None,
    template: Template | None,
    templates: Iterable[Template],
    command: str,
) -> list[str]:
    """Refuse (NotOursError, exit 7) to touch an endpoint or template that is not ours.

    Returns the objects taken over with ``--adopt`` (empty when everything was ours).
    """
    templates = list(templates)
    strangers = []
    if endpoint is not None and not owner.owns_endpoint(endpoint, templates):
        strangers.append(f"endpoint {endpoint.name!r} ({endpoint.id}): {_whose(endpoint, templates, owner)}")
    if template is not None and not owner.owns_template(template):
        mark = template_mark(template)
        why = "no mark" if mark is None else f"marked {MARK_KEY}={mark}, this deployment is {owner.mark}"
        strangers.append(f"template {template.name!r} ({template.id}): {why}")
    if strangers and not owner.adopt:
        listed = "\n".join(f"  - {s}" for s in strangers)
        raise NotOursError(
            f"RunPod already has objects with the names deploy.yaml gives, and nothing says they are this "
            f"deployment's:\n{listed}",
            hint=f"if they are yours (made before rpdeploy marked its objects, or by a copy of this project), "
            f"run `rpdeploy {command} --adopt` to take them over; otherwise give endpoint.name (and "
            "endpoint.template_name) names of their own in deploy.yaml",
        )
    return strangers


# --- plan ---------------------------------------------------------------------------------


def _env_changes(old: Mapping[str, str], new: Iterable[EnvVar]) -> list[FieldChange]:
    changes = []
    wanted = {var.key: var for var in new}
    for key, var in wanted.items():
        if key not in old:
            changes.append(FieldChange(f"env.{key}", None, var.shown()))
        elif old[key] != var.reveal():
            shown_old = MASK if var.secret else old[key]
            changes.append(FieldChange(f"env.{key}", shown_old, var.shown()))
    for key in old:
        if key not in wanted:
            secret = EnvVar(key, old[key]).secret
            changes.append(FieldChange(f"env.{key}", MASK if secret else old[key], None))
    return changes


def container_changes(live: Container, spec: TemplateSpec) -> list[FieldChange]:
    """What differs between the container RunPod has and the one deploy.yaml wants."""
    changes = []
    if live.image != spec.image:
        changes.append(FieldChange("image", live.image, spec.image))
    if live.container_disk_gb != spec.container_disk_gb:
        changes.append(FieldChange("container_disk_gb", live.container_disk_gb, spec.container_disk_gb))
    if live.registry_auth_id != spec.registry_auth_id:
        changes.append(FieldChange("registry_auth_id", live.registry_auth_id, spec.registry_auth_id))
    if live.docker_args != spec.docker_args:
        changes.append(FieldChange("docker_args", live.docker_args, spec.docker_args))
    changes.extend(_env_changes(live.env_map(), spec.env))
    return changes


def template_changes(live: Template, spec: TemplateSpec) -> list[FieldChange]:
    changes = []
    if live.name != spec.name:
        changes.append(FieldChange("name", live.name, spec.name))
    changes += container_changes(live.container, spec)
    if not live.is_serverless:
        changes.append(FieldChange("serverless", False, True))
    return changes


def endpoint_changes(live: Endpoint, spec: EndpointSpec) -> list[FieldChange]:
    # Settings are compared in rpdeploy's form: GPU pools and exclusions as sets, CUDA versions
    # and locations sorted (RunPod may answer them in another order).
    current = live.settings()
    changes = [
        FieldChange(key, current.get(key), value) for key, value in spec.settings().items() if current.get(key) != value
    ]
    if spec.container is not None:
        if live.container is None:
            changes.append(FieldChange("image", None, spec.container.image))
        else:
            changes += container_changes(live.container, spec.container)
    if live.model_references_change(spec):
        changes.append(
            FieldChange("model_references", list(live.model_references or ()), list(spec.model_references or ()))
        )
    if live.network_volumes_change(spec):
        changes.append(
            FieldChange("network_volume_ids", list(live.network_volume_ids), list(spec.network_volume_ids or ()))
        )
    return changes


def plan_template(
    config: Config,
    *,
    templates: Iterable[Template],
    endpoints: Iterable[Endpoint],
    image: str,
    owner: Ownership,
    registry_auth_id: str = "",
    environ: Mapping[str, str] | None = None,
    command: str = "deploy",
    init_timeout: int | None = None,
    container_on_endpoint: bool = False,
) -> tuple[TemplateSpec, Template | None, Operation | None]:
    """The container we want, the template RunPod has for it, and the mutation between them.

    Checks first that the template and the endpoint deploy.yaml names are ours (or adopted):
    nothing is created before that is known. The template is the one our endpoint is bound to
    when it is ours (so an endpoint made over REST, whose template RunPod named, keeps its
    template when the project moves to GraphQL), else the one with deploy.yaml's name. Where the
    endpoint carries its container itself (REST v2), no template is made: (spec, None, None).
    """
    templates, endpoints = list(templates), list(endpoints)
    spec = desired_template(
        config, image=image, registry_auth_id=registry_auth_id, environ=environ, init_timeout=init_timeout
    )
    ours = find_endpoint(endpoints, config.endpoint.name, templates=templates, owner=owner)
    if container_on_endpoint:
        check_ownership(owner, endpoint=ours, template=None, templates=templates, command=command)
        return spec, None, None
    template = find_template(templates, spec.name)
    bound = bound_template(ours, templates) if ours is not None else None
    if (
        ours is not None
        and bound is not None
        and owner.owns_endpoint(ours, templates)
        and (template is None or (template.id != bound.id and not owner.owns_template(template)))
    ):
        template = bound
    check_ownership(owner, endpoint=ours, template=template, templates=templates, command=command)
    if template is None:
        shown = (
            FieldChange("image", None, spec.image),
            *(FieldChange(f"env.{v.key}", None, v.shown()) for v in spec.env),
        )
        return spec, None, Operation("create-template", spec.name, shown)
    # One template serves one endpoint. If ours is bound to an endpoint that is not ours,
    # updating it would change someone else's deployment.
    users = [e for e in endpoints if e.template_id == template.id and (ours is None or e.id != ours.id)]
    if users:
        raise ApiError(
            f"template {template.name!r} is used by endpoint {users[0].name!r} ({users[0].id}), not by "
            f"{config.endpoint.name!r}",
            hint="set endpoint.template_name in deploy.yaml to a name of its own",
        )
    changes = template_changes(template, spec)
    return spec, template, Operation("update-template", spec.name, tuple(changes)) if changes else None


def plan_endpoint_only(
    config: Config,
    *,
    endpoints: Iterable[Endpoint],
    templates: Iterable[Template],
    template_id: str,
    gpus: gpu_selection.GpuSelection,
    owner: Ownership,
    command: str = "deploy",
    container: TemplateSpec | None = None,
    cp: ControlPlane | None = None,
) -> tuple[EndpointSpec, Endpoint | None, Operation | None]:
    """The endpoint we want, the one RunPod has (found by name), and the mutation between them.

    ``container``: the container settings, where the endpoint carries them (REST v2). ``cp``:
    asked for the cached model when the endpoint's API does not show it (REST v2).
    """
    templates = list(templates)
    spec = desired_endpoint(config, template_id=template_id, gpus=gpus, container=container)
    endpoint = find_endpoint(endpoints, config.endpoint.name, templates=templates, owner=owner)
    if endpoint is None:
        shown = tuple(FieldChange(k, None, v) for k, v in spec.settings().items())
        if container is not None:
            shown += (
                FieldChange("image", None, container.image),
                *(FieldChange(f"env.{v.key}", None, v.shown()) for v in container.env),
            )
        if spec.model_references:
            shown += (FieldChange("model_references", None, list(spec.model_references)),)
        return spec, None, Operation("create-endpoint", spec.name, shown)
    check_ownership(owner, endpoint=endpoint, template=None, templates=templates, command=command)
    if endpoint.model_references is None and spec.model_references is not None and cp is not None:
        endpoint = replace(endpoint, model_references=cp.model_references(endpoint.id))
    changes = endpoint_changes(endpoint, spec)
    if not changes:
        return spec, endpoint, None
    return spec, endpoint, Operation("update-endpoint", f"{spec.name} ({endpoint.id})", tuple(changes))


def plan_endpoint(
    cp: ControlPlane,
    config: Config,
    *,
    image: str,
    gpus: gpu_selection.GpuSelection,
    owner: Ownership,
    registry_auth_id: str = "",
    environ: Mapping[str, str] | None = None,
    command: str = "deploy",
    init_timeout: int | None = None,
) -> EndpointPlan:
    """Read what exists and work out the mutations that make RunPod match deploy.yaml."""
    endpoints = cp.list_endpoints()
    templates = cp.list_templates()
    template_spec, template, template_op = plan_template(
        config,
        templates=templates,
        endpoints=endpoints,
        image=image,
        owner=owner,
        registry_auth_id=registry_auth_id,
        environ=environ,
        command=command,
        init_timeout=init_timeout,
        container_on_endpoint=cp.container_on_endpoint,
    )
    # Under REST v2 the endpoint keeps no template link.
    template_id = "" if cp.container_on_endpoint else template.id if template else NEW_TEMPLATE_ID
    endpoint_spec, endpoint, endpoint_op = plan_endpoint_only(
        config,
        endpoints=endpoints,
        templates=templates,
        template_id=template_id,
        gpus=gpus,
        owner=owner,
        command=command,
        container=template_spec if cp.container_on_endpoint else None,
        cp=cp,
    )
    operations = tuple(op for op in (template_op, endpoint_op) if op is not None)
    return EndpointPlan(template_spec, template, endpoint_spec, endpoint, operations)


def apply_template(
    cp: ControlPlane, spec: TemplateSpec, template: Template | None, reporter: Reporter | None = None
) -> Template:
    """Create the template, or replace it when it differs; the live one when nothing changed."""
    reporter = reporter or NullReporter()
    if template is None:
        reporter.info(f"Creating template {spec.name!r}")
        return cp.save_template(spec)
    if template_changes(template, spec):
        reporter.info(f"Updating template {spec.name!r} ({template.id})")
        return cp.save_template(spec, template=template)
    return template


def apply_endpoint(
    cp: ControlPlane, spec: EndpointSpec, endpoint: Endpoint | None, reporter: Reporter | None = None
) -> Endpoint:
    """Create the endpoint, or update it in place when it differs; the live one when nothing changed.

    saveEndpoint's templateId acts only on create (runpod-mcp endpoint-gpu-ids.ts), so a
    different template is set with updateEndpointTemplate, after the other fields. Under REST
    v2 there is no template link (``spec.template_id`` is "").
    """
    reporter = reporter or NullReporter()
    if endpoint is None:
        reporter.info(f"Creating endpoint {spec.name!r}")
        return cp.create_endpoint(spec)
    if endpoint_changes(endpoint, spec):
        reporter.info(f"Updating endpoint {spec.name!r} ({endpoint.id})")
        endpoint = cp.update_endpoint(endpoint, spec)
    if spec.template_id and endpoint.template_id != spec.template_id:
        reporter.info(f"Moving endpoint {spec.name!r} ({endpoint.id}) to template {spec.template_id}")
        endpoint = cp.set_endpoint_template(endpoint.id, spec.template_id)
    return endpoint


def apply_plan(
    cp: ControlPlane, plan: EndpointPlan, config: Config, reporter: Reporter | None = None
) -> EndpointResult:
    """Send the plan's mutations, in order. Nothing is sent when nothing changed."""
    template_id = ""
    if not cp.container_on_endpoint:
        template_id = apply_template(cp, plan.template_spec, plan.template, reporter).id
    spec = replace(plan.endpoint_spec, template_id=template_id)
    endpoint = apply_endpoint(cp, spec, plan.endpoint, reporter)
    return EndpointResult(
        name=spec.name,
        endpoint_id=endpoint.id,
        template_id=template_id,
        image=plan.template_spec.image,
        operations=plan.operations,
        urls=endpoint_urls(config, endpoint.id),
    )


def endpoint_urls(config: Config, endpoint_id: str, environ: Mapping[str, str] | None = None) -> EndpointUrls:
    base = f"{config.runpod.resolved_endpoint_url(environ)}/{endpoint_id}"
    return EndpointUrls(
        run=f"{base}/run",
        runsync=f"{base}/runsync",
        status=f"{base}/status/{{job_id}}",
        health=f"{base}/health",
        # Every method answers RunPod's OpenAI route (our workers the way worker-vllm does).
        openai_base=f"{base}/openai/v1",
    )


# --- registry credentials -----------------------------------------------------------------


def registry_auth_name(registry: str, username: str) -> str:
    """A stable name for RunPod's registry credentials, so re-runs reuse them."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{registry}-{username}").strip("-").lower()
    return f"rpdeploy-{slug}"[:100]


def ensure_registry_auth(
    cp: ControlPlane, *, registry: str, username: str, password: Secret, refresh: bool
) -> tuple[RegistryAuth, Operation | None]:
    """Find our credentials by name (create them if missing; update them when ``refresh``).

    RunPod never returns a stored password, so "changed?" cannot be asked of it: the caller
    decides (the deploy ledger refreshes them when the password's fingerprint changed).
    """
    name = registry_auth_name(registry, username)
    existing = next((a for a in cp.list_registry_auths() if a.name == name), None)
    if existing is None:
        return cp.save_registry_auth(name, username, password), Operation("create-registry-auth", name)
    if refresh:
        return cp.update_registry_auth(existing.id, username, password), Operation("update-registry-auth", name)
    return existing, None


# --- account secrets ----------------------------------------------------------------------


def ensure_secret(
    cp: ControlPlane, *, name: str, value: Secret, refresh: bool, description: str = ""
) -> tuple[AccountSecret, Operation | None]:
    """Find the account secret by name (create it if missing; set its value again when ``refresh``).

    The value is never read back (RunPod has no way to), so whether it changed is the caller's
    call, as for registry credentials: the deploy ledger refreshes it when the token's
    fingerprint changed.
    """
    existing = next((s for s in cp.list_secrets() if s.name == name), None)
    if existing is None:
        return cp.create_secret(name, value, description=description), Operation("create-secret", name)
    if refresh:
        return cp.update_secret_value(existing.id, value), Operation("update-secret", name)
    return existing, None


def ensure_hf_secret(
    cp: ControlPlane, config: Config, *, refresh: bool, dry_run: bool = False, environ: Mapping[str, str] | None = None
) -> tuple[AccountSecret | None, Operation | None]:
    """The RunPod secret the template env references for model.hf_token (None when not used)."""
    wanted = hf_token_secret(config, environ)
    if wanted is None:
        return None, None
    name, token = wanted
    try:
        if dry_run:
            found = next((s for s in cp.list_secrets() if s.name == name), None)
            if found is None:
                return None, Operation("create-secret", name)
            return found, Operation("update-secret", name) if refresh else None
        description = f"Hugging Face token of rpdeploy deployment {config.deployment_mark} (model.hf_token)"
        return ensure_secret(cp, name=name, value=token, refresh=refresh, description=description)
    except AuthError:
        raise
    except ApiError as exc:
        # Listing secrets and setting a value again are not in RunPod's docs (only create and
        # delete are): if RunPod refuses them, say what the way out is.
        raise ApiError(
            f"cannot keep model.hf_token in the RunPod secret {name!r}: {exc.message}",
            hint="RunPod documents only secretCreate and secretDelete; to go on without a secret, set "
            "model.hf_token_delivery: template-env (the token then sits in the template env in plain text)",
            status=exc.status,
            retryable=exc.retryable,
        ) from exc


# --- delete -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletePlan:
    endpoint: Endpoint | None
    template: Template | None
    operations: tuple[Operation, ...]


def plan_delete(
    cp: ControlPlane,
    config: Config,
    owner: Ownership,
    *,
    pending: Mapping[str, Any] | None = None,
    command: str = "destroy",
) -> DeletePlan:
    """What deleting this deployment takes: its endpoint (scaled to zero first) and template.

    ``pending`` is the ledger's record of a delete that stopped halfway: its objects are
    looked up by id first, so a resumed delete finishes what it started even when
    deploy.yaml's names changed since. Refuses (NotOursError) objects that are not ours.

    Under REST v2 deleting an endpoint deletes its template too, and no scale to zero comes
    first (v2 states no such precondition: "all workers are terminated"); a template of ours
    that deploy.yaml names is still listed, for what a GraphQL deploy may have left.
    """
    endpoints = cp.list_endpoints()
    templates = cp.list_templates()
    pending = pending or {}
    endpoint = next((e for e in endpoints if pending.get("endpoint_id") and e.id == pending["endpoint_id"]), None)
    if endpoint is None:
        endpoint = find_endpoint(endpoints, config.endpoint.name, templates=templates, owner=owner)
    template: Template | None = None
    if endpoint is not None and endpoint.template_id:
        # The endpoint's own template, whatever deploy.yaml names it now (template_name may have
        # changed since): going by name alone would leave it behind.
        template = bound_template(endpoint, templates)
    elif endpoint is not None:
        # No link shown (REST v2): the named template, if it is ours (made by a GraphQL deploy).
        named = find_template(templates, config.endpoint.template)
        template = named if named is not None and owner.owns_template(named) else None
    else:
        # No endpoint (an earlier delete stopped halfway): the template it was deleting, else the
        # one deploy.yaml names, unless another endpoint uses it (RunPod would refuse, and it is
        # not ours to delete).
        template = next((t for t in templates if pending.get("template_id") and t.id == pending["template_id"]), None)
        if template is None:
            template = find_template(templates, config.endpoint.template)
        if template is not None and any(e.template_id == template.id for e in endpoints):
            template = None
    check_ownership(owner, endpoint=endpoint, template=template, templates=templates, command=command)
    operations: list[Operation] = []
    if endpoint is not None:
        if (endpoint.workers_min or endpoint.workers_max) and not cp.deletes_template_with_endpoint:
            changes = (
                FieldChange("workers_min", endpoint.workers_min, 0),
                FieldChange("workers_max", endpoint.workers_max, 0),
            )
            operations.append(Operation("scale-to-zero", f"{endpoint.name} ({endpoint.id})", changes))
        operations.append(Operation("delete-endpoint", f"{endpoint.name} ({endpoint.id})"))
    if template is not None:
        operations.append(Operation("delete-template", template.name))
    return DeletePlan(endpoint, template, tuple(operations))


def spec_from_live(endpoint: Endpoint) -> EndpointSpec:
    """The live endpoint's own settings as a spec (to change one thing and keep the rest)."""
    container = None
    if endpoint.container is not None:
        live = endpoint.container
        container = TemplateSpec(
            name="",
            image=live.image,
            env=tuple(EnvVar(k, v) for k, v in live.env),
            container_disk_gb=live.container_disk_gb,
            registry_auth_id=live.registry_auth_id,
            docker_args=live.docker_args,
        )
    return EndpointSpec(
        name=endpoint.name,
        template_id=endpoint.template_id,
        gpus=endpoint.gpus,
        gpu_count=endpoint.gpu_count,
        workers_min=endpoint.workers_min,
        workers_max=endpoint.workers_max,
        idle_timeout=int(endpoint.idle_timeout or 5),
        scaler_type=endpoint.scaler_type or "QUEUE_DELAY",
        scaler_value=int(endpoint.scaler_value or 4),
        flashboot=endpoint.flashboot,
        execution_timeout_ms=endpoint.execution_timeout_ms,
        allowed_cuda_versions=endpoint.allowed_cuda_versions,
        locations=endpoint.locations,
        container=container,
    )


def connect(
    config: Config,
    environ: Mapping[str, str] | None = None,
    *,
    reporter: Reporter | None = None,
    **kwargs: Any,
) -> ControlPlane:
    """The control plane for ``config``: the API runpod.api picks, the key from its reference,
    the URL from config/env. Warnings about what a retired GraphQL takes away go to ``reporter``."""
    from rpdeploy.config import RunpodApi
    from rpdeploy.runpod.controlplane import GraphQLControlPlane

    api = config.runpod.resolved_api(environ)
    key = config.runpod.api_key.resolve(base_dir=config.base_dir, environ=environ, field="runpod.api_key")
    url = config.runpod.resolved_api_url(environ)
    if api is RunpodApi.REST:
        from rpdeploy.runpod.rest import RestControlPlane

        warn = reporter.warn if reporter is not None else None
        return RestControlPlane(key, api_url=url, warn=warn, **kwargs)
    return GraphQLControlPlane(key, api_url=url, **kwargs)


# --- one call for commands and stages -----------------------------------------------------


@dataclass(frozen=True)
class EnsureResult:
    plan: EndpointPlan
    result: EndpointResult | None  # None for a dry run
    registry_operation: Operation | None = None
    secret_operation: Operation | None = None

    @property
    def operations(self) -> tuple[Operation, ...]:
        extra = tuple(op for op in (self.registry_operation, self.secret_operation) if op is not None)
        return extra + self.plan.operations


def registry_credentials(config: Config, environ: Mapping[str, str] | None = None) -> tuple[str, Secret] | None:
    """Registry login RunPod needs to pull a private image: from image.credentials."""
    if config.image is None or config.image.credentials is None:
        return None
    creds = config.image.credentials
    user = creds.username.resolve(base_dir=config.base_dir, environ=environ, field="image.credentials.username")
    password = creds.password.resolve(base_dir=config.base_dir, environ=environ, field="image.credentials.password")
    return user.reveal(), password


def ensure_endpoint(
    cp: ControlPlane,
    config: Config,
    *,
    image: str | None,
    dry_run: bool = False,
    refresh_registry_auth: bool = False,
    require_existing: bool = False,
    owner: Ownership | None = None,
    command: str = "endpoint create",
    reporter: Reporter | None = None,
    environ: Mapping[str, str] | None = None,
    refresh_secret: bool = False,
    init_timeout: int | Literal["estimate"] | None = "estimate",
) -> EnsureResult:
    """Make RunPod's template and endpoint match deploy.yaml (or, dry, say what that takes).

    ``init_timeout``: RUNPOD_INIT_TIMEOUT for the template, or "estimate" to work it out here
    (:func:`estimated_init_timeout`), so every command writes the template deploy would.
    """
    reporter = reporter or NullReporter()
    owner = owner or ownership(config)
    run_image = worker_image(config, image)
    if init_timeout == "estimate":
        init_timeout = estimated_init_timeout(config, reporter=reporter, environ=environ)
    selection = resolve_gpus(cp, config, reporter)
    auth_id, auth_op = "", None
    credentials = registry_credentials(config, environ)
    if credentials is not None and config.image is not None:
        username, password = credentials
        if dry_run:
            name = registry_auth_name(config.image.registry, username)
            found = next((a for a in cp.list_registry_auths() if a.name == name), None)
            auth_id = found.id if found else "<new registry auth>"
            if found is None:
                auth_op = Operation("create-registry-auth", name)
            elif refresh_registry_auth:
                auth_op = Operation("update-registry-auth", name)
        else:
            auth, auth_op = ensure_registry_auth(
                cp, registry=config.image.registry, username=username, password=password, refresh=refresh_registry_auth
            )
            auth_id = auth.id
    plan = plan_endpoint(
        cp,
        config,
        image=run_image,
        gpus=selection,
        owner=owner,
        registry_auth_id=auth_id,
        environ=environ,
        command=command,
        init_timeout=init_timeout,
    )
    if require_existing and plan.endpoint is None:
        raise ApiError(
            f"no endpoint named {config.endpoint.name!r} exists yet",
            hint="create it with `rpdeploy endpoint create` (or `rpdeploy deploy`)",
        )
    # The secret before the template that references it (a worker started in between would fail).
    _, secret_op = ensure_hf_secret(cp, config, refresh=refresh_secret, dry_run=dry_run, environ=environ)
    if dry_run:
        return EnsureResult(plan, None, auth_op, secret_op)
    return EnsureResult(plan, apply_plan(cp, plan, config, reporter), auth_op, secret_op)
