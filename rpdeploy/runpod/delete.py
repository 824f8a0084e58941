"""Deleting a deployment: its endpoint (scaled to zero first where needed) and its template.

Owns the delete plan, which resumes a delete that stopped halfway (the ledger's
``PENDING_DELETE`` record: its objects are looked up by id first) and refuses objects that are
not ours, and :func:`spec_from_live` (a live endpoint's own settings as a spec, to change one
thing and keep the rest).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rpdeploy.runpod.models import Endpoint, EndpointSpec, EnvVar, Template, TemplateSpec
from rpdeploy.runpod.ownership import Ownership, bound_template, check_ownership, find_endpoint, find_template
from rpdeploy.runpod.plan import FieldChange, Operation

if TYPE_CHECKING:
    from rpdeploy.config import Config
    from rpdeploy.runpod.controlplane import ControlPlane


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
