"""RunPod's control plane behind one interface, and its GraphQL transport.

``ControlPlane`` is what stages and commands call, in rpdeploy's own terms (``models.py``).
``GraphQLControlPlane`` implements it over ``POST {api_url}/graphql``; ``rest.py`` implements
it over REST v2 (``{api_url}/v2/...``). RunPod is retiring GraphQL (early 2027): deploy.yaml's
``runpod.api`` (or ``RPDEPLOY_RUNPOD_API``) picks the transport, and when GraphQL answers that
it is retired (HTTP 410, or an error saying so) rpdeploy says so in one line with the switch
(:class:`~rpdeploy.errors.ApiRetiredError`). Each transport reaches the other for what its API
lacks: GraphQL has no worker list, release or worker log; REST v2 has no account query, no
secrets and no cached-model field.

Retry policy: reads are retried on network errors, 5xx and 429; a mutation is retried
only on 429 (RunPod refused it before doing anything). Any other failed mutation is
never re-sent blindly: the caller looks the object up by name first, so a timeout after
RunPod created an endpoint cannot lead to a second endpoint.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from rpdeploy.errors import ApiError, ApiRetiredError, AuthError
from rpdeploy.preflight.gpus import GpuSelection
from rpdeploy.runpod import graphql_ops as ops
from rpdeploy.runpod.models import (
    Account,
    AccountSecret,
    Endpoint,
    EndpointSpec,
    LogLine,
    RegistryAuth,
    ReleaseList,
    Template,
    TemplateSpec,
    WorkerList,
)
from rpdeploy.runpod.rollout import Rollout, from_graphql
from rpdeploy.secrets import Secret, redact

if TYPE_CHECKING:
    import httpx

    from rpdeploy.runpod.rest import RestControlPlane

USER_AGENT = "rpdeploy"
MAX_ATTEMPTS = 4
MAX_RETRY_AFTER = 30.0


class ControlPlane(Protocol):
    """Every control-plane operation rpdeploy uses, in rpdeploy's terms (``models.py``).

    ``api`` names the transport (``graphql`` or ``rest``). ``container_on_endpoint`` says where
    the container settings live: on a template the endpoint is bound to (GraphQL), or on the
    endpoint itself (REST v2, which keeps no template link). ``deletes_template_with_endpoint``:
    deleting an endpoint also deletes its template (REST v2's ``DELETE /v2/serverless/{id}``).
    """

    api: str
    container_on_endpoint: bool
    deletes_template_with_endpoint: bool

    def close(self) -> None: ...

    def __enter__(self) -> ControlPlane: ...

    def __exit__(self, *exc: object) -> None: ...

    def account(self) -> Account: ...

    def gpu_pools(self) -> dict[str, tuple[str, ...]]: ...

    def list_templates(self) -> list[Template]: ...

    def save_template(self, spec: TemplateSpec, *, template: Template | None = None) -> Template: ...

    def delete_template(self, template: Template) -> None: ...

    def list_endpoints(self) -> list[Endpoint]: ...

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None: ...

    def rollout(self, endpoint_id: str) -> Rollout:
        """How far the endpoint's current release has reached its workers (rpdeploy.runpod.rollout)."""
        ...

    def create_endpoint(self, spec: EndpointSpec) -> Endpoint: ...

    def update_endpoint(self, live: Endpoint, spec: EndpointSpec) -> Endpoint: ...

    def set_endpoint_template(self, endpoint_id: str, template_id: str) -> Endpoint: ...

    def delete_endpoint(self, endpoint_id: str) -> None: ...

    def model_references(self, endpoint_id: str) -> tuple[str, ...] | None: ...

    def list_registry_auths(self) -> list[RegistryAuth]: ...

    def save_registry_auth(self, name: str, username: str, password: Secret) -> RegistryAuth: ...

    def update_registry_auth(self, auth_id: str, username: str, password: Secret) -> RegistryAuth: ...

    def list_secrets(self) -> list[AccountSecret]: ...

    def create_secret(self, name: str, value: Secret, *, description: str = "") -> AccountSecret: ...

    def update_secret_value(self, secret_id: str, value: Secret) -> AccountSecret: ...

    def workers(self, endpoint_id: str) -> WorkerList: ...

    def releases(self, endpoint_id: str) -> ReleaseList: ...

    def worker_logs(
        self,
        endpoint_id: str,
        worker_id: str,
        *,
        tail: int = 100,
        since: str | None = None,
        follow: bool = False,
        quiet: float = 0.75,
    ) -> Iterator[LogLine]: ...


# --- what the transports share: one retry policy over httpx -------------------------------------


class HttpTransport:
    """An httpx client with the retry policy of the module docstring; each API reads the answer."""

    def __init__(
        self,
        api_key: Secret,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None],
    ) -> None:
        import httpx

        self._sleep = sleep
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"Authorization": f"Bearer {api_key.reveal()}", "User-Agent": USER_AGENT},
        )

    def close(self) -> None:
        self._http.close()

    def send(
        self, build: Callable[[], httpx.Request], *, what: str, url: str, mutation: bool, stream: bool = False
    ) -> httpx.Response:
        """Send (and re-send, as the policy allows) one request; the answer, unless retries ran out."""
        import httpx

        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.send(build(), stream=stream)
            except httpx.TimeoutException as exc:
                error = ApiError(
                    f"RunPod API did not answer {what} in time ({url})",
                    hint="RunPod may be slow or unreachable; re-run (a create is looked up by name first, so "
                    "re-running never duplicates)",
                    retryable=True,
                )
                if mutation or attempt >= MAX_ATTEMPTS:
                    raise error from exc
                self._backoff(attempt, None)
                continue
            except httpx.TransportError as exc:
                error = ApiError(
                    f"cannot reach the RunPod API at {url}: {type(exc).__name__}: {exc}",
                    hint="check the network, or RUNPOD_API_BASE_URL / runpod.api_url in deploy.yaml",
                    retryable=True,
                )
                # A connection that failed before anything was sent is safe to retry even for a
                # mutation; anything later is not (RunPod may have acted on it).
                if (mutation and not isinstance(exc, httpx.ConnectError)) or attempt >= MAX_ATTEMPTS:
                    raise error from exc
                self._backoff(attempt, None)
                continue

            status = response.status_code
            if status == 429:
                if stream:
                    response.close()
                if attempt >= MAX_ATTEMPTS:
                    raise ApiError(
                        f"RunPod rate-limited {what} (HTTP 429) {attempt} times",
                        hint="wait a minute and re-run; other jobs may be using the same API key",
                        status=status,
                        retryable=True,
                    )
                self._backoff(attempt, response.headers.get("Retry-After"))
                continue
            if status >= 500:
                if stream:
                    response.close()
                if mutation or attempt >= MAX_ATTEMPTS:
                    raise ApiError(
                        f"RunPod API failed on {what} (HTTP {status})",
                        hint="a RunPod-side problem; re-run later (check status.runpod.io)",
                        status=status,
                        retryable=True,
                    )
                self._backoff(attempt, response.headers.get("Retry-After"))
                continue
            return response

    def _backoff(self, attempt: int, retry_after: str | None) -> None:
        delay = 0.5 * 2 ** (attempt - 1) * (0.75 + random.random() / 2)
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
        self._sleep(delay)


