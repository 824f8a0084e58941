"""Whose an object on RunPod is: the ownership mark, finding objects by name, refusing others'.

Owns the mark (env ``RPDEPLOY_DEPLOYMENT`` in the container's env), :class:`Ownership` (the mark,
the ids this project's ledger recorded, ``--adopt``), finding the template and endpoint by their
exact names, and :func:`check_ownership`, which refuses (NotOursError) to touch what is not ours
unless adopted. The mark is found on the endpoint's own env (REST v2) or its bound template's
(GraphQL), so a project that switches API finds the same endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpdeploy.errors import ApiError, NotOursError
from rpdeploy.runpod.models import Container, Endpoint, Template

if TYPE_CHECKING:
    from pathlib import Path

    from rpdeploy.config import Config
    from rpdeploy.deploy.ledger import Ledger

#: The ownership mark: an env var of the container. RunPod keeps it as sent and returns it on
#: every read: on the template (GraphQL, which the endpoint reaches through its templateId),
#: or on the endpoint itself (REST v2).
MARK_KEY = "RPDEPLOY_DEPLOYMENT"
#: The ledger's record of a delete under way (``Ledger.extra``): what it deletes and how far
#: it got, so a delete killed halfway resumes on the same objects.
PENDING_DELETE = "deleting"


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
