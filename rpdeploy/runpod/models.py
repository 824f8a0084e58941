"""What rpdeploy wants on RunPod (``*Spec``) and what RunPod has (the live objects), in rpdeploy's terms.

Nothing here is a GraphQL or a REST field name: the transports (``controlplane.py`` for
GraphQL, ``rest.py`` for REST v2) translate these objects to and from their API at the edge.
The names follow deploy.yaml (``workers_max``, ``execution_timeout_ms``, ``gpus``...), and so
do the plan's field changes and the ledger. A live object also keeps the record its
transport read (``raw``), for that transport alone: GraphQL's updates replace the whole
object, so fields rpdeploy does not manage must be sent back as they were.

The container the workers run (image, env, disk, registry credentials) is a
:class:`TemplateSpec`. Under GraphQL it is saved as a template the endpoint is bound to; under
REST v2 it is part of the endpoint itself (``EndpointSpec.container``), see ``rest.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rpdeploy.preflight.gpus import GpuSelection
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
    """The container the workers run, as rpdeploy wants it: under GraphQL a serverless template
    (named ``name``), under REST v2 the container settings of the endpoint itself."""

    name: str
    image: str
    env: tuple[EnvVar, ...]
    container_disk_gb: int
    registry_auth_id: str = ""
    docker_args: str = ""
    readme: str = ""
    #: The release this content makes (``rpdeploy.runpod.release``); also in env as RPDEPLOY_RELEASE.
    release: str = ""

    def env_map(self) -> dict[str, str]:
        return {var.key: var.reveal() for var in self.env}


@dataclass(frozen=True)
class Container:
    """The container settings a live endpoint or template has."""

    image: str
    env: tuple[tuple[str, str], ...]
    container_disk_gb: int
    registry_auth_id: str
    docker_args: str = ""

    def env_map(self) -> dict[str, str]:
        return dict(self.env)


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

    def env_map(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def container(self) -> Container:
        return Container(self.image, self.env, self.container_disk_gb, self.registry_auth_id, self.docker_args)


def _sorted(values: tuple[str, ...] | None) -> list[str]:
    return sorted(values or ())


@dataclass(frozen=True)
class EndpointSpec:
    """A serverless endpoint as rpdeploy wants it (template id filled in once known)."""

    name: str
    #: The template it is bound to (GraphQL); "" where the API keeps no link (REST v2).
    template_id: str
    gpus: GpuSelection
    gpu_count: int
    workers_min: int
    workers_max: int
    idle_timeout: int
    scaler_type: str
    scaler_value: int
    flashboot: bool
    execution_timeout_ms: int
    allowed_cuda_versions: tuple[str, ...]
    locations: tuple[str, ...]
    #: RunPod's cached model: () for none; None leaves RunPod's as they are.
    model_references: tuple[str, ...] | None = None
    #: Network volumes; None leaves RunPod's as they are.
    network_volume_ids: tuple[str, ...] | None = None
    #: The container, where the endpoint itself carries it (REST v2); None where a template does.
    container: TemplateSpec | None = None

    def settings(self) -> dict[str, Any]:
        """The managed settings, in rpdeploy's names and plain JSON values: what a diff compares."""
        return _endpoint_settings(self)


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
    #: The template it is bound to (GraphQL); "" where the API shows none (REST v2).
    template_id: str
    workers_min: int
    workers_max: int
    #: Its configuration version (GraphQL ``version``); None where the API does not say.
    version: int | None
    gpus: GpuSelection = field(default_factory=lambda: GpuSelection(frozenset(), frozenset()))
    gpu_count: int = 1
    idle_timeout: int | None = None
    scaler_type: str = ""
    scaler_value: int | None = None
    flashboot: bool = False
    execution_timeout_ms: int = 0
    allowed_cuda_versions: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    #: The container settings, where the API shows them on the endpoint (REST v2).
    container: Container | None = None
    #: The cached model; None where the API cannot say (REST v2 has no such field).
    model_references: tuple[str, ...] | None = ()
    network_volume_ids: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The live values of what :meth:`EndpointSpec.settings` manages, in the same form."""
        return _endpoint_settings(self)

    def model_references_change(self, spec: EndpointSpec) -> bool:
        """Does deploy.yaml want another cached model than RunPod has? (Never when either side does not say.)"""
        if spec.model_references is None or self.model_references is None:
            return False
        return not same_references(self.model_references, spec.model_references)

    def network_volumes_change(self, spec: EndpointSpec) -> bool:
        return spec.network_volume_ids is not None and set(self.network_volume_ids) != set(spec.network_volume_ids)


def _endpoint_settings(source: EndpointSpec | Endpoint) -> dict[str, Any]:
    """The settings a diff compares, read the same way from what is asked and what RunPod holds."""
    return {
        "name": source.name,
        "gpus": source.gpus.to_dict(),
        "gpu_count": source.gpu_count,
        "workers_min": source.workers_min,
        "workers_max": source.workers_max,
        "idle_timeout": source.idle_timeout,
        "scaler_type": source.scaler_type,
        "scaler_value": source.scaler_value,
        "flashboot": source.flashboot,
        "execution_timeout_ms": source.execution_timeout_ms,
        "allowed_cuda_versions": _sorted(source.allowed_cuda_versions),
        "locations": _sorted(source.locations),
    }


@dataclass(frozen=True)
class Worker:
    """One active worker of an endpoint (REST v2 ``/workers``)."""

    id: str
    status: str  # RUNNING | IDLE | INITIALIZING | THROTTLED | UNHEALTHY
    is_stale: bool
    version: int | None = None
    gpu_type: str | None = None
    gpu_count: int = 1
    data_center: str | None = None
    started_at: str | None = None  # RFC 3339
    uptime_seconds: int | None = None
    image: str | None = None


@dataclass(frozen=True)
class WorkerList:
    endpoint_version: int | None
    workers: tuple[Worker, ...]


@dataclass(frozen=True)
class Rollout:
    in_progress: bool
    workers_on_latest: int
    workers_total: int
    percent_on_latest: float


@dataclass(frozen=True)
class Release:
    id: str
    version: int | None
    source: str
    created_at: str
    worker_count: int
    #: What changed: (field, old, new), in the API's own field names.
    diff: tuple[tuple[str, Any, Any], ...] = ()


@dataclass(frozen=True)
class ReleaseList:
    endpoint_version: int | None
    rollout: Rollout
    releases: tuple[Release, ...]  # newest first

    @property
    def latest(self) -> Release | None:
        return self.releases[0] if self.releases else None


@dataclass(frozen=True)
class LogLine:
    """One line of a worker's log (REST v2 ``/workers/{workerId}/logs``)."""

    ts: str
    source: str  # container | system
    line: str
    #: The stream's event id: where a reconnect resumes (echoed as Last-Event-ID).
    id: str = ""


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