def auth_error(status: int, what: str) -> AuthError:
    if status == 401:
        return AuthError(
            "RunPod rejected the API key (HTTP 401)",
            hint="check the key in the env var named by runpod.api_key (default RUNPOD_API_KEY); "
            "create one in the RunPod console under Settings > API Keys",
            status=status,
        )
    return AuthError(f"the API key may not run {what} (HTTP 403)", status=status)


# --- GraphQL's shapes, translated to and from rpdeploy's ----------------------------------------

#: What RunPod's deprecation of GraphQL will answer is not documented (docs release-notes.mdx
#: gives only "early 2027"); RunPod's announcement, quoted in dstack issue 4167, says the retired
#: APIs answer "410 Gone". An errors[] message saying the API is deprecated or retired counts too.
_RETIRED = re.compile(r"\b(graphql|api)\b.*\b(retired|deprecated|no longer (available|supported|served))\b", re.I)


def graphql_retired(status: int, messages: list[str]) -> ApiRetiredError | None:
    """The one-line error for a GraphQL that answers it is gone, else None."""
    if status == 410 or any(_RETIRED.search(m) for m in messages):
        said = f"HTTP {status}" if status == 410 else redact("; ".join(messages))[:200]
        return ApiRetiredError(f"RunPod's GraphQL API is retired ({said})", status=status)
    return None


