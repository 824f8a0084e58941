"""Plan and apply: the mutations that make RunPod's template and endpoint match the desired state.

Owns :class:`Operation` (one mutation, as shown before it is sent; secrets masked), the diff of
live and desired containers, templates and endpoints, the plan (checked for ownership before
anything is created), and applying it: only the planned mutations are sent, none when nothing
changed. Where the container lives is the transport's answer (``cp.container_on_endpoint``):
under GraphQL on a template the endpoint is bound to, under REST v2 on the endpoint itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from rpdeploy.errors import ApiError
from rpdeploy.output import NullReporter, Reporter
from rpdeploy.preflight import gpus as gpu_selection
from rpdeploy.runpod.desired import desired_endpoint, desired_template
from rpdeploy.runpod.models import Container, Endpoint, EndpointSpec, EnvVar, Template, TemplateSpec
from rpdeploy.runpod.ownership import Ownership, bound_template, check_ownership, find_endpoint, find_template
from rpdeploy.secrets import MASK

if TYPE_CHECKING:
    from rpdeploy.config import Config
    from rpdeploy.runpod.controlplane import ControlPlane

NEW_TEMPLATE_ID = "<new template>"

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
