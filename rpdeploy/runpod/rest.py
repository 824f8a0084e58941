"""The control plane over RunPod's REST API v2 (``{api_url}/v2/...``), in rpdeploy's terms.

RunPod's own OpenAPI document for v2 (``openapi-v2.json`` beside this file, from
``runpod/docs`` ``api-reference-v2/openapi.json``, 2026-08-18) is the contract: the tests
validate every request this module sends and every answer the emulator gives against it.
What shapes this module:

* **The container lives on the endpoint.** A v2 endpoint carries its image, env, disk and
  registry credentials itself; ``templateId`` is read once at create and no link is kept
  (responses carry no ``templateId``, and a later template edit does not reach the
  endpoint: ``CreateEndpointRequest.templateId``, ``updateTemplate``). A template would be a
  second copy of the same settings that changes nothing when edited, so rpdeploy sends the
  container with the endpoint (create, and PATCH when it changes, which rolls out a new
  release) and makes no template at all under REST. Templates are still read, and deleted by
  id, for what an earlier GraphQL deploy left. Endpoints made over GraphQL are found the same
  way (by name, and the ownership mark in their env, which v2 shows on the endpoint).
* **PATCH is sparse.** Only what changed is sent. ``env`` replaces the whole map, so it is
  sent whole; ``gpu.pools`` without ``gpu.excludedTypes`` clears the exclusions, so the two
  always go together; ``idleTimeout`` is not sent to endpoints scaling on request count
  (v2 rejects it there).
* **Lists come wrapped** (``{"endpoints": [...]}``) and have no pagination parameters in
  the 2026-08-18 document; **errors are RFC 9457** problem documents (``title``, ``status``,
  ``detail``, ``errors[]``); unknown fields are a 422.
* **What v2 lacks** goes over GraphQL with the same key while GraphQL exists: the account
  check, account secrets (no v2 path in the document), the cached model (no v2 field: GraphQL
  ``modelReferences``) and a registry password change (v2 registries have no update). When
  GraphQL answers that it is retired, the account check and the cached model degrade with a
  warning; a secret or a password change cannot, and the error says what to do instead.
* **Workers, releases and logs** exist only here (``/workers``, ``/releases``, and the
  ``/workers/{workerId}/logs`` SSE stream, which never ends by itself: a snapshot stops after
  ``quiet`` seconds without a line, as runpodctl does, and ``follow`` reconnects with
  ``Last-Event-ID``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rpdeploy.errors import ApiError, ApiRetiredError, AuthError
from rpdeploy.preflight.gpus import GpuSelection
from rpdeploy.runpod.controlplane import HttpTransport, auth_error
from rpdeploy.runpod.models import (
    Account,
    AccountSecret,
    Container,
    Endpoint,
    EndpointSpec,
    LogLine,
    RegistryAuth,
    Release,
    ReleaseList,
    Rollout,
    Template,
    TemplateSpec,
    Worker,
    WorkerList,
)
from rpdeploy.secrets import Secret, redact

if TYPE_CHECKING:
    import httpx

    from rpdeploy.runpod.controlplane import GraphQLControlPlane
    from rpdeploy.runpod.rollout import Rollout as RolloutView

#: Every endpoint rpdeploy makes is a queue endpoint (the invoke API's /run, /runsync...).
ENDPOINT_TYPE = "QUEUE"


class NotFound(ApiError):
    """A 404 from REST v2 (the object does not exist, or the key cannot see it)."""


# --- translation ------------------------------------------------------------------------------


def template_from_rest(data: Mapping[str, Any]) -> Template:
    env = data.get("env") or {}
    return Template(
        id=str(data["id"]),
        name=str(data.get("name") or ""),
        image=str(data.get("image") or ""),
        env=tuple((str(k), str(v)) for k, v in env.items()),
        container_disk_gb=int(data.get("disk") or 0),
        registry_auth_id=str(data.get("registry") or ""),
        docker_args=str(data.get("args") or ""),
        is_serverless=bool(data.get("serverless")),
        raw=dict(data),
    )


def _number(value: Any) -> int | None:
    """queueDelay is a number in v2; rpdeploy's scaler value is whole seconds."""
    if value is None:
        return None
    return round(float(value))