def template_from_graphql(data: Mapping[str, Any]) -> Template:
    env = tuple((str(item.get("key", "")), str(item.get("value", ""))) for item in data.get("env") or [])
    return Template(
        id=str(data["id"]),
        name=str(data.get("name") or ""),
        image=str(data.get("imageName") or ""),
        env=env,
        container_disk_gb=int(data.get("containerDiskInGb") or 0),
        registry_auth_id=str(data.get("containerRegistryAuthId") or ""),
        docker_args=str(data.get("dockerArgs") or ""),
        is_serverless=bool(data.get("isServerless")),
        raw=dict(data),
    )


def _split(text: Any) -> tuple[str, ...]:
    return tuple(part.strip() for part in str(text or "").split(",") if part.strip())


def endpoint_from_graphql(data: Mapping[str, Any]) -> Endpoint:
    volumes = [
        str(v.get("networkVolumeId")) for v in data.get("networkVolumeIds") or () if v and v.get("networkVolumeId")
    ]
    legacy = data.get("networkVolumeId")
    if legacy and str(legacy) not in volumes:
        volumes.append(str(legacy))
    return Endpoint(
        id=str(data["id"]),
        name=str(data.get("name") or ""),
        template_id=str(data.get("templateId") or ""),
        workers_min=int(data.get("workersMin") or 0),
        workers_max=int(data.get("workersMax") or 0),
        version=int(data.get("version") or 0),
        gpus=GpuSelection.parse(str(data.get("gpuIds") or "")),
        gpu_count=int(data.get("gpuCount") or 1),
        idle_timeout=data.get("idleTimeout"),
        scaler_type=str(data.get("scalerType") or ""),
        scaler_value=data.get("scalerValue"),
        flashboot=(data.get("flashBootType") or "OFF") != "OFF",
        execution_timeout_ms=int(data.get("executionTimeoutMs") or 0),
        allowed_cuda_versions=_split(data.get("allowedCudaVersions")),
        locations=_split(data.get("locations")),
        model_references=tuple(str(r) for r in data.get("modelReferences") or () if r),
        network_volume_ids=tuple(volumes),
        raw=dict(data),
    )


def _endpoint_fields(spec: EndpointSpec) -> dict[str, Any]:
    """The managed fields in GraphQL's names."""
    return {
        "name": spec.name,
        "templateId": spec.template_id,
        "gpuIds": spec.gpus.text(),
        "gpuCount": spec.gpu_count,
        "workersMin": spec.workers_min,
        "workersMax": spec.workers_max,
        "idleTimeout": spec.idle_timeout,
        "scalerType": spec.scaler_type,
        "scalerValue": spec.scaler_value,
        "flashBootType": "FLASHBOOT" if spec.flashboot else "OFF",
        "executionTimeoutMs": spec.execution_timeout_ms,
        "allowedCudaVersions": ",".join(spec.allowed_cuda_versions),
        "locations": ",".join(spec.locations),
    }


def _gated(spec: EndpointSpec) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if spec.model_references is not None:
        data["modelReferences"] = list(spec.model_references)
    if spec.network_volume_ids is not None:
        data["networkVolumeIds"] = [{"networkVolumeId": volume} for volume in spec.network_volume_ids]
    return data


def endpoint_create_input(spec: EndpointSpec) -> dict[str, Any]:
    """The object for ``saveEndpoint`` without an id: the managed fields and the gated ones that are set."""
    return {**_endpoint_fields(spec), **{key: value for key, value in _gated(spec).items() if value}}


# saveEndpoint with an id is a full replace, but not of everything. Read against RunPod's
# resolver by RunPod's MCP team (runpod-mcp src/_shared/endpoint-gpu-ids.ts): the input's
# defaults (idleTimeout, scalerValue, workersMin/Max, gpuCount, scalerType) and a null for
# instanceIds and locations are written when left out, so those must be sent; requestTTL
# must be sent too, or its absence counts as a change and rolls the workers. The fields
# written only when present (modelReferences, compliance, networkVolumeIds, type) are never
# echoed: echoing does harm. For modelReferences (gated on `!== undefined`): `[]` clears them,
# strips MODEL_NAME/MODEL_NAMES from the endpoint's env and rolls the workers, and a non-empty
# list re-validates every reference without the Hugging Face token the console holds, so a
# gated model fails the write; a volume echo creates rows and bumps the release. So rpdeploy
# sends modelReferences and networkVolumeIds only when deploy.yaml wants them different from
# what RunPod has. templateId acts only on create: a template change goes through
# updateEndpointTemplate.
_ECHOED_ENDPOINT_FIELDS = ("minCudaVersion", "requestTTL")


