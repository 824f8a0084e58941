"""RunPod's control plane behind one interface, and its GraphQL transport.

``ControlPlane`` is what stages and commands call; ``GraphQLControlPlane`` implements it
over ``POST {api_url}/graphql``. RunPod is retiring GraphQL for REST v2 (early 2027): a
REST transport implements the same protocol and nothing above this module changes.

Retry policy: reads are retried on network errors, 5xx and 429; a mutation is retried
only on 429 (RunPod refused it before doing anything). Any other failed mutation is
never re-sent blindly: the caller looks the object up by name first, so a timeout after
RunPod created an endpoint cannot lead to a second endpoint.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from rpdeploy.errors import ApiError, AuthError
from rpdeploy.runpod import graphql_ops as ops
from rpdeploy.runpod.models import (
    Account,
    AccountSecret,
    Endpoint,
    EndpointSpec,
    RegistryAuth,
    Template,
    TemplateSpec,
)
from rpdeploy.secrets import Secret, redact

if TYPE_CHECKING:
    import httpx

USER_AGENT = "rpdeploy"
MAX_ATTEMPTS = 4
MAX_RETRY_AFTER = 30.0


class ControlPlane(Protocol):
    """Every control-plane operation rpdeploy uses."""

    def close(self) -> None: ...

    def __enter__(self) -> ControlPlane: ...

    def __exit__(self, *exc: object) -> None: ...

    def account(self) -> Account: ...

    def gpu_pools(self) -> dict[str, tuple[str, ...]]: ...

    def list_templates(self) -> list[Template]: ...

    def save_template(self, spec: TemplateSpec, *, template: Template | None = None) -> Template: ...

    def delete_template(self, name: str) -> None: ...

    def list_endpoints(self) -> list[Endpoint]: ...

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None: ...

    def create_endpoint(self, spec: EndpointSpec) -> Endpoint: ...

    def update_endpoint(self, live: Endpoint, spec: EndpointSpec) -> Endpoint: ...

    def set_endpoint_template(self, endpoint_id: str, template_id: str) -> Endpoint: ...

    def delete_endpoint(self, endpoint_id: str) -> None: ...

    def list_registry_auths(self) -> list[RegistryAuth]: ...

    def save_registry_auth(self, name: str, username: str, password: Secret) -> RegistryAuth: ...

    def update_registry_auth(self, auth_id: str, username: str, password: Secret) -> RegistryAuth: ...

    def list_secrets(self) -> list[AccountSecret]: ...

    def create_secret(self, name: str, value: Secret, *, description: str = "") -> AccountSecret: ...

    def update_secret_value(self, secret_id: str, value: Secret) -> AccountSecret: ...


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
    """The control plane over RunPod's GraphQL API."""

    def __init__(
        self,
        api_key: Secret,
        *,
        api_url: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        self.url = f"{api_url.rstrip('/')}/graphql"
        self._sleep = sleep
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"Authorization": f"Bearer {api_key.reveal()}", "User-Agent": USER_AGENT},
        )
        #: Every operation sent, in order: (operation name, is mutation). Secrets excluded.
        self.sent: list[tuple[str, bool]] = []

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GraphQLControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ------------------------------------------------------------------

    def _execute(self, document: str, variables: Mapping[str, Any], *, operation: str, mutation: bool) -> Any:
        """POST one operation; return ``data``. Maps every failure to ApiError/AuthError."""
        import httpx

        body = {"query": document, "variables": dict(variables), "operationName": operation}
        attempt = 0
        while True:
            attempt += 1
            self.sent.append((operation, mutation))
            try:
                response = self._http.post(self.url, json=body)
            except httpx.TimeoutException as exc:
                error = ApiError(
                    f"RunPod API did not answer {operation} in time ({self.url})",
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
                    f"cannot reach the RunPod API at {self.url}: {type(exc).__name__}: {exc}",
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
                if attempt >= MAX_ATTEMPTS:
                    raise ApiError(
                        f"RunPod rate-limited {operation} (HTTP 429) {attempt} times",
                        hint="wait a minute and re-run; other jobs may be using the same API key",
                        status=status,
                        retryable=True,
                    )
                self._backoff(attempt, response.headers.get("Retry-After"))
                continue
            if status >= 500:
                if mutation or attempt >= MAX_ATTEMPTS:
                    raise ApiError(
                        f"RunPod API failed on {operation} (HTTP {status})",
                        hint="a RunPod-side problem; re-run later (check status.runpod.io)",
                        status=status,
                        retryable=True,
                    )
                self._backoff(attempt, response.headers.get("Retry-After"))
                continue
            return self._data(response, operation)

    def _backoff(self, attempt: int, retry_after: str | None) -> None:
        delay = 0.5 * 2 ** (attempt - 1) * (0.75 + random.random() / 2)
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
        self._sleep(delay)

    def _data(self, response: httpx.Response, operation: str) -> Any:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        messages = _error_messages(payload)
        if status == 401:
            raise AuthError(
                "RunPod rejected the API key (HTTP 401)",
                hint="check the key in the env var named by runpod.api_key (default RUNPOD_API_KEY); "
                "create one in the RunPod console under Settings > API Keys",
                status=status,
            )
        if status == 403:
            raise AuthError(f"the API key may not run {operation} (HTTP 403)", status=status)
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
        return [Template.from_api(t) for t in ((data or {}).get("myself") or {}).get("podTemplates") or []]

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
        return Template.from_api(saved)

    def delete_template(self, name: str) -> None:
        self._execute(ops.DELETE_TEMPLATE, {"templateName": name}, operation="DeleteTemplate", mutation=True)

    def list_endpoints(self) -> list[Endpoint]:
        data = self._execute(ops.LIST_ENDPOINTS, {}, operation="Endpoints", mutation=False)
        return [Endpoint.from_api(e) for e in ((data or {}).get("myself") or {}).get("endpoints") or []]

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
        return Endpoint.from_api(found) if found else None

    def create_endpoint(self, spec: EndpointSpec) -> Endpoint:
        data = self._execute(ops.SAVE_ENDPOINT, {"input": spec.create_input()}, operation="SaveEndpoint", mutation=True)
        saved = (data or {}).get("saveEndpoint")
        if not saved:
            raise ApiError(f"RunPod returned no endpoint for {spec.name!r}")
        return Endpoint.from_api(saved)

    def update_endpoint(self, live: Endpoint, spec: EndpointSpec) -> Endpoint:
        data = self._execute(
            ops.SAVE_ENDPOINT, {"input": live.update_input(spec)}, operation="SaveEndpoint", mutation=True
        )
        saved = (data or {}).get("saveEndpoint")
        if not saved:
            raise ApiError(f"RunPod returned nothing for the update of endpoint {live.id}")
        return Endpoint.from_api(saved)

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
        return Endpoint.from_api(saved)

    def delete_endpoint(self, endpoint_id: str) -> None:
        self._execute(ops.DELETE_ENDPOINT, {"id": endpoint_id}, operation="DeleteEndpoint", mutation=True)

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


def _error_messages(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return []
    errors = payload.get("errors")
    if not isinstance(errors, list):
        return []
    return [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
