"""Deletes that finish: the endpoint, then its template, waiting for RunPod to let it go.

Over REST v2 deleting an endpoint also deletes its template and needs no scale to zero first;
a template of ours left by a GraphQL deploy is still deleted (by id), with the same waiting.

RunPod keeps a template "in use" for up to 2 minutes after its endpoint is deleted (docs
``sdks/graphql/manage-pod-templates.mdx``), so ``deleteTemplate`` right after
``deleteEndpoint`` fails. The template is retried on that answer only, with progress, for a
bounded time; then the error names what is left and the command that finishes it.

Every step is written to the ledger as it happens (``extra["deleting"]``: the endpoint and
template being deleted, and the steps done), so a delete killed at any point (SIGKILL
included) resumes on the same objects when run again, even if deploy.yaml's names changed
in between. Once the endpoint is gone, the stages describing it leave the ledger at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpdeploy.deploy.ledger import Ledger
from rpdeploy.errors import ApiError
from rpdeploy.output import NullReporter, Reporter

if TYPE_CHECKING:
    from rpdeploy.config import Config
    from rpdeploy.runpod.controlplane import ControlPlane
    from rpdeploy.runpod.deployment import Operation
    from rpdeploy.runpod.models import Template

#: How long to wait for RunPod to release a template: its docs say up to 2 minutes.
DEFAULT_WAIT = 180.0
#: Ledger stages that describe the endpoint (or depend on it): void once it is deleted.
DELETED_STAGES = ("template", "endpoint", "gpu", "backend-env", "backend-restart", "smoke-test", "integration-test")
_IN_USE = "in use"
#: The longest pause between two deleteTemplate attempts, in seconds.
POLL_CAP = 5.0


@dataclass(frozen=True)
class DeleteResult:
    name: str
    operations: tuple[Operation, ...]
    endpoint_id: str | None = None
    template: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: Seconds spent waiting for RunPod to release the template.
    waited: float = 0.0


def pending_delete(ledger: Ledger) -> dict[str, Any] | None:
    """The ledger's record of a delete that has not finished, if any."""
    from rpdeploy.runpod.deployment import PENDING_DELETE

    record = ledger.extra.get(PENDING_DELETE)
    return record if isinstance(record, dict) else None


def forget_endpoint(ledger: Ledger) -> None:
    """Drop the ledger's records of a deleted endpoint: a stale endpoint id would send the smoke
    test (and a resumed deploy) to an endpoint that is gone."""
    for name in DELETED_STAGES:
        ledger.stages.pop(name, None)
    ledger.extra.pop("release", None)  # the release the deleted endpoint ran (rpdeploy.runpod.release)