def endpoint_update_input(live: Endpoint, spec: EndpointSpec) -> dict[str, Any]:
    """The object for ``saveEndpoint`` with ``id``: spec values, plus the live values of the
    fields an update would otherwise reset, plus the gated fields that must change; never the
    template (see above)."""
    data: dict[str, Any] = {"id": live.id}
    for key in _ECHOED_ENDPOINT_FIELDS:
        if key in live.raw:
            data[key] = live.raw[key]
    instances = [i for i in live.raw.get("instanceIds") or () if i]
    if instances:
        # Only when there are some: `[]` would be stored as "" where the column held null.
        data["instanceIds"] = instances
    data.update(_endpoint_fields(spec))
    gated = _gated(spec)
    if live.model_references_change(spec):
        data["modelReferences"] = gated["modelReferences"]
    if live.network_volumes_change(spec):
        data["networkVolumeIds"] = gated["networkVolumeIds"]
    data.pop("templateId")
    return data


def _template_input(spec: TemplateSpec, template: Template | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": spec.name,
        "imageName": spec.image,
        "containerDiskInGb": spec.container_disk_gb,
        # Serverless templates cannot have a volume disk; RunPod rejects anything but 0.
        "volumeInGb": 0,
        # Always sent: omitting it makes RunPod answer "Something went wrong".
        "dockerArgs": spec.docker_args,
        "env": [{"key": var.key, "value": var.reveal()} for var in spec.env],
        "ports": "",
        "isServerless": True,
        "isPublic": False,
        "startSsh": False,
        "readme": spec.readme,
        "containerRegistryAuthId": spec.registry_auth_id,
    }
    if template is not None:
        # saveTemplate with an id replaces the whole template: echo what we do not manage.
        data["id"] = template.id
        for key in ("volumeMountPath", "startJupyter"):
            if template.raw.get(key) not in (None, ""):
                data[key] = template.raw[key]
    return data


