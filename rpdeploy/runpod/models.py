"""What rpdeploy wants on RunPod (``*Spec``) and what RunPod has (the live objects).

Specs hold only the fields rpdeploy manages. A live object keeps the whole record RunPod
returned (``raw``) because updates replace the whole object: fields we do not manage (a
network volume attached in the console, model references...) must be sent back as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rpdeploy.secrets import MASK, SECRET_NAME, Secret

#: A template env value that names a RunPod secret instead of holding one (docs pods/templates/secrets.mdx).
SECRET_REFERENCE = re.compile(r"^\{\{ RUNPOD_SECRET_[A-Za-z0-9_]{1,64} \}\}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class EnvVar:
    key: str
    value: str | Secret

    @property
    def secret(self) -> bool:
        if isinstance(self.value, Secret):
            return True
        # A reference to a RunPod secret is not one: it can be shown, and it is what the plan compares.
        return bool(SECRET_NAME.search(self.key)) and not SECRET_REFERENCE.match(self.value)

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
    #: RunPod's cached model (``modelReferences``): () for none; None leaves RunPod's as they are.
    model_references: tuple[str, ...] | None = None
    #: Network volumes (``networkVolumeIds``); None leaves RunPod's as they are.
    network_volume_ids: tuple[str, ...] | None = None

    def gated(self) -> dict[str, Any]:
        """The fields RunPod writes only when an input carries them (see below), in GraphQL's shape."""
        data: dict[str, Any] = {}
        if self.model_references is not None:
            data["modelReferences"] = list(self.model_references)
        if self.network_volume_ids is not None:
            data["networkVolumeIds"] = [{"networkVolumeId": volume} for volume in self.network_volume_ids]
        return data

    def create_input(self) -> dict[str, Any]:
        """The object for ``saveEndpoint`` without an id: the managed fields and the gated ones that are set."""
        return {**self.managed(), **{key: value for key, value in self.gated().items() if value}}

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
# written only when present (modelReferences, compliance, networkVolumeIds, type) are never
# echoed: echoing does harm. For modelReferences (gated on `!== undefined`): `[]` clears them,
# strips MODEL_NAME/MODEL_NAMES from the endpoint's env and rolls the workers, and a non-empty
# list re-validates every reference without the Hugging Face token the console holds, so a
# gated model fails the write; a volume echo creates rows and bumps the release. So rpdeploy
# sends modelReferences and networkVolumeIds only when deploy.yaml wants them different from
# what RunPod has (:func:`gated_changes`). templateId acts only on create: a template change
# goes through updateEndpointTemplate.
_ECHOED_ENDPOINT_FIELDS = ("minCudaVersion", "requestTTL")


def _reference_parts(reference: str) -> tuple[str, str]:
    """``https://huggingface.co/ORG/NAME:REF`` as (repo, ref); the repo compared case-insensitively."""
    repo, _, ref = reference.rpartition(":") if reference.count(":") > 1 else (reference, "", "")
    return repo.lower(), ref


def same_references(live: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    """Do RunPod's model references already say what deploy.yaml wants?

    RunPod answers a reference with its ref resolved to a commit (runpodctl e2e/cli_test.go:
    ``:main`` comes back as ``:<sha>``), so a wanted branch or tag matches any commit of the same
    repo; a wanted commit must match exactly.
    """
    if len(live) != len(wanted):
        return False
    for have, want in zip(sorted(live), sorted(wanted), strict=True):
        (have_repo, have_ref), (want_repo, want_ref) = _reference_parts(have), _reference_parts(want)
        if have_repo != want_repo:
            return False
        if have_ref != want_ref and (_COMMIT.match(want_ref) or not _COMMIT.match(have_ref)):
            return False
    return True


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

    def model_references(self) -> tuple[str, ...]:
        return tuple(str(r) for r in self.raw.get("modelReferences") or () if r)

    def network_volume_ids(self) -> tuple[str, ...]:
        ids = [
            str(v.get("networkVolumeId"))
            for v in self.raw.get("networkVolumeIds") or ()
            if v and v.get("networkVolumeId")
        ]
        legacy = self.raw.get("networkVolumeId")
        if legacy and str(legacy) not in ids:
            ids.append(str(legacy))
        return tuple(ids)

    def gated_changes(self, spec: EndpointSpec) -> dict[str, Any]:
        """The gated fields (see above) the spec wants different from RunPod's, in GraphQL's shape."""
        changed: dict[str, Any] = {}
        wanted = spec.gated()
        if spec.model_references is not None and not same_references(self.model_references(), spec.model_references):
            changed["modelReferences"] = wanted["modelReferences"]
        if spec.network_volume_ids is not None and set(self.network_volume_ids()) != set(spec.network_volume_ids):
            changed["networkVolumeIds"] = wanted["networkVolumeIds"]
        return changed

    def update_input(self, spec: EndpointSpec) -> dict[str, Any]:
        """The object for ``saveEndpoint`` with ``id``: spec values, plus the live values of
        the fields an update would otherwise reset, plus the gated fields that must change;
        never the template (see above)."""
        data: dict[str, Any] = {"id": self.id}
        for key in _ECHOED_ENDPOINT_FIELDS:
            if key in self.raw:
                data[key] = self.raw[key]
        instances = [i for i in self.raw.get("instanceIds") or () if i]
        if instances:
            # Only when there are some: `[]` would be stored as "" where the column held null.
            data["instanceIds"] = instances
        data.update(spec.managed())
        data.update(self.gated_changes(spec))
        data.pop("templateId")
        return data


@dataclass(frozen=True)
class RegistryAuth:
    id: str
    name: str


@dataclass(frozen=True)
class AccountSecret:
    """A RunPod account secret: its name and id only (RunPod never returns a value)."""

    id: str
    name: str


@dataclass(frozen=True)
class Account:
    id: str
    email: str | None
