"""What rpdeploy wants on RunPod (``*Spec``) and what RunPod has (the live objects).

Specs hold only the fields rpdeploy manages. A live object keeps the whole record RunPod
returned (``raw``) because updates replace the whole object: fields we do not manage (a
network volume attached in the console, model references...) must be sent back as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rpdeploy.secrets import MASK, SECRET_NAME, Secret


@dataclass(frozen=True)
class EnvVar:
    key: str
    value: str | Secret

    @property
    def secret(self) -> bool:
        return isinstance(self.value, Secret) or bool(SECRET_NAME.search(self.key))

    def reveal(self) -> str:
        return self.value.reveal() if isinstance(self.value, Secret) else self.value

    def shown(self) -> str:
        return MASK if self.secret else self.reveal()


@dataclass(frozen=True)
class TemplateSpec:
    """A serverless template as rpdeploy wants it."""

    name: str
    image: str
    env: tuple[EnvVar, ...]
    container_disk_gb: int
    registry_auth_id: str = ""
    docker_args: str = ""
    readme: str = ""
    #: The release this content makes (``rpdeploy.release``); also in env as RPDEPLOY_RELEASE.
    release: str = ""

    def env_map(self) -> dict[str, str]:
        return {var.key: var.reveal() for var in self.env}


@dataclass(frozen=True)
class Template:
    """A template as RunPod has it."""

    id: str
    name: str
    image: str
    env: tuple[tuple[str, str], ...]
    container_disk_gb: int
    registry_auth_id: str
    docker_args: str
    is_serverless: bool
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Template:
        env = tuple((str(item.get("key", "")), str(item.get("value", ""))) for item in data.get("env") or [])
        return cls(
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

    def env_map(self) -> dict[str, str]:
        return dict(self.env)


@dataclass(frozen=True)
class EndpointSpec:
    """A serverless endpoint as rpdeploy wants it (template id filled in once known)."""

    name: str
    template_id: str
    gpu_ids: str
    gpu_count: int
    workers_min: int
    workers_max: int
    idle_timeout: int
    scaler_type: str
    scaler_value: int
    flashboot: bool
    execution_timeout_ms: int
    allowed_cuda_versions: str
    locations: str

    def managed(self) -> dict[str, Any]:
        """The managed fields in GraphQL's names: what a diff compares and an update sends."""
        return {
            "name": self.name,
            "templateId": self.template_id,
            "gpuIds": self.gpu_ids,
            "gpuCount": self.gpu_count,
            "workersMin": self.workers_min,
            "workersMax": self.workers_max,
            "idleTimeout": self.idle_timeout,
            "scalerType": self.scaler_type,
            "scalerValue": self.scaler_value,
            "flashBootType": "FLASHBOOT" if self.flashboot else "OFF",
            "executionTimeoutMs": self.execution_timeout_ms,
            "allowedCudaVersions": self.allowed_cuda_versions,
            "locations": self.locations,
        }


# saveEndpoint with an id is a full replace, but not of everything. Read against RunPod's
# resolver by RunPod's MCP team (runpod-mcp src/_shared/endpoint-gpu-ids.ts): the input's
# defaults (idleTimeout, scalerValue, workersMin/Max, gpuCount, scalerType) and a null for
# instanceIds and locations are written when left out, so those must be sent; requestTTL
# must be sent too, or its absence counts as a change and rolls the workers. The fields
# written only when present (modelReferences, compliance, networkVolumeIds, type) are left
# out on purpose: echoing them does harm (`[]` model references clears them and rolls the
# workers; a volume echo creates rows). templateId acts only on create: a template change
# goes through updateEndpointTemplate.
_ECHOED_ENDPOINT_FIELDS = ("minCudaVersion", "requestTTL")


@dataclass(frozen=True)
class Endpoint:
    """An endpoint as RunPod has it."""

    id: str
    name: str
    template_id: str
    workers_min: int
    workers_max: int
    version: int
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Endpoint:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            template_id=str(data.get("templateId") or ""),
            workers_min=int(data.get("workersMin") or 0),
            workers_max=int(data.get("workersMax") or 0),
            version=int(data.get("version") or 0),
            raw=dict(data),
        )

    def managed(self) -> dict[str, Any]:
        """The live values of the fields EndpointSpec manages, normalised for comparison."""
        raw = self.raw
        return {
            "name": raw.get("name") or "",
            "templateId": raw.get("templateId") or "",
            "gpuIds": raw.get("gpuIds") or "",
            "gpuCount": raw.get("gpuCount") or 1,
            "workersMin": raw.get("workersMin") or 0,
            "workersMax": raw.get("workersMax") or 0,
            "idleTimeout": raw.get("idleTimeout"),
            "scalerType": raw.get("scalerType") or "",
            "scalerValue": raw.get("scalerValue"),
            "flashBootType": raw.get("flashBootType") or "OFF",
            "executionTimeoutMs": raw.get("executionTimeoutMs") or 0,
            "allowedCudaVersions": raw.get("allowedCudaVersions") or "",
            "locations": raw.get("locations") or "",
        }

    def update_input(self, spec: EndpointSpec) -> dict[str, Any]:
        """The object for ``saveEndpoint`` with ``id``: spec values, plus the live values of
        the fields an update would otherwise reset; never the template (see above)."""
        data: dict[str, Any] = {"id": self.id}
        for key in _ECHOED_ENDPOINT_FIELDS:
            if key in self.raw:
                data[key] = self.raw[key]
        instances = [i for i in self.raw.get("instanceIds") or () if i]
        if instances:
            # Only when there are some: `[]` would be stored as "" where the column held null.
            data["instanceIds"] = instances
        data.update(spec.managed())
        data.pop("templateId")
        return data


@dataclass(frozen=True)
class RegistryAuth:
    id: str
    name: str


@dataclass(frozen=True)
class Account:
    id: str
    email: str | None