def delete_deployment(
    cp: ControlPlane,
    config: Config,
    *,
    state_dir: Path | None = None,
    adopt: bool = False,
    wait: float = DEFAULT_WAIT,
    command: str = "destroy",
    reporter: Reporter | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DeleteResult:
    """Scale the endpoint to zero, delete it, then delete its template, recording each step.

    ``command`` is how the user ran this (``destroy``, ``endpoint delete``): the error for a
    template RunPod still holds after ``wait`` seconds tells them to run it again.
    """
    from rpdeploy.runpod.deployment import PENDING_DELETE, ownership, plan_delete, spec_from_live

    reporter = reporter or NullReporter()
    folder = state_dir or config.state_dir
    ledger = Ledger.load(folder)
    pending = pending_delete(ledger)
    owner = ownership(config, ledger=ledger, adopt=adopt)
    plan = plan_delete(cp, config, owner, pending=pending, command=command)
    endpoint, template = plan.endpoint, plan.template
    notes: list[str] = []
    if endpoint is None and template is None:
        # Gone already (deleted in the console?): so is the ledger's record of it.
        stale = [name for name in DELETED_STAGES if name in ledger.stages]
        if stale or pending is not None:
            forget_endpoint(ledger)
            ledger.extra.pop(PENDING_DELETE, None)
            ledger.save()
        notes.append(f"nothing named {config.endpoint.name!r} (endpoint) or {config.endpoint.template!r} (template)")
        return DeleteResult(config.endpoint.name, (), notes=tuple(notes))

    record: dict[str, Any] = dict(pending or {})
    record.setdefault("steps", [])
    if endpoint is not None:
        record.update(endpoint_id=endpoint.id, endpoint_name=endpoint.name)
    if template is not None:
        record.update(template_id=template.id, template_name=template.name)

    def step(name: str) -> None:
        record["steps"] = [*record["steps"], name]
        ledger.extra[PENDING_DELETE] = record
        ledger.save()
        reporter.event("delete", step=name, endpoint_id=record.get("endpoint_id"), template=record.get("template_name"))

    step("started")
    if endpoint is not None:
        if any(op.kind == "scale-to-zero" for op in plan.operations):
            # "The endpoint's min and max workers must both be zero before you can delete it." (docs)
            reporter.info(f"Scaling endpoint {endpoint.name!r} ({endpoint.id}) to zero workers")
            cp.update_endpoint(endpoint, replace(spec_from_live(endpoint), workers_min=0, workers_max=0))
            step("scaled-to-zero")
        reporter.info(f"Deleting endpoint {endpoint.name!r} ({endpoint.id})")
        cp.delete_endpoint(endpoint.id)
        forget_endpoint(ledger)
        step("endpoint-deleted")
    else:
        notes.append(f"the endpoint was already gone (no endpoint named {config.endpoint.name!r})")
    waited = 0.0
    # REST v2 deletes the endpoint's bound template with it: ask before deleting by id.
    gone = template is not None and endpoint is not None and cp.deletes_template_with_endpoint
    if gone and template is not None and not any(t.id == template.id for t in cp.list_templates()):
        notes.append(f"template {template.name!r} was deleted with its endpoint")
        template = None
    if template is not None:
        waited = _delete_template(cp, template, wait=wait, command=command, reporter=reporter, sleep=sleep, clock=clock)
        step("template-deleted")
    else:
        notes.append(f"no template of this deployment named {config.endpoint.template!r} was left")
    forget_endpoint(ledger)
    ledger.extra.pop(PENDING_DELETE, None)
    ledger.save()
    return DeleteResult(
        name=config.endpoint.name,
        operations=plan.operations,
        endpoint_id=endpoint.id if endpoint else record.get("endpoint_id"),
        template=template.name if template else None,
        notes=tuple(notes),
        waited=round(waited, 3),
    )


def _delete_template(
    cp: ControlPlane,
    template: Template,
    *,
    wait: float,
    command: str,
    reporter: Reporter,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> float:
    """Delete the template, retrying only while RunPod answers that it is in use."""
    reporter.info(f"Deleting template {template.name!r} ({template.id})")
    started = clock()
    attempt = 0
    message = (
        f"Waiting for RunPod to release template {template.name!r}: it can take up to 2 minutes after "
        f"its endpoint is deleted (giving up after {wait:.0f}s)"
    )
    with reporter.status(message) as status:
        while True:
            attempt += 1
            try:
                cp.delete_template(template)
                return clock() - started
            except ApiError as exc:
                text = exc.message.lower()
                if "not found" in text:
                    return clock() - started  # gone already (deleted meanwhile): nothing is left
                if _IN_USE not in text:
                    raise
                waited = clock() - started
                if waited >= wait:
                    raise ApiError(
                        f"the endpoint is deleted, but RunPod still holds its template {template.name!r} "
                        f"({template.id}) as in use after {waited:.0f}s: {exc.message}",
                        hint=f"RunPod can take a few minutes to release a template; run `rpdeploy {command} --yes` "
                        "again to delete what is left (it resumes where this one stopped)",
                        status=exc.status,
                        retryable=True,
                    ) from exc
                reporter.event("delete", step="template-in-use", template=template.name, waited=round(waited, 1))
                status.update(message)
                # 1, 2, 4, then every 5 s: RunPod answers within 2 minutes, and each ask is one request.
                sleep(min(2.0 ** min(attempt - 1, 3), POLL_CAP, max(wait - waited, 0.05)))
