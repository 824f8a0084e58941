"""RunPod's REST API v2 control plane (``/v2/serverless``, ``/v2/templates``, ``/v2/registries``,
``/v2/catalog/gpus``), over the same account state as the GraphQL one (``control.py``).

The contract is RunPod's own OpenAPI document for v2 (``rpdeploy/runpod/openapi-v2.json``:
``runpod/docs`` ``api-reference-v2/openapi.json``, 2026-08-18). Request bodies are validated
against its schemas with a JSON Schema 2020-12 validator, as RunPod's front door does: a body
that does not match (an unknown field under ``unevaluatedProperties: false``, a missing
required field, a wrong type) is a 422 whose ``errors[]`` read like RunPod's ("$: additional
properties 'bogus' not allowed", "$: missing property 'name'": the migration notes RunPod
verified against the live API, runpod-plugins-official ``runpod-migrate/reference/
breaking-changes.md``). Errors are RFC 9457 problem documents. Business rules the document
states in prose are enforced after that, each with its source; "emulator rule" marks ours.

One account, two APIs: an endpoint made here is a GraphQL endpoint too, and the other way
round. Every endpoint has a bound template holding its container (what RunPod's
``DELETE /v2/serverless/{id}`` deletes "and its bound template"): a REST create makes one,
named after the endpoint (how RunPod names it is not known), a ``templateId`` given to create
is copied into it (v2: "resolved at create time", later edits "do not affect the endpoint"),
and a PATCH of ``image``/``env``/... writes it. GraphQL sees that template bound to the
endpoint; REST shows its settings on the endpoint and no ``templateId``. A PATCH that changes
the container, the GPUs or CUDA, the volumes or flashboot makes a new release (version + 1:
``updateEndpoint``, "container-affecting changes ... create a new endpoint release"); workers,
scaling and timeout apply in place.

Worker logs (``/workers/{workerId}/logs``) are an SSE stream made from what the fleet did:
the worker's start (host, image pull, where its weights came from: the cold start), its
readiness, and each job it ran, with the job's error. Each event's id is its line's time, as
the document's schema has it (``Last-Event-ID`` is a date-time; its example id, with a
``/<sequence>`` suffix, is not one), a microsecond apart at least so no two lines share one.
The stream replays ``tail`` lines (``since``/``Last-Event-ID``, exclusive, resume), then
stays open for new lines while the worker lives;
it closes after ``STREAM_IDLE`` seconds without one (an emulator rule: RunPod's never
closes, and a client reconnects with ``Last-Event-ID``).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus
from typing import Any

from rpdeploy.emulator import ids, releases
from rpdeploy.emulator.invoke import Response
from rpdeploy.emulator.state import EmulatorState, Endpoint, EnvVar, RegistryAuth, Template, Worker
from rpdeploy.preflight import gpus

PROBLEM = "application/problem+json"
#: Seconds a log stream stays open without a new line (emulator rule, see the module docstring).
STREAM_IDLE = 15.0
#: Seconds between SSE comments on a quiet stream (emulator rule: how a reader that left is noticed).
KEEP_ALIVE = 2.0
#: The v2 control-plane paths, told apart from the invoke API's /v2/{endpoint_id}/...
ROOTS = ("serverless", "templates", "registries", "catalog")
#: Rate-limit headers v2 sends on authenticated answers (RateLimitHeader, RateLimitPolicyHeader);
#: the quotas are the document's examples, not RunPod's (unknown).
RATE_LIMIT_HEADERS = (
    ("RateLimit", '"minute";r=59;t=60, "hour";r=2999;t=3600, "day";r=49999;t=86400'),
    ("RateLimit-Policy", '"minute";q=60;w=60, "hour";q=3000;w=3600, "day";q=50000;w=86400'),
)
_TYPES = {"QUEUE": "QB", "LOAD_BALANCER": "LB"}
_FLASHBOOT = ("OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT")


def is_rest(path: str) -> bool:
    """Is ``path`` the v2 control plane (not the invoke API of an endpoint)?"""
    parts = [p for p in path.split("/") if p]
    return len(parts) >= 2 and parts[0] == "v2" and parts[1] in ROOTS


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


def _split(text: str | None) -> list[str]:
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
        "ports": _split(template.ports),
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
        "ports": _split(template.ports) if template else [],
        "registry": (template.container_registry_auth_id or None) if template else None,
        "gpu": None
        if endpoint.instance_ids
        else {
            "pools": sorted(selection.pools),
            "excludedTypes": sorted(selection.exclusions),
            "count": endpoint.gpu_count,
            "allowedCudaVersions": _split(endpoint.allowed_cuda_versions),
            "minCudaVersion": endpoint.min_cuda_version or None,
        },
        "workers": workers,
        "scaling": scaling,
        "dataCenterIds": _split(endpoint.locations),
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


# --- logs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    at: float  # emulator clock
    source: str  # container | system
    line: str


def _rfc3339(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_WEIGHTS = {
    "cached": "model weights found in RunPod's model cache on this host ({cache}): loading them from local disk",
    "download": "downloading the model weights from the Hugging Face Hub",
    "bake": "loading the model baked into the image",
    "network-volume": "loading the model weights from the network volume",
    "network-volume (first download)": "downloading the model weights onto the network volume (first worker)",
}


def worker_log(state: EmulatorState, endpoint: Endpoint, worker: Worker, placement: tuple[str, str]) -> list[LogEntry]:
    """What the worker has logged by now, oldest first (state lock held)."""
    gpu, data_center = placement
    model = worker.env.get("MODEL_NAME") or worker.env.get("MODEL_PATH") or "(no MODEL_NAME)"
    start = worker.started_at
    release = worker.env.get("RPDEPLOY_RELEASE")
    entries = [
        LogEntry(start, "system", f"worker {worker.id} assigned to a {gpu} host in {data_center}"),
        LogEntry(start, "system", f"pulling image {worker.image or '(none)'}"),
        LogEntry(start, "container", f"cold start: {model}"),
    ]
    if worker.weights:
        text = _WEIGHTS.get(worker.weights, worker.weights)
        entries.append(LogEntry(start, "container", text.format(cache="/runpod-volume/huggingface-cache/hub")))
    if worker.start_error is not None:
        entries.append(LogEntry(start, "container", f"error: {worker.start_error}"))
    if release:
        entries.append(LogEntry(start, "container", f"release {release}"))
    if worker.failed_at is not None:
        # A release that cannot start (fault release_start_fail, emulator/rolling.py): the engine
        # dies during its start and the worker is unhealthy until RunPod replaces it.
        entries.append(
            LogEntry(worker.failed_at, "container", "error: the worker failed to start: engine exited with code 1")
        )
    elif worker.ready or worker.ready_at <= state.clock():
        entries.append(
            LogEntry(worker.ready_at, "container", f"Worker ready (cold start {worker.ready_at - start:.1f}s).")
        )
    for job in state.jobs.values():
        if job.worker_id != worker.id or job.started_at is None:
            continue
        entries.append(LogEntry(job.started_at, "container", f"job {job.id} started"))
        if job.finished_at is not None and job.status.terminal:
            if job.error:
                entries.append(LogEntry(job.finished_at, "container", f"job {job.id} failed: {job.error}"))
            else:
                took = round((job.finished_at - job.started_at) * 1000)
                entries.append(
                    LogEntry(job.finished_at, "container", f"job {job.id} {job.status.value.lower()} in {took} ms")
                )
    entries.sort(key=lambda e: e.at)
    return entries


def _stamped(entries: list[LogEntry], epoch: float) -> list[tuple[float, LogEntry]]:
    """Each line with its wall time, strictly increasing (a microsecond apart at least): the event
    id is the time (getWorkerLogs: "Log-event id values are the event ts timestamp"; the
    Last-Event-ID header is a date-time), so two lines must never share one."""
    stamped: list[tuple[float, LogEntry]] = []
    last = 0.0
    for entry in entries:
        moment = max(round(epoch + entry.at, 6), round(last + 0.000001, 6))
        stamped.append((moment, entry))
        last = moment
    return stamped


def _sse(moment: float, entry: LogEntry) -> bytes:
    ts = _rfc3339(moment)
    payload = json.dumps({"ts": ts, "source": entry.source, "line": entry.line})
    return f"id: {ts}\ndata: {payload}\n\n".encode()


# --- the API -------------------------------------------------------------------------------------


class RestApi:
    """``/v2/serverless...``, ``/v2/templates...``, ``/v2/registries...``, ``/v2/catalog/gpus``."""

    def __init__(self, state: EmulatorState, control: Any, fleet: Any, invoke_base: Callable[[], str]) -> None:
        self.state = state
        self.control = control  # the GraphQL control plane: GPU pools, deletion rules, releases
        self.fleet = fleet
        self.invoke_base = invoke_base
        self._placements: dict[str, tuple[str, str]] = {}
        #: Seconds a quiet log stream stays open (tests shorten it).
        self.stream_idle = STREAM_IDLE
        #: The wall time of the emulator clock's zero: log times stay the same from one read to the next.
        self._epoch = time.time() - state.clock()

    # --- routing --------------------------------------------------------------------

    def operation(self, method: str, path: str) -> str | None:
        """The document's operationId for a request (what the request log records)."""
        parts = [p for p in path.split("/") if p][1:]
        table = {
            ("GET", ("serverless",)): "listEndpoints",
            ("POST", ("serverless",)): "createEndpoint",
            ("GET", ("serverless", "*")): "getEndpoint",
            ("PATCH", ("serverless", "*")): "updateEndpoint",
            ("DELETE", ("serverless", "*")): "deleteEndpoint",
            ("GET", ("serverless", "*", "workers")): "listEndpointWorkers",
            ("GET", ("serverless", "*", "releases")): "listEndpointReleases",
            ("GET", ("serverless", "*", "workers", "*", "logs")): "getWorkerLogs",
            ("GET", ("templates",)): "listTemplates",
            ("POST", ("templates",)): "createTemplate",
            ("GET", ("templates", "*")): "getTemplate",
            ("PATCH", ("templates", "*")): "updateTemplate",
            ("DELETE", ("templates", "*")): "deleteTemplate",
            ("GET", ("registries",)): "listRegistries",
            ("POST", ("registries",)): "createRegistry",
            ("GET", ("registries", "*")): "getRegistry",
            ("DELETE", ("registries", "*")): "deleteRegistry",
            ("GET", ("catalog", "gpus")): "listGpuTypes",
        }
        for (verb, shape), name in table.items():
            if (
                verb == method
                and len(shape) == len(parts)
                and all(s == "*" or s == p for s, p in zip(shape, parts, strict=True))
            ):
                return name
        return None

    def _allowed(self, path: str) -> list[str]:
        return [m for m in ("GET", "POST", "PATCH", "DELETE") if self.operation(m, path)]

    def handle(
        self, method: str, path: str, query: Mapping[str, str], body: Any, raw: bytes, headers: Mapping[str, str]
    ) -> Response:
        """Answer one request whose key was checked (``server.py``)."""
        operation = self.operation(method, path)
        if operation is None:
            allowed = self._allowed(path)
            if allowed:
                response = problem(405, f"{method} is not allowed here")
                return Response(405, response.body, (*response.headers, ("Allow", ", ".join(allowed))))
            return problem(404, "resource not found")
        if method in ("POST", "PATCH") and raw and body is None:
            return problem(400, "request body must be JSON")
        parts = [p for p in path.split("/") if p][1:]
        try:
            with self.state.lock:
                self.state.advance()
                answer: Response = getattr(self, "_" + operation)(parts, query, body, headers)
                return answer
        except Refused as refused:
            return refused.response

    def _ok(self, body: Any, status: int = 200) -> Response:
        return Response(status, body, RATE_LIMIT_HEADERS)

    # --- endpoints --------------------------------------------------------------------

    def _endpoint(self, endpoint_id: str) -> Endpoint:
        endpoint = self.state.endpoints.get(endpoint_id)
        if endpoint is None:
            raise Refused(404, f"endpoint {endpoint_id} not found")
        return endpoint

    def _listEndpoints(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        base = self.invoke_base()
        return self._ok({"endpoints": [endpoint_rest(self.state, e, base) for e in self.state.endpoints.values()]})

    def _getEndpoint(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        return self._ok(endpoint_rest(self.state, self._endpoint(parts[1]), self.invoke_base()))

    def _check_gpu(self, gpu: Mapping[str, Any], *, pools: list[str], excluded: list[str]) -> None:
        known = dict(self.control.pools)
        for pool in pools:
            if pool not in known:
                raise Refused(400, f"unknown GPU pool {pool!r}; pools: {', '.join(known)}")
        members = {t for pool in pools for t in known[pool]}
        for gpu_type in excluded:
            if gpu_type not in members:
                # "Rejected with 400 if a value is not a GPU type in one of `pools`" (excludedTypes).
                raise Refused(400, f"excludedTypes: {gpu_type!r} is not a GPU type in {', '.join(pools)}")
        if members and members <= set(excluded):
            # "upstream rejects a selection that leaves none" (excludedTypes)
            raise Refused(400, "the GPU selection leaves no GPU type: every type of the pools is excluded")
        versions = gpu.get("allowedCudaVersions") or []
        from rpdeploy.emulator.control import CUDA_VERSIONS

        for version in versions:
            if version not in CUDA_VERSIONS:
                raise Refused(400, f"allowedCudaVersions: {version!r} is not a CUDA version hosts report")
        if versions and gpu.get("minCudaVersion"):
            # "A non-empty allowedCudaVersions together with minCudaVersion gives 400" (BaseEndpointGpuConfig)
            raise Refused(400, "give allowedCudaVersions or minCudaVersion, not both")

    def _check_refs(self, body: Mapping[str, Any]) -> None:
        registry = body.get("registry")
        if registry and registry not in self.state.registry_auths:
            raise Refused(400, f"registry {registry} not found")  # emulator rule: wording ours
        for volume in body.get("networkVolumes") or ():
            if volume not in self.state.network_volumes:
                raise Refused(400, f"network volume {volume} not found")

    def _workers_rule(self, scaling: Mapping[str, Any] | None, workers: Mapping[str, Any] | None) -> None:
        if scaling and scaling.get("type") == "REQUEST_COUNT" and workers and "idleTimeout" in workers:
            # "rejected on create/update ... for queue-based endpoints scaling on requestCount" (EndpointWorkers)
            raise Refused(400, "workers.idleTimeout does not apply to endpoints scaling on requestCount")
        if workers and "min" in workers and "max" in workers and workers["min"] > workers["max"]:
            raise Refused(400, f"workers.min ({workers['min']}) cannot be greater than workers.max ({workers['max']})")

    def _createEndpoint(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        validate("CreateEndpointRequest", body)
        if ("gpu" in body) == ("cpu" in body):
            # "Exactly one of gpu or cpu; neither or both gives 400"
            raise Refused(400, "give exactly one of gpu or cpu")
        if "cpu" in body:
            raise Refused(400, "CPU endpoints are not emulated")  # emulator rule
        gpu = body["gpu"]
        self._check_gpu(gpu, pools=gpu["pools"], excluded=[t.strip() for t in gpu.get("excludedTypes") or ()])
        self._check_refs(body)
        self._workers_rule(body.get("scaling"), body.get("workers"))
        source: Template | None = None
        if body.get("templateId"):
            source = self.state.templates.get(body["templateId"])
            if source is None:
                raise Refused(404, f"template {body['templateId']} not found")
            if not source.is_serverless:
                raise Refused(422, f"template {body['templateId']} is not a serverless template")
        endpoint_id = ids.endpoint_id()
        template = self._bound_template(body, source, body["name"], endpoint_id)
        workers = body.get("workers") or {}
        scaling = body["scaling"]
        selection = gpus.GpuSelection(
            frozenset(gpu["pools"]), frozenset(t.strip() for t in gpu.get("excludedTypes") or ())
        )
        allowed = gpu.get("allowedCudaVersions")
        if allowed is None and source is not None:
            allowed = None  # the source template's CUDA list would seed it; the emulator keeps none
        endpoint = Endpoint(
            id=endpoint_id,
            name=body["name"],
            template_id=template.id,
            gpu_ids=selection.text(),
            gpu_count=int(gpu.get("count", 1)),
            instance_ids=[],
            workers_min=int(workers.get("min", 0)),
            workers_max=int(workers.get("max", 3)),  # v2 defaults: min 0, max 3, idleTimeout 10
            workers_pfb_target=0,
            idle_timeout=int(workers.get("idleTimeout", 10)),
            scaler_type=scaling["type"],
            scaler_value=_scaler_value(scaling),
            locations=",".join(body.get("dataCenterIds") or ()) or None,
            network_volume_id=None,
            network_volume_ids=list(body.get("networkVolumes") or ()),
            execution_timeout_ms=int(body.get("timeout", 300_000)),
            allowed_cuda_versions=",".join(allowed) if allowed else None,
            min_cuda_version=gpu.get("minCudaVersion") or None,
            flash_boot_type=body.get("flashboot", "OFF"),  # v2's default is OFF (FlashBoot)
            type=_TYPES[body["type"]],
            model_references=[],
            compliance=[],
            flash_environment_id=None,
            hub_release_id=None,
            user_id=self.state.account.id,
        )
        self.state.templates[template.id] = template
        self.state.endpoints[endpoint.id] = endpoint
        releases.record(self.state, endpoint)
        self.fleet.endpoint_changed(endpoint)
        return self._ok(endpoint_rest(self.state, endpoint, self.invoke_base()), 201)

    def _bound_template(
        self, body: Mapping[str, Any], source: Template | None, name: str, endpoint_id: str
    ) -> Template:
        """The endpoint's own template: the body's container over the source template's (env merged
        per key, the body winning: CreateEndpointRequest.templateId)."""
        env = source.env_dict() if source is not None else {}
        env.update(body.get("env") or {})
        image = body.get("image") or (source.image_name if source is not None else "")
        return Template(
            id=ids.template_id(),
            # How RunPod names an endpoint's own template is not known; unique, and says whose.
            name=f"{name} {endpoint_id}"[:191],
            image_name=image,
            docker_args=body.get("args", source.docker_args if source else ""),
            container_disk_in_gb=int(body.get("disk", source.container_disk_in_gb if source else 5)),
            volume_in_gb=0,
            volume_mount_path="/workspace",
            ports=",".join(body.get("ports") or ([] if source is None else _split(source.ports))),
            env=[EnvVar(k, v) for k, v in env.items()],
            is_serverless=True,
            is_public=False,
            readme="",
            start_ssh=False,
            start_jupyter=False,
            start_script="",
            advanced_start=False,
            container_registry_auth_id=body.get("registry") or (source.container_registry_auth_id if source else ""),
            category="NVIDIA",
            ports_config=[],
            config=None,
        )

    def _updateEndpoint(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        endpoint = self._endpoint(parts[1])
        validate("UpdateEndpointRequest", body)
        if "cpu" in body:
            raise Refused(400, "cpu on a GPU endpoint: the compute family cannot change")
        self._check_refs(body)
        scaling = body.get("scaling") or ({"type": endpoint.scaler_type} if body.get("workers") else None)
        self._workers_rule(scaling, body.get("workers"))
        diff: list[tuple[str, Any, Any]] = []
        rolls = False
        before = endpoint_rest(self.state, endpoint, self.invoke_base())
        gpu = body.get("gpu")
        if gpu is not None:
            current = gpus.GpuSelection.parse(endpoint.gpu_ids)
            if "pools" in gpu:
                # pools replace the selection wholesale: without excludedTypes the exclusions go
                # (UpdateEndpointGpuConfig.excludedTypes: "a PATCH sending pools without
                # excludedTypes clears them").
                selection = gpus.GpuSelection(
                    frozenset(gpu["pools"]), frozenset(t.strip() for t in gpu.get("excludedTypes") or ())
                )
                self._check_gpu(gpu, pools=gpu["pools"], excluded=sorted(selection.exclusions))
            else:
                selection = current
                self._check_gpu(gpu, pools=sorted(current.pools), excluded=sorted(current.exclusions))
            if selection != current:
                endpoint.gpu_ids = selection.text()
                rolls = True
            if "count" in gpu and gpu["count"] != endpoint.gpu_count:
                endpoint.gpu_count = int(gpu["count"])
                rolls = True
            if "allowedCudaVersions" in gpu:
                wanted = ",".join(gpu["allowedCudaVersions"]) or None
                if _split(wanted) != _split(endpoint.allowed_cuda_versions):
                    endpoint.allowed_cuda_versions = wanted
                    rolls = True
            if "minCudaVersion" in gpu:
                wanted_min = gpu["minCudaVersion"] or None  # "" clears the floor
                if wanted_min != endpoint.min_cuda_version:
                    endpoint.min_cuda_version = wanted_min
                    rolls = True
        if "name" in body:
            endpoint.name = body["name"]
        workers = body.get("workers") or {}
        endpoint.workers_min = int(workers.get("min", endpoint.workers_min))
        endpoint.workers_max = int(workers.get("max", endpoint.workers_max))
        endpoint.idle_timeout = int(workers.get("idleTimeout", endpoint.idle_timeout))
        if endpoint.workers_min > endpoint.workers_max:
            raise Refused(400, "workers.min cannot be greater than workers.max")
        if "scaling" in body:
            endpoint.scaler_type = body["scaling"]["type"]
            endpoint.scaler_value = _scaler_value(body["scaling"])
        if "timeout" in body:
            endpoint.execution_timeout_ms = int(body["timeout"])
        if "dataCenterIds" in body:
            endpoint.locations = ",".join(body["dataCenterIds"]) or None
        if "networkVolumes" in body and list(body["networkVolumes"]) != endpoint.network_volume_ids:
            endpoint.network_volume_ids = list(body["networkVolumes"])
            rolls = True
        if "flashboot" in body and body["flashboot"] != endpoint.flash_boot_type:
            endpoint.flash_boot_type = body["flashboot"]
            rolls = True
        template = self.state.templates.get(endpoint.template_id)
        if template is not None and self._write_container(template, body):
            rolls = True
        after = endpoint_rest(self.state, endpoint, self.invoke_base())
        for key in ("image", "env", "disk", "registry", "args", "ports", "gpu", "networkVolumes", "flashboot"):
            if before.get(key) != after.get(key):
                diff.append((key, before.get(key), after.get(key)))
        if rolls:
            # Container-affecting changes "create a new endpoint release" (updateEndpoint).
            endpoint.version += 1
            releases.record(self.state, endpoint, diff)
        self.fleet.endpoint_changed(endpoint)
        return self._ok(after)

    def _write_container(self, template: Template, body: Mapping[str, Any]) -> bool:
        """The container fields of a PATCH, into the endpoint's template; True when one changed."""
        changed = False
        if "image" in body and body["image"] != template.image_name:
            template.image_name, changed = body["image"], True
        if "env" in body and body["env"] != template.env_dict():
            # "replaces the endpoint's env" (UpdateEndpointRequest, PATCH semantics)
            template.env, changed = [EnvVar(k, v) for k, v in body["env"].items()], True
        if "disk" in body and body["disk"] != template.container_disk_in_gb:
            template.container_disk_in_gb, changed = int(body["disk"]), True
        if "registry" in body and (body["registry"] or "") != template.container_registry_auth_id:
            template.container_registry_auth_id, changed = body["registry"] or "", True
        if "args" in body and body["args"] != template.docker_args:
            template.docker_args, changed = body["args"], True
        if "ports" in body and ",".join(body["ports"]) != template.ports:
            template.ports, changed = ",".join(body["ports"]), True
        return changed

    def _deleteEndpoint(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        endpoint = self._endpoint(parts[1])
        # "Permanently deletes a serverless endpoint and its bound template ... all workers are
        # terminated" (deleteEndpoint): no scale-to-zero first, and no template left behind.
        self.fleet.endpoint_deleted(endpoint)
        del self.state.endpoints[endpoint.id]
        releases.forget(self.state, endpoint.id)
        self.state.templates.pop(endpoint.template_id, None)
        return Response(204, None, RATE_LIMIT_HEADERS)

    # --- workers, releases, logs --------------------------------------------------------

    def placement(self, endpoint: Endpoint, worker: Worker) -> tuple[str, str]:
        """Which GPU type and data center a worker got: one its endpoint allows, kept once chosen."""
        if worker.id not in self._placements:
            allowed = gpus.GpuSelection.parse(endpoint.gpu_ids).allowed(dict(self.control.pools)) or ("unknown",)
            centers = _split(endpoint.locations) or ["EU-RO-1"]
            seed = sum(map(ord, worker.id))
            self._placements[worker.id] = (allowed[seed % len(allowed)], centers[seed % len(centers)])
        return self._placements[worker.id]

    def _listEndpointWorkers(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        endpoint = self._endpoint(parts[1])
        now = self.state.clock()
        rows = []
        counts = dict.fromkeys(("running", "idle", "initializing", "throttled", "unhealthy"), 0)
        for worker in endpoint.workers:
            status = "UNHEALTHY" if worker.start_error else worker.status.upper()
            counts[status.lower()] += 1
            gpu, center = self.placement(endpoint, worker)
            rows.append(
                {
                    "id": worker.id,
                    "status": status,
                    "isStale": worker.version != endpoint.version,
                    "version": worker.version,
                    "gpuCount": endpoint.gpu_count,
                    "image": worker.image or None,
                    "uptimeSeconds": max(0, math.floor(now - worker.started_at)),
                    "gpuTypeId": gpu,
                    "dataCenterId": center,
                    "startedAt": _rfc3339(self._epoch + worker.started_at),
                }
            )
        summary = {**counts, "total": len(rows)}
        return self._ok({"workers": rows, "summary": summary, "endpointVersion": endpoint.version})

    def _listEndpointReleases(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        return self._ok(releases.listing(self.state, self._endpoint(parts[1])))

    def _getWorkerLogs(self, parts: list[str], query: Mapping[str, str], body: Any, headers: Any) -> Response:
        endpoint = self._endpoint(parts[1])
        worker = next((w for w in endpoint.workers if w.id == parts[3]), None)
        if worker is None:
            # Only active workers are listed, and their logs go with them (docs serverless/development/logs.mdx).
            raise Refused(404, f"worker {parts[3]} not found on endpoint {endpoint.id}")
        try:
            tail = int(query.get("tail", "100"))
        except ValueError:
            raise Refused(422, "Request validation failed.", ["$.tail: not an integer"]) from None
        if not 0 <= tail <= 5000:
            raise Refused(422, "Request validation failed.", ["$.tail: must be between 0 and 5000"])
        source = query.get("source")
        if source not in (None, "container", "system"):
            raise Refused(422, "Request validation failed.", ["$.source: must be container or system"])
        entries = worker_log(self.state, endpoint, worker, self.placement(endpoint, worker))
        stamped = [(t, e) for t, e in _stamped(entries, self._epoch) if source is None or e.source == source]
        last = _parse_time(headers.get("last-event-id", "")) if headers.get("last-event-id") else None
        since = _parse_time(query["since"]) if query.get("since") else None
        if headers.get("last-event-id") and last is None:
            raise Refused(422, "Request validation failed.", ["$.Last-Event-ID: not a date-time"])
        if query.get("since") and since is None:
            raise Refused(422, "Request validation failed.", ["$.since: not a date-time"])
        if last is not None:
            backlog = [(t, e) for t, e in stamped if t > last]  # exclusive (runpodctl, verified against prod)
        elif since is not None:
            backlog = [(t, e) for t, e in stamped if t >= since]  # since overrides tail
        else:
            backlog = stamped[-tail:] if tail else []
        sent = max([t for t, _ in stamped], default=0.0)
        first = [_sse(t, e) for t, e in backlog]
        stream_headers = (
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
            *RATE_LIMIT_HEADERS,
        )
        return Response(200, None, stream_headers, self._follow(endpoint.id, worker.id, first, sent, source))

    def _follow(
        self, endpoint_id: str, worker_id: str, first: list[bytes], sent: float, source: str | None
    ) -> Iterator[bytes]:
        yield from first
        idle_since = beat = time.monotonic()
        while time.monotonic() - idle_since < self.stream_idle:
            if time.monotonic() - beat >= KEEP_ALIVE:
                # An SSE comment: readers skip it, and a reader that left is noticed at the write.
                beat = time.monotonic()
                yield b": keep-alive\n\n"
            with self.state.lock:
                self.state.changed.wait(0.25)
                self.state.advance()
                endpoint = self.state.endpoints.get(endpoint_id)
                worker = next((w for w in endpoint.workers if w.id == worker_id), None) if endpoint else None
                if endpoint is None or worker is None or self.fleet._stopping.is_set():
                    return
                entries = worker_log(self.state, endpoint, worker, self.placement(endpoint, worker))
                stamped = _stamped(entries, self._epoch)
                fresh = [_sse(t, e) for t, e in stamped if t > sent and (source is None or e.source == source)]
                sent = max([sent, *(t for t, _ in stamped)])
            if fresh:
                idle_since = time.monotonic()
                yield from fresh

    # --- templates --------------------------------------------------------------------

    def _template(self, template_id: str) -> Template:
        template = self.state.templates.get(template_id)
        if template is None:
            raise Refused(404, f"template {template_id} not found")
        return template

    def _listTemplates(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        return self._ok({"templates": [template_rest(t) for t in self.state.templates.values()]})

    def _getTemplate(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        return self._ok(template_rest(self._template(parts[1])))

    def _createTemplate(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        validate("CreateTemplateRequest", body)
        if self.state.template_by_name(body["name"]) is not None:
            # Template names are unique (docs sdks/graphql/manage-pod-templates.mdx); v2's answer is ours.
            raise Refused(400, f"a template named {body['name']!r} already exists")
        self._check_refs(body)
        template = Template(
            id=ids.template_id(),
            name=body["name"],
            image_name=body["image"],
            docker_args=body.get("args", ""),
            container_disk_in_gb=int(body.get("disk", 5)),
            volume_in_gb=0,
            volume_mount_path="/workspace",
            ports=",".join(body.get("ports") or ()),
            env=[EnvVar(k, v) for k, v in (body.get("env") or {}).items()],
            is_serverless=bool(body.get("serverless", False)),  # v2's default is false
            is_public=bool(body.get("public", False)),
            readme="",
            start_ssh=bool(body.get("startSsh", True)),
            start_jupyter=bool(body.get("startJupyter", True)),
            start_script="",
            advanced_start=False,
            container_registry_auth_id=body.get("registry") or "",
            category=body.get("category", "NVIDIA"),
            ports_config=[],
            config=None,
        )
        self.state.templates[template.id] = template
        return self._ok(template_rest(template), 201)

    def _updateTemplate(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        template = self._template(parts[1])
        validate("UpdateTemplateRequest", body)
        self._check_refs(body)
        if "name" in body:
            clash = self.state.template_by_name(body["name"])
            if clash is not None and clash is not template:
                raise Refused(400, f"a template named {body['name']!r} already exists")
            template.name = body["name"]
        self._write_container(template, body)
        if "serverless" in body:
            template.is_serverless = bool(body["serverless"])
        if "public" in body:
            template.is_public = bool(body["public"])
        if "category" in body:
            template.category = body["category"]
        # "Pods and endpoints already created from this template are not changed retroactively"
        # (updateTemplate): the emulator bumps no endpoint's version here. An endpoint made over
        # GraphQL and bound to this template does read it, as GraphQL's model has it.
        return self._ok(template_rest(template))

    def _deleteTemplate(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        template = self._template(parts[1])
        bound = self.state.endpoint_bound_to(template.id)
        if bound is not None:
            raise Refused(400, "Template is in use by a pod or serverless endpoint and cannot be deleted")
        if template.released_at is not None:
            left = template.released_at + self.control.delete_delay() - self.state.clock()
            if left > 0:
                # As over GraphQL: up to 2 minutes after its last use (docs manage-pod-templates.mdx).
                raise Refused(400, "Template is in use by a pod or serverless endpoint and cannot be deleted yet")
        del self.state.templates[template.id]
        return Response(204, None, RATE_LIMIT_HEADERS)

    # --- registries -------------------------------------------------------------------

    def _listRegistries(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        return self._ok({"registries": [{"id": r.id, "name": r.name} for r in self.state.registry_auths.values()]})

    def _getRegistry(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        auth = self.state.registry_auths.get(parts[1])
        if auth is None:
            raise Refused(404, f"registry {parts[1]} not found")
        return self._ok({"id": auth.id, "name": auth.name})  # "Credentials are write-only."

    def _createRegistry(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        validate("CreateRegistryRequest", body)
        if any(auth.name == body["name"] for auth in self.state.registry_auths.values()):
            raise Refused(400, f"a registry named {body['name']!r} already exists")  # as GraphQL's rule
        auth = RegistryAuth(ids.registry_auth_id(), body["name"], body["username"], body["password"])
        self.state.registry_auths[auth.id] = auth
        return self._ok({"id": auth.id, "name": auth.name}, 201)

    def _deleteRegistry(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        if self.state.registry_auths.pop(parts[1], None) is None:
            raise Refused(404, f"registry {parts[1]} not found")
        # Templates "silently lose the reference (registry becomes null)" (deleteRegistry).
        for template in self.state.templates.values():
            if template.container_registry_auth_id == parts[1]:
                template.container_registry_auth_id = ""
        return Response(204, None, RATE_LIMIT_HEADERS)

    # --- catalogue ----------------------------------------------------------------------

    def _listGpuTypes(self, parts: list[str], query: Mapping[str, str], body: Any, headers: Any) -> Response:
        include, product = query.get("include"), query.get("product")
        if (include is None) != (product is None):
            # product is "required with include and valid only with it; 400 either way" (listGpuTypes)
            raise Refused(400, "product and include=AVAILABILITY go together")
        pool_of = {t: pool for pool, types in self.control.pools for t in types}
        known = {gpu.id: gpu for gpu in gpus.GPU_TYPES}
        rows = []
        for type_id in dict.fromkeys([*known, *pool_of]):
            gpu = known.get(type_id)
            pool = pool_of.get(type_id)
            price: dict[str, Any] = {"secure": 0.0, "community": 0.0}
            if pool is not None and pool in gpus.POOLS and gpus.POOLS[pool].price_per_second is not None:
                price["serverless"] = round((gpus.POOLS[pool].price_per_second or 0) * 3600, 4)
            rows.append(
                {
                    "id": type_id,
                    "name": type_id.removeprefix("NVIDIA ").removeprefix("GeForce "),
                    "pool": pool,
                    "manufacturer": "NVIDIA" if type_id.startswith("NVIDIA") else "UNKNOWN",
                    "memory": math.ceil(gpu.memory_gib) if gpu else 24,
                    "secure": True,
                    "community": True,
                    "price": price,
                    "maxCount": {"secure": 8, "community": 8},
                }
            )
        return self._ok({"gpus": rows})


def _scaler_value(scaling: Mapping[str, Any]) -> int:
    value = scaling["requestCount"] if scaling["type"] == "REQUEST_COUNT" else scaling["queueDelay"]
    return max(1, round(float(value)))
