"""RunPod's REST API v2 control plane (``/v2/serverless``, ``/v2/templates``, ``/v2/registries``,
``/v2/catalog/gpus``), over the same account state as the GraphQL one (``control.py``).

The contract is RunPod's own OpenAPI document for v2 (``rpdeploy/runpod/openapi-v2.json``:
``runpod/docs`` ``api-reference-v2/openapi.json``, 2026-08-18): requests are validated against
it and answered in its shapes by ``rest_shapes.py``. Business rules the document states in
prose are enforced here, each with its source; "emulator rule" marks ours. The workers of an
endpoint, its releases and the workers' log streams are ``rest_logs.py``'s.

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
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from rpdeploy.emulator import ids, releases
from rpdeploy.emulator.invoke import Response
from rpdeploy.emulator.rest_logs import STREAM_IDLE, WorkerRoutes
from rpdeploy.emulator.rest_shapes import (
    RATE_LIMIT_HEADERS,
    Refused,
    endpoint_rest,
    problem,
    split,
    template_rest,
    validate,
)
from rpdeploy.emulator.state import EmulatorState, Endpoint, EnvVar, RegistryAuth, Template
from rpdeploy.preflight import gpus

__all__ = ["RestApi", "is_rest", "problem"]

#: The v2 control-plane paths, told apart from the invoke API's /v2/{endpoint_id}/...
ROOTS = ("serverless", "templates", "registries", "catalog")
_TYPES = {"QUEUE": "QB", "LOAD_BALANCER": "LB"}


def is_rest(path: str) -> bool:
    """Is ``path`` the v2 control plane (not the invoke API of an endpoint)?"""
    parts = [p for p in path.split("/") if p]
    return len(parts) >= 2 and parts[0] == "v2" and parts[1] in ROOTS


# --- the API -------------------------------------------------------------------------------------


class RestApi(WorkerRoutes):
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
        from rpdeploy.emulator.graphql_values import CUDA_VERSIONS

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
            ports=",".join(body.get("ports") or ([] if source is None else split(source.ports))),
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
                if split(wanted) != split(endpoint.allowed_cuda_versions):
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