def endpoint_from_rest(data: Mapping[str, Any]) -> Endpoint:
    gpu = data.get("gpu") or {}
    scaling = data.get("scaling") or {}
    workers = data.get("workers") or {}
    scaler_type = str(scaling.get("type") or "")
    value = scaling.get("queueDelay") if scaler_type == "QUEUE_DELAY" else scaling.get("requestCount")
    env = data.get("env") or {}
    return Endpoint(
        id=str(data["id"]),
        name=str(data.get("name") or ""),
        template_id="",  # v2 keeps no template link
        workers_min=int(workers.get("min") or 0),
        workers_max=int(workers.get("max") or 0),
        version=None,  # v2 shows versions only on /workers and /releases
        gpus=GpuSelection(frozenset(gpu.get("pools") or ()), frozenset(gpu.get("excludedTypes") or ())),
        gpu_count=int(gpu.get("count") or 1),
        idle_timeout=workers.get("idleTimeout"),
        scaler_type=scaler_type,
        scaler_value=_number(value),
        flashboot=(data.get("flashboot") or "OFF") != "OFF",
        execution_timeout_ms=int(data.get("timeout") or 0),
        allowed_cuda_versions=tuple(gpu.get("allowedCudaVersions") or ()),
        locations=tuple(data.get("dataCenterIds") or ()),
        container=Container(
            image=str(data.get("image") or ""),
            env=tuple((str(k), str(v)) for k, v in env.items()),
            container_disk_gb=int(data.get("disk") or 0),
            registry_auth_id=str(data.get("registry") or ""),
            docker_args=str(data.get("args") or ""),
        ),
        model_references=None,  # v2 has no field for it (GraphQL modelReferences only)
        network_volume_ids=tuple(data.get("networkVolumes") or ()),
        raw=dict(data),
    )


def _scaling(spec: EndpointSpec) -> dict[str, Any]:
    if spec.scaler_type == "REQUEST_COUNT":
        return {"type": "REQUEST_COUNT", "requestCount": spec.scaler_value}
    return {"type": "QUEUE_DELAY", "queueDelay": spec.scaler_value}


def _workers(spec: EndpointSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"min": spec.workers_min, "max": spec.workers_max}
    # "rejected on create/update and omitted from responses" for QUEUE endpoints scaling on
    # requestCount (EndpointWorkers.idleTimeout).
    if spec.scaler_type != "REQUEST_COUNT":
        data["idleTimeout"] = spec.idle_timeout
    return data


def _gpu(spec: EndpointSpec) -> dict[str, Any]:
    # excludedTypes always with pools: pools alone clears the exclusions (UpdateEndpointGpuConfig).
    data: dict[str, Any] = {
        "pools": sorted(spec.gpus.pools),
        "excludedTypes": sorted(spec.gpus.exclusions),
        "count": spec.gpu_count,
        # [] clears the constraint on PATCH; on create it is the same as none.
        "allowedCudaVersions": sorted(spec.allowed_cuda_versions),
    }
    return data


def _container(spec: TemplateSpec) -> dict[str, Any]:
    data: dict[str, Any] = {
        "image": spec.image,
        "env": {var.key: var.reveal() for var in spec.env},
        "disk": spec.container_disk_gb,
        "registry": spec.registry_auth_id or None,
    }
    if spec.docker_args:
        data["args"] = spec.docker_args
    return data


def endpoint_create_body(spec: EndpointSpec) -> dict[str, Any]:
    """``POST /v2/serverless``: type and scaling are required; flashboot and timeout always sent
    (the API's defaults are OFF and, observed, 0: [migrate-bc] section 6)."""
    if spec.container is None:
        raise ApiError("a REST v2 endpoint needs its container settings (image, env) to be created")
    body: dict[str, Any] = {
        "name": spec.name,
        "type": ENDPOINT_TYPE,
        "scaling": _scaling(spec),
        **_container(spec.container),
        "gpu": _gpu(spec),
        "workers": _workers(spec),
        "flashboot": "FLASHBOOT" if spec.flashboot else "OFF",
        "timeout": spec.execution_timeout_ms,
    }
    if not body["registry"]:
        body.pop("registry")
    if spec.locations:
        body["dataCenterIds"] = sorted(spec.locations)
    if spec.network_volume_ids:
        body["networkVolumes"] = list(spec.network_volume_ids)
    return body