class GraphQLControlPlane:
    """The control plane over RunPod's GraphQL API.

    What GraphQL has no operation for (worker lists, releases, worker logs) goes over REST v2
    with the same key (:attr:`rest`).
    """

    api = "graphql"
    container_on_endpoint = False
    deletes_template_with_endpoint = False

    def __init__(
        self,
        api_key: Secret,
        *,
        api_url: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = f"{api_url.rstrip('/')}/graphql"
        self._key, self._api_url, self._timeout, self._transport, self._sleep = (
            api_key,
            api_url,
            timeout,
            transport,
            sleep,
        )
        self._client = HttpTransport(api_key, timeout=timeout, transport=transport, sleep=sleep)
        self._rest: RestControlPlane | None = None
        #: Every operation sent, in order: (operation name, is mutation). Secrets excluded.
        self.sent: list[tuple[str, bool]] = []

    @property
    def rest(self) -> RestControlPlane:
        """REST v2 with the same key, for what GraphQL lacks (opened on first use)."""
        if self._rest is None:
            from rpdeploy.runpod.rest import RestControlPlane

            self._rest = RestControlPlane(
                self._key, api_url=self._api_url, timeout=self._timeout, transport=self._transport, sleep=self._sleep
            )
        return self._rest

    def close(self) -> None:
        self._client.close()
        if self._rest is not None:
            self._rest.close()

    def __enter__(self) -> GraphQLControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ------------------------------------------------------------------

    def _execute(self, document: str, variables: Mapping[str, Any], *, operation: str, mutation: bool) -> Any:
        """POST one operation; return ``data``. Maps every failure to ApiError/AuthError."""
        body = {"query": document, "variables": dict(variables), "operationName": operation}

        def build() -> httpx.Request:
            self.sent.append((operation, mutation))
            return self._client._http.build_request("POST", self.url, json=body)

        response = self._client.send(build, what=operation, url=self.url, mutation=mutation)
        return self._data(response, operation)

    def _data(self, response: httpx.Response, operation: str) -> Any:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        messages = _error_messages(payload)
        retired = graphql_retired(status, messages)
        if retired is not None:
            raise retired
        if status in (401, 403):
            raise auth_error(status, operation)
        if status >= 400:
            detail = "; ".join(messages) or response.text[:300]
            raise ApiError(
                f"RunPod rejected {operation} as invalid (HTTP {status}): {redact(detail)}",
                hint="this is a bug in rpdeploy or a RunPod API change: please report it with this message",
                status=status,
            )
        if not isinstance(payload, dict):
            raise ApiError(f"RunPod answered {operation} with something that is not JSON (HTTP {status})")
        if messages:
            text = redact("; ".join(messages))
            if any(m.strip().lower() == "unauthorized" for m in messages):
                raise AuthError(
                    f"the API key is not allowed to run {operation} (RunPod: {text})",
                    hint="use a key with read/write access (a read-only key cannot deploy)",
                    status=status,
                )
            raise ApiError(f"RunPod refused {operation}: {text}", status=status)
        return payload.get("data")

    # --- operations -----------------------------------------------------------------

    def account(self) -> Account:
        data = self._execute(ops.MYSELF, {}, operation="Myself", mutation=False)
        me = (data or {}).get("myself")
        if not me:
            raise AuthError("RunPod did not recognise the API key (no account for it)")
        return Account(id=str(me.get("id") or ""), email=me.get("email"))

    def gpu_pools(self) -> dict[str, tuple[str, ...]]:
        data = self._execute(ops.GPU_POOLS, {}, operation="ServerlessGpuPools", mutation=False)
        pools = (data or {}).get("serverlessGpuPools") or []
        return {str(p["id"]): tuple(str(t) for t in p.get("gpuTypeIds") or []) for p in pools if p.get("id")}

    def list_templates(self) -> list[Template]:
        data = self._execute(ops.LIST_TEMPLATES, {}, operation="PodTemplates", mutation=False)
        return [template_from_graphql(t) for t in ((data or {}).get("myself") or {}).get("podTemplates") or []]

    def save_template(self, spec: TemplateSpec, *, template: Template | None = None) -> Template:
        data = self._execute(
            ops.SAVE_TEMPLATE,
            {"input": _template_input(spec, template)},
            operation="SaveTemplate",
            mutation=True,
        )
        saved = (data or {}).get("saveTemplate")
        if not saved:
            raise ApiError(f"RunPod returned no template for {spec.name!r}")
        return template_from_graphql(saved)

    def delete_template(self, template: Template) -> None:
        # GraphQL deletes a template by its name (docs sdks/graphql/manage-pod-templates.mdx).
        self._execute(ops.DELETE_TEMPLATE, {"templateName": template.name}, operation="DeleteTemplate", mutation=True)

    def list_endpoints(self) -> list[Endpoint]:
        data = self._execute(ops.LIST_ENDPOINTS, {}, operation="Endpoints", mutation=False)
        return [endpoint_from_graphql(e) for e in ((data or {}).get("myself") or {}).get("endpoints") or []]

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        try:
            data = self._execute(ops.GET_ENDPOINT, {"id": endpoint_id}, operation="Endpoint", mutation=False)
        except ApiError as exc:
            # RunPod's resolver throws for an id it cannot see rather than answering null
            # (runpod-mcp src/_shared/endpoint-gpu-ids.ts): that error means "none".
            text = exc.message.lower()
            if isinstance(exc, AuthError) or not ("not found" in text or "no endpoint found" in text):
                raise
            return None
        found = ((data or {}).get("myself") or {}).get("endpoint")
        return endpoint_from_graphql(found) if found else None

    def rollout(self, endpoint_id: str) -> Rollout:
        data = self._execute(ops.ENDPOINT_ROLLOUT, {"id": endpoint_id}, operation="EndpointRollout", mutation=False)
        found = ((data or {}).get("myself") or {}).get("endpoint")
        if not found:
            raise ApiError(f"RunPod has no endpoint {endpoint_id} (reading its rollout)")
        return from_graphql(found)

    def create_endpoint(self, spec: EndpointSpec) -> Endpoint:
        data = self._execute(
            ops.SAVE_ENDPOINT, {"input": endpoint_create_input(spec)}, operation="SaveEndpoint", mutation=True
        )
        saved = (data or {}).get("saveEndpoint")
        if not saved:
            raise ApiError(f"RunPod returned no endpoint for {spec.name!r}")
        return endpoint_from_graphql(saved)

    def update_endpoint(self, live: Endpoint, spec: EndpointSpec) -> Endpoint:
        if not live.raw:
            # An endpoint read over REST: saveEndpoint must echo what only GraphQL shows.
            found = self.get_endpoint(live.id)
            if found is None:
                raise ApiError(f"endpoint {live.id} is gone")
            live = found
        data = self._execute(
            ops.SAVE_ENDPOINT, {"input": endpoint_update_input(live, spec)}, operation="SaveEndpoint", mutation=True
        )
        saved = (data or {}).get("saveEndpoint")
        if not saved:
            raise ApiError(f"RunPod returned nothing for the update of endpoint {live.id}")
        return endpoint_from_graphql(saved)

    def set_endpoint_template(self, endpoint_id: str, template_id: str) -> Endpoint:
        data = self._execute(
            ops.UPDATE_ENDPOINT_TEMPLATE,
            {"input": {"endpointId": endpoint_id, "templateId": template_id}},
            operation="UpdateEndpointTemplate",
            mutation=True,
        )
        saved = (data or {}).get("updateEndpointTemplate")
        if not saved:
            raise ApiError(f"RunPod returned nothing for the template change of endpoint {endpoint_id}")
        return endpoint_from_graphql(saved)

    def delete_endpoint(self, endpoint_id: str) -> None:
        self._execute(ops.DELETE_ENDPOINT, {"id": endpoint_id}, operation="DeleteEndpoint", mutation=True)

    def model_references(self, endpoint_id: str) -> tuple[str, ...] | None:
        found = self.get_endpoint(endpoint_id)
        return found.model_references if found is not None else None

    def list_registry_auths(self) -> list[RegistryAuth]:
        data = self._execute(ops.LIST_REGISTRY_AUTHS, {}, operation="RegistryCreds", mutation=False)
        creds = ((data or {}).get("myself") or {}).get("containerRegistryCreds") or []
        return [RegistryAuth(id=str(c["id"]), name=str(c.get("name") or "")) for c in creds]

    def save_registry_auth(self, name: str, username: str, password: Secret) -> RegistryAuth:
        data = self._execute(
            ops.SAVE_REGISTRY_AUTH,
            {"input": {"name": name, "username": username, "password": password.reveal()}},
            operation="SaveRegistryAuth",
            mutation=True,
        )
        saved = (data or {}).get("saveRegistryAuth") or {}
        return RegistryAuth(id=str(saved.get("id") or ""), name=str(saved.get("name") or name))

    def update_registry_auth(self, auth_id: str, username: str, password: Secret) -> RegistryAuth:
        data = self._execute(
            ops.UPDATE_REGISTRY_AUTH,
            {"input": {"id": auth_id, "username": username, "password": password.reveal()}},
            operation="UpdateRegistryAuth",
            mutation=True,
        )
        saved = (data or {}).get("updateRegistryAuth") or {}
        return RegistryAuth(id=str(saved.get("id") or auth_id), name=str(saved.get("name") or ""))

    # --- account secrets ------------------------------------------------------------
    # Values go out, never come back: the Secret type has no value field.

    def list_secrets(self) -> list[AccountSecret]:
        data = self._execute(ops.LIST_SECRETS, {}, operation="Secrets", mutation=False)
        found = ((data or {}).get("myself") or {}).get("secrets") or []
        return [AccountSecret(id=str(s["id"]), name=str(s.get("name") or "")) for s in found if s and s.get("id")]

    def create_secret(self, name: str, value: Secret, *, description: str = "") -> AccountSecret:
        variables: dict[str, Any] = {"name": name, "value": value.reveal()}
        if description:
            variables["description"] = description
        data = self._execute(ops.SECRET_CREATE, {"input": variables}, operation="SecretCreate", mutation=True)
        saved = (data or {}).get("secretCreate") or {}
        if not saved.get("id"):
            raise ApiError(f"RunPod returned no secret for {name!r}")
        return AccountSecret(id=str(saved["id"]), name=str(saved.get("name") or name))

    def update_secret_value(self, secret_id: str, value: Secret) -> AccountSecret:
        data = self._execute(
            ops.SECRET_VALUE_UPDATE,
            {"input": {"id": secret_id, "value": value.reveal()}},
            operation="SecretValueUpdate",
            mutation=True,
        )
        saved = (data or {}).get("secretValueUpdate") or {}
        return AccountSecret(id=str(saved.get("id") or secret_id), name=str(saved.get("name") or ""))

    # --- what only REST v2 has --------------------------------------------------------

    def workers(self, endpoint_id: str) -> WorkerList:
        return self.rest.workers(endpoint_id)

    def releases(self, endpoint_id: str) -> ReleaseList:
        return self.rest.releases(endpoint_id)

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
        return self.rest.worker_logs(endpoint_id, worker_id, tail=tail, since=since, follow=follow, quiet=quiet)


def _error_messages(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return []
    errors = payload.get("errors")
    if not isinstance(errors, list):
        return []
    return [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
