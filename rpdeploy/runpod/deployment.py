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

Split by concern: ``desired`` (what deploy.yaml asks for), ``ownership`` (the mark, finding,
NotOurs and adopt), ``plan`` (plan and apply), ``account`` (registry credentials, secrets) and
``delete``. This module keeps :func:`connect` and :func:`ensure_endpoint`, the one call commands
and stages make, and re-exports the names the rest of rpdeploy imports from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rpdeploy.errors import ApiError
from rpdeploy.output import NullReporter, Reporter
from rpdeploy.runpod.account import (
    ensure_hf_secret,
    ensure_registry_auth,
    ensure_secret,
    registry_auth_name,
    registry_credentials,
)
from rpdeploy.runpod.delete import DeletePlan, plan_delete, spec_from_live
from rpdeploy.runpod.desired import (
    BAKED_MODEL_PATH,
    HF_TOKEN_ENV,
    describe_gpus,
    desired_endpoint,
    desired_template,
    estimated_init_timeout,
    hf_token_secret,
    model_env,
    resolve_env,
    resolve_gpus,
    secret_reference,
    weights_endpoint_fields,
    weights_env,
    with_release,
    worker_image,
)
from rpdeploy.runpod.ownership import (
    MARK_KEY,
    PENDING_DELETE,
    Ownership,
    bound_template,
    check_ownership,
    endpoint_mark,
    find_endpoint,
    find_template,
    live_container,
    ownership,
    template_mark,
)
from rpdeploy.runpod.plan import (
    NEW_TEMPLATE_ID,
    EndpointPlan,
    EndpointResult,
    EndpointUrls,
    FieldChange,
    Operation,
    OperationKind,
    apply_endpoint,
    apply_plan,
    apply_template,
    container_changes,
    endpoint_changes,
    endpoint_urls,
    plan_endpoint,
    plan_endpoint_only,
    plan_template,
    template_changes,
)

if TYPE_CHECKING:
    from rpdeploy.config import Config
    from rpdeploy.runpod.controlplane import ControlPlane

__all__ = [
    "BAKED_MODEL_PATH",
    "HF_TOKEN_ENV",
    "MARK_KEY",
    "NEW_TEMPLATE_ID",
    "PENDING_DELETE",
    "DeletePlan",
    "EndpointPlan",
    "EndpointResult",
    "EndpointUrls",
    "EnsureResult",
    "FieldChange",
    "Operation",
    "OperationKind",
    "Ownership",
    "apply_endpoint",
    "apply_plan",
    "apply_template",
    "bound_template",
    "check_ownership",
    "connect",
    "container_changes",
    "describe_gpus",
    "desired_endpoint",
    "desired_template",
    "endpoint_changes",
    "endpoint_mark",
    "endpoint_urls",
    "ensure_endpoint",
    "ensure_hf_secret",
    "ensure_registry_auth",
    "ensure_secret",
    "estimated_init_timeout",
    "find_endpoint",
    "find_template",
    "hf_token_secret",
    "live_container",
    "model_env",
    "ownership",
    "plan_delete",
    "plan_endpoint",
    "plan_endpoint_only",
    "plan_template",
    "registry_auth_name",
    "registry_credentials",
    "resolve_env",
    "resolve_gpus",
    "secret_reference",
    "spec_from_live",
    "template_changes",
    "template_mark",
    "weights_endpoint_fields",
    "weights_env",
    "with_release",
    "worker_image",
]


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