def endpoint_patch_body(live: Endpoint, spec: EndpointSpec) -> dict[str, Any]:
    """``PATCH /v2/serverless/{id}``: only what differs (see the module docstring)."""
    body: dict[str, Any] = {}
    if live.name != spec.name:
        body["name"] = spec.name
    wanted_workers = _workers(spec)
    have_workers: dict[str, Any] = {"min": live.workers_min, "max": live.workers_max}
    if "idleTimeout" in wanted_workers:
        have_workers["idleTimeout"] = live.idle_timeout
    if have_workers != wanted_workers:
        body["workers"] = wanted_workers
    if (live.scaler_type, live.scaler_value) != (spec.scaler_type, spec.scaler_value):
        body["scaling"] = _scaling(spec)
    if (live.gpus, live.gpu_count, set(live.allowed_cuda_versions)) != (
        spec.gpus,
        spec.gpu_count,
        set(spec.allowed_cuda_versions),
    ):
        body["gpu"] = _gpu(spec)
    if live.flashboot != spec.flashboot:
        body["flashboot"] = "FLASHBOOT" if spec.flashboot else "OFF"
    if live.execution_timeout_ms != spec.execution_timeout_ms:
        body["timeout"] = spec.execution_timeout_ms
    if set(live.locations) != set(spec.locations):
        body["dataCenterIds"] = sorted(spec.locations)
    if live.network_volumes_change(spec):
        body["networkVolumes"] = list(spec.network_volume_ids or ())
    if spec.container is not None:
        wanted = _container(spec.container)
        have = live.container
        if have is None or have.image != wanted["image"]:
            body["image"] = wanted["image"]
        if have is None or have.env_map() != wanted["env"]:
            body["env"] = wanted["env"]  # the whole map: v2 replaces it
        if have is None or have.container_disk_gb != wanted["disk"]:
            body["disk"] = wanted["disk"]
        if have is None or (have.registry_auth_id or None) != wanted["registry"]:
            body["registry"] = wanted["registry"]
        if have is not None and have.docker_args != spec.container.docker_args:
            body["args"] = spec.container.docker_args
    return body


def _problem(payload: Any) -> str:
    """An RFC 9457 problem document as one line: detail, then the validation failures."""
    if not isinstance(payload, dict):
        return ""
    parts = [str(payload.get("detail") or payload.get("title") or "")]
    errors = payload.get("errors")
    if isinstance(errors, list):
        parts += [str(e) for e in errors[:10]]
    return "; ".join(p for p in parts if p)


def worker_from_rest(data: Mapping[str, Any]) -> Worker:
    return Worker(
        id=str(data["id"]),
        status=str(data.get("status") or ""),
        is_stale=bool(data.get("isStale")),
        version=data.get("version"),
        gpu_type=data.get("gpuTypeId"),
        gpu_count=int(data.get("gpuCount") or 0),
        data_center=data.get("dataCenterId"),
        started_at=data.get("startedAt"),
        uptime_seconds=data.get("uptimeSeconds"),
        image=data.get("image"),
    )


def releases_from_rest(data: Mapping[str, Any]) -> ReleaseList:
    rollout = data.get("rollout") or {}
    return ReleaseList(
        endpoint_version=data.get("endpointVersion"),
        rollout=Rollout(
            in_progress=bool(rollout.get("inProgress")),
            workers_on_latest=int(rollout.get("workersOnLatest") or 0),
            workers_total=int(rollout.get("workersTotal") or 0),
            percent_on_latest=float(rollout.get("percentOnLatest") or 0),
        ),
        releases=tuple(
            Release(
                id=str(r["id"]),
                version=r.get("version"),
                source=str(r.get("source") or ""),
                created_at=str(r.get("createdAt") or ""),
                worker_count=int(r.get("workerCount") or 0),
                diff=tuple((str(d.get("field")), d.get("old"), d.get("new")) for d in r.get("diff") or ()),
            )
            for r in data.get("releases") or ()
        ),
    )


def parse_events(lines: Iterator[str]) -> Iterator[LogLine]:
    """Server-sent events (``id:``/``data:`` lines, a blank line ends one) as log lines."""
    event_id, data = "", list[str]()
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    payload = {"line": "\n".join(data)}
                if isinstance(payload, dict):
                    yield LogLine(
                        ts=str(payload.get("ts") or ""),
                        source=str(payload.get("source") or ""),
                        line=str(payload.get("line") or ""),
                        id=event_id,
                    )
            event_id, data = "", list[str]()
            continue
        if line.startswith(":"):
            continue  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            event_id = value
        elif name == "data":
            data.append(value)


# --- the transport ----------------------------------------------------------------------------


