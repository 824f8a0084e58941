"""REST v2's answers and request checks: RFC 9457 problem documents (:func:`problem`,
:class:`Refused`), the rate-limit headers, request bodies validated against RunPod's OpenAPI
document (:func:`validate`), and the ``Endpoint`` and ``Template`` shapes (:func:`endpoint_rest`,
:func:`template_rest`). The routes are ``rest.py``'s.

The contract is RunPod's own OpenAPI document for v2 (``rpdeploy/runpod/openapi-v2.json``:
``runpod/docs`` ``api-reference-v2/openapi.json``, 2026-08-18). Request bodies are validated
against its schemas with a JSON Schema 2020-12 validator, as RunPod's front door does: a body
that does not match (an unknown field under ``unevaluatedProperties: false``, a missing
required field, a wrong type) is a 422 whose ``errors[]`` read like RunPod's ("$: additional
properties 'bogus' not allowed", "$: missing property 'name'": the migration notes RunPod
verified against the live API, runpod-plugins-official ``runpod-migrate/reference/
breaking-changes.md``). Errors are RFC 9457 problem documents. Business rules the document
states in prose are enforced after that, by the routes.
"""

from __future__ import annotations

import json
import re
from functools import cache
from http import HTTPStatus
from typing import Any

from rpdeploy.emulator.invoke import Response
from rpdeploy.emulator.state import EmulatorState, Endpoint, Template
from rpdeploy.preflight import gpus

PROBLEM = "application/problem+json"
#: Rate-limit headers v2 sends on authenticated answers (RateLimitHeader, RateLimitPolicyHeader);
#: the quotas are the document's examples, not RunPod's (unknown).
RATE_LIMIT_HEADERS = (
    ("RateLimit", '"minute";r=59;t=60, "hour";r=2999;t=3600, "day";r=49999;t=86400'),
    ("RateLimit-Policy", '"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400'),
)
_FLASHBOOT = ("OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT")


def problem(status: int, detail: str, errors: list[str] | None = None) -> Response:
    """An RFC 9457 problem document (``ErrorResponse``)."""
    body: dict[str, Any] = {"title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    headers: tuple[tuple[str, str], ...] = (("Content-Type", PROBLEM),)
    if status != 401:
        headers += RATE_LIMIT_HEADERS
    return Response(status, body, headers)


class Refused(Exception):
    def __init__(self, status: int, detail: str, errors: list[str] | None = None) -> None:
        super().__init__(detail)
        self.response = problem(status, detail, errors)


# --- the document's schemas ----------------------------------------------------------------------


@cache
def document() -> dict[str, Any]:
    from importlib import resources

    text = resources.files("rpdeploy.runpod").joinpath("openapi-v2.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(schema: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    uri = "urn:runpod:openapi-v2"
    registry = Registry().with_resource(uri, Resource.from_contents(document(), default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"{uri}#/components/schemas/{schema}"}, registry=registry)


def _where(path: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _words(error: Any) -> list[str]:
    """A jsonschema error in the words RunPod's validator uses (see the module docstring)."""
    where = _where(error.absolute_path)
    if error.validator in ("unevaluatedProperties", "additionalProperties"):
        # jsonschema names them in its message: "... ('a', 'b' were unexpected)".
        found = re.search(r"\((.*) (?:was|were) unexpected\)", error.message)
        names = found.group(1) if found else "?"
        return [f"{where}: additional properties {names} not allowed"]
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in (error.instance or {})]
        return [f"{where}: missing property '{name}'" for name in missing]
    if error.context:  # oneOf/anyOf: the closest branch's failures say more
        best = min(error.context, key=lambda e: len(list(e.absolute_path)) * -1)
        return _words(best)
    return [f"{where}: {error.message}"]


def validate(schema: str, body: Any) -> None:
    """Raise a 422 (RunPod's "Request validation failed.") unless ``body`` matches ``schema``."""
    problems = sorted(_validator(schema).iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    if problems:
        errors = [text for error in problems for text in _words(error)]
        raise Refused(422, "Request validation failed.", list(dict.fromkeys(errors))[:20])


# --- shapes --------------------------------------------------------------------------------------


def split(text: str | None) -> list[str]:
    """A comma-separated field as a list, blanks dropped."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def template_rest(template: Template) -> dict[str, Any]:
    """A template as ``Template`` (v2) shows it."""
    return {
        "id": template.id,
        "name": template.name,
        "image": template.image_name,
        "args": template.docker_args,
        "disk": template.container_disk_in_gb,
        "mounts": {},
        "ports": split(template.ports),
        "env": template.env_dict(),
        "registry": template.container_registry_auth_id or None,
        "serverless": template.is_serverless,
        "public": template.is_public,
        "category": template.category if template.category in ("CPU", "NVIDIA", "AMD") else "NVIDIA",
        "startSsh": template.start_ssh,
        "startJupyter": template.start_jupyter,
        "allowedCudaVersions": [],
    }


def endpoint_rest(state: EmulatorState, endpoint: Endpoint, invoke_base: str) -> dict[str, Any]:
    """An endpoint as ``Endpoint`` (v2) shows it: its bound template's container, no templateId."""
    template = state.templates.get(endpoint.template_id)
    selection = gpus.GpuSelection.parse(endpoint.gpu_ids)
    workers: dict[str, Any] = {"min": endpoint.workers_min, "max": endpoint.workers_max}
    if endpoint.scaler_type == "REQUEST_COUNT":
        scaling: dict[str, Any] = {"type": "REQUEST_COUNT", "requestCount": endpoint.scaler_value}
    else:
        scaling = {"type": "QUEUE_DELAY", "queueDelay": endpoint.scaler_value}
        workers["idleTimeout"] = endpoint.idle_timeout
    base = f"{invoke_base}/{endpoint.id}"
    data: dict[str, Any] = {
        "id": endpoint.id,
        "name": endpoint.name,
        "type": "LOAD_BALANCER" if endpoint.type == "LB" else "QUEUE",
        "image": template.image_name if template else "",
        "args": template.docker_args if template else "",
        "disk": max(1, template.container_disk_in_gb) if template else 1,
        "env": template.env_dict() if template else {},
        "ports": split(template.ports) if template else [],
        "registry": (template.container_registry_auth_id or None) if template else None,
        "gpu": None
        if endpoint.instance_ids
        else {
            "pools": sorted(selection.pools),
            "excludedTypes": sorted(selection.exclusions),
            "count": endpoint.gpu_count,
            "allowedCudaVersions": split(endpoint.allowed_cuda_versions),
            "minCudaVersion": endpoint.min_cuda_version or None,
        },
        "workers": workers,
        "scaling": scaling,
        "dataCenterIds": split(endpoint.locations),
        "networkVolumes": list(endpoint.network_volume_ids),
        "timeout": endpoint.execution_timeout_ms,
        "flashboot": endpoint.flash_boot_type if endpoint.flash_boot_type in _FLASHBOOT else "OFF",
        "createdAt": endpoint.created_at,
        "requestUrls": {
            "run": f"{base}/run",
            "runSync": f"{base}/runsync",
            "status": f"{base}/status/{{job_id}}",
            "stream": f"{base}/stream/{{job_id}}",
            "cancel": f"{base}/cancel/{{job_id}}",
            "retry": f"{base}/retry/{{job_id}}",
            "purgeQueue": f"{base}/purge-queue",
            "health": f"{base}/health",
        },
    }
    if data["gpu"] is None:
        data.pop("gpu")
    return data