class RestControlPlane:
    """The control plane over RunPod's REST API v2."""

    api = "rest"
    container_on_endpoint = True
    deletes_template_with_endpoint = True

    def __init__(
        self,
        api_key: Secret,
        *,
        api_url: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        warn: Callable[[str], None] | None = None,
        graphql: GraphQLControlPlane | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.base = f"{self.api_url}/v2"
        self._key, self._timeout, self._transport, self._sleep = api_key, timeout, transport, sleep
        self._client = HttpTransport(api_key, timeout=timeout, transport=transport, sleep=sleep)
        self._graphql = graphql
        self._own_graphql = graphql is None
        self._warn = warn or (lambda message: None)
        self._warned: set[str] = set()
        #: Every request sent, in order: (operation id, is mutation). Bodies excluded.
        self.sent: list[tuple[str, bool]] = []

    def close(self) -> None:
        self._client.close()
        if self._graphql is not None and self._own_graphql:
            self._graphql.close()

    def __enter__(self) -> RestControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """One request; the parsed JSON answer (None for 204). Failures become ApiError/AuthError."""
        url = f"{self.base}{path}"
        mutation = method != "GET"

        def build() -> httpx.Request:
            self.sent.append((what, mutation))
            return self._client._http.build_request(
                method, url, json=dict(body) if body is not None else None, params=params
            )

        response = self._client.send(build, what=what, url=url, mutation=mutation)
        status = response.status_code
        if status == 204:
            return None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if status in (401, 403):
            raise auth_error(status, what)
        if status == 404:
            raise NotFound(
                f"RunPod has no such object ({what}: {redact(_problem(payload)) or 'not found'})", status=404
            )
        if status >= 400:
            detail = _problem(payload) or response.text[:300]
            if status == 422:
                raise ApiError(
                    f"RunPod rejected {what} as invalid (HTTP 422): {redact(detail)}",
                    hint="this is a bug in rpdeploy or a RunPod API change: please report it with this message",
                    status=status,
                )
            raise ApiError(f"RunPod refused {what} (HTTP {status}): {redact(detail)}", status=status)
        if payload is None:
            raise ApiError(f"RunPod answered {what} with something that is not JSON (HTTP {status})")
        return payload

    @property
    def graphql(self) -> GraphQLControlPlane:
        """GraphQL with the same key, for what v2 lacks (opened on first use)."""
        if self._graphql is None:
            from rpdeploy.runpod.controlplane import GraphQLControlPlane

            self._graphql = GraphQLControlPlane(
                self._key, api_url=self.api_url, timeout=self._timeout, transport=self._transport, sleep=self._sleep
            )
        return self._graphql

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._warn(message)

    # --- account and catalogue --------------------------------------------------------

    def account(self) -> Account:
        """The account check: GraphQL's ``myself`` (v2 has no account query), else the key alone."""
        try:
            return self.graphql.account()
        except ApiRetiredError:
            self._warn_once(
                "account",
                "RunPod's GraphQL API is retired and REST v2 has no account query: the account is not shown; "
                "the API key is checked by the REST calls themselves",
            )
        self._request("GET", "/serverless", what="listEndpoints")  # a bad key is a 401 here
        return Account(id="", email=None)

    def gpu_pools(self) -> dict[str, tuple[str, ...]]:
        """Serverless pools and their GPU types, from the catalogue's ``GpuType.pool``."""
        data = self._request("GET", "/catalog/gpus", what="listGpuTypes")
        pools: dict[str, list[str]] = {}
        for gpu in data.get("gpus") or ():
            if gpu.get("pool"):
                pools.setdefault(str(gpu["pool"]), []).append(str(gpu["id"]))
        return {pool: tuple(types) for pool, types in pools.items()}

    # --- templates --------------------------------------------------------------------

    def list_templates(self) -> list[Template]:
        data = self._request("GET", "/templates", what="listTemplates")
        return [template_from_rest(t) for t in data.get("templates") or ()]

    def save_template(self, spec: TemplateSpec, *, template: Template | None = None) -> Template:
        body = {**_container(spec), "name": spec.name, "serverless": True}
        if not body["registry"]:
            body.pop("registry")
        if template is None:
            return template_from_rest(self._request("POST", "/templates", what="createTemplate", body=body))
        if not spec.registry_auth_id and template.registry_auth_id:
            body["registry"] = None
        return template_from_rest(self._request("PATCH", f"/templates/{template.id}", what="updateTemplate", body=body))

    def delete_template(self, template: Template) -> None:
        # By id in v2. "400: Template is in use by a pod or serverless endpoint" (deleteTemplate).
        try:
            self._request("DELETE", f"/templates/{template.id}", what="deleteTemplate")
        except NotFound as exc:
            raise ApiError(f"template {template.name!r} not found", status=404) from exc
        except ApiError as exc:
            if exc.status == 400 and "in use" not in exc.message.lower():
                raise ApiError(f"{exc.message} (in use)", status=400) from exc
            raise

    # --- endpoints --------------------------------------------------------------------

    def list_endpoints(self) -> list[Endpoint]:
        data = self._request("GET", "/serverless", what="listEndpoints")
        return [endpoint_from_rest(e) for e in data.get("endpoints") or ()]

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        try:
            return endpoint_from_rest(self._request("GET", f"/serverless/{endpoint_id}", what="getEndpoint"))
        except NotFound:
            return None

    def create_endpoint(self, spec: EndpointSpec) -> Endpoint:
        created = endpoint_from_rest(
            self._request("POST", "/serverless", what="createEndpoint", body=endpoint_create_body(spec))
        )
        if spec.model_references:
            self._set_model_references(created, spec)
        return created

    def update_endpoint(self, live: Endpoint, spec: EndpointSpec) -> Endpoint:
        body = endpoint_patch_body(live, spec)
        updated = live
        if body:
            updated = endpoint_from_rest(
                self._request("PATCH", f"/serverless/{live.id}", what="updateEndpoint", body=body)
            )
        if live.model_references_change(spec):
            self._set_model_references(updated, spec)
        return updated

    def set_endpoint_template(self, endpoint_id: str, template_id: str) -> Endpoint:
        raise ApiError(
            "REST v2 keeps no link from an endpoint to a template",
            hint="under runpod.api: rest the endpoint carries its image and env itself",
        )

    def delete_endpoint(self, endpoint_id: str) -> None:
        # Also deletes its bound template; workers are terminated (deleteEndpoint).
        self._request("DELETE", f"/serverless/{endpoint_id}", what="deleteEndpoint")

    # --- the cached model: GraphQL only -----------------------------------------------

    def _model_cache_gone(self) -> None:
        self._warn_once(
            "model-cache",
            "RunPod's GraphQL API is retired and REST v2 has no cached-model field: the endpoint's cached model "
            "(model.weights: cached) is not managed, so workers may download the weights",
        )

    def model_references(self, endpoint_id: str) -> tuple[str, ...] | None:
        try:
            return self.graphql.model_references(endpoint_id)
        except ApiRetiredError:
            self._model_cache_gone()
            return None

    def _set_model_references(self, endpoint: Endpoint, spec: EndpointSpec) -> None:
        """``modelReferences`` through GraphQL's saveEndpoint, which echoes the rest as GraphQL shows it."""
        from dataclasses import replace

        try:
            live = self.graphql.get_endpoint(endpoint.id)
            if live is None:
                raise ApiError(f"endpoint {endpoint.id} is not visible over GraphQL")
            from rpdeploy.runpod.deployment import spec_from_live

            wanted = replace(spec_from_live(live), model_references=spec.model_references)
            self.graphql.update_endpoint(live, wanted)
        except ApiRetiredError:
            self._model_cache_gone()

    # --- registry credentials ---------------------------------------------------------

    def list_registry_auths(self) -> list[RegistryAuth]:
        data = self._request("GET", "/registries", what="listRegistries")
        return [RegistryAuth(id=str(r["id"]), name=str(r.get("name") or "")) for r in data.get("registries") or ()]

    def save_registry_auth(self, name: str, username: str, password: Secret) -> RegistryAuth:
        body = {"name": name, "username": username, "password": password.reveal()}
        saved = self._request("POST", "/registries", what="createRegistry", body=body)
        return RegistryAuth(id=str(saved["id"]), name=str(saved.get("name") or name))

    def update_registry_auth(self, auth_id: str, username: str, password: Secret) -> RegistryAuth:
        """v2 registries have no update: GraphQL's updateRegistryAuth while it exists."""
        try:
            return self.graphql.update_registry_auth(auth_id, username, password)
        except ApiRetiredError as exc:
            raise ApiError(
                "cannot change the registry password: REST v2 registries have no update, and GraphQL is retired",
                hint="delete the credentials named rpdeploy-... in the RunPod console (Settings > Container "
                "Registry Auth) and deploy again: rpdeploy then registers them anew",
            ) from exc

    # --- account secrets: GraphQL only (no v2 path in the 2026-08-18 document) -------------

    def _secrets_gone(self, exc: ApiRetiredError) -> ApiError:
        return ApiError(
            "cannot manage RunPod secrets: REST v2 has no secrets API and GraphQL is retired",
            hint="set model.hf_token_delivery: template-env (the token then sits in the endpoint env in plain text)",
            status=exc.status,
        )

    def list_secrets(self) -> list[AccountSecret]:
        try:
            return self.graphql.list_secrets()
        except ApiRetiredError as exc:
            raise self._secrets_gone(exc) from exc

    def create_secret(self, name: str, value: Secret, *, description: str = "") -> AccountSecret:
        try:
            return self.graphql.create_secret(name, value, description=description)
        except ApiRetiredError as exc:
            raise self._secrets_gone(exc) from exc

    def update_secret_value(self, secret_id: str, value: Secret) -> AccountSecret:
        try:
            return self.graphql.update_secret_value(secret_id, value)
        except ApiRetiredError as exc:
            raise self._secrets_gone(exc) from exc

    # --- workers, releases, logs ----------------------------------------------------

    def workers(self, endpoint_id: str) -> WorkerList:
        data = self._request("GET", f"/serverless/{endpoint_id}/workers", what="listEndpointWorkers")
        return WorkerList(data.get("endpointVersion"), tuple(worker_from_rest(w) for w in data.get("workers") or ()))

    def releases(self, endpoint_id: str) -> ReleaseList:
        return releases_from_rest(
            self._request("GET", f"/serverless/{endpoint_id}/releases", what="listEndpointReleases")
        )

    def rollout(self, endpoint_id: str) -> RolloutView:
        """How far the endpoint's current release has reached its workers: ``/workers`` (each one's
        ``isStale``), with ``/releases``' ``rollout.inProgress`` when that can be read."""
        from rpdeploy.runpod.rollout import from_rest

        listed = self.workers(endpoint_id)
        try:
            history: ReleaseList | None = self.releases(endpoint_id)
        except AuthError:
            raise
        except ApiError:
            history = None  # the worker list alone still tells old workers from new ones
        return from_rest(listed, history)

    def worker_logs(
        self,
        endpoint_id: str,
        worker_id: str,
        *,
        tail: int = 100,
        since: str | None = None,
        follow: bool = False,
        quiet: float = 0.75,
    ) -> Iterator[LogLine]:
        """A worker's log lines, oldest first: the last ``tail`` (at most 5000), or those since ``since``.

        The stream never ends by itself: without ``follow`` it stops after ``quiet`` seconds
        without a line; with it, it goes on until the worker is gone, reconnecting with
        ``Last-Event-ID`` (exclusive: the next line after it) when the connection drops.
        """
        import httpx

        url = f"{self.base}/serverless/{endpoint_id}/workers/{worker_id}/logs"
        params: dict[str, Any] = {"tail": max(0, min(int(tail), 5000))}
        if since:
            params["since"] = since
        last_id = ""
        reconnecting = False
        read = None if follow else quiet
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id:
                headers["Last-Event-ID"] = last_id

            def build(headers: dict[str, str] = headers) -> httpx.Request:
                self.sent.append(("getWorkerLogs", False))
                return self._client._http.build_request(
                    "GET",
                    url,
                    params=params,
                    headers=headers,
                    timeout=httpx.Timeout(self._timeout, connect=min(self._timeout, 10.0), read=read),
                )

            response = self._client.send(build, what="getWorkerLogs", url=url, mutation=False, stream=True)
            try:
                if response.status_code >= 400:
                    response.read()
                    payload = None
                    with contextlib.suppress(ValueError):
                        payload = response.json()
                    if response.status_code in (401, 403):
                        raise auth_error(response.status_code, "getWorkerLogs")
                    if response.status_code == 404:
                        if reconnecting:
                            return  # the worker is gone, and its logs with it: the end of a follow
                        raise NotFound(
                            f"no worker {worker_id} on endpoint {endpoint_id} (it may have stopped)", status=404
                        )
                    raise ApiError(
                        f"RunPod refused getWorkerLogs (HTTP {response.status_code}): {_problem(payload)}",
                        status=response.status_code,
                    )
                try:
                    for line in parse_events(response.iter_lines()):
                        last_id = line.id or last_id
                        yield line
                except httpx.ReadTimeout:
                    return  # quiet for `quiet` seconds: the backlog is out
                except httpx.TransportError:
                    if not follow:
                        return
            finally:
                response.close()
            if not follow:
                return
            # The stream ended or dropped: reconnect after the last line seen (Last-Event-ID); a
            # worker that is gone answers 404, which ends the follow.
            reconnecting = True
