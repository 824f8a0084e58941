"""What the emulated account holds: templates, endpoints, registry credentials, jobs, workers.

One :class:`EmulatorState` per emulator, guarded by one re-entrant lock (``state.lock``); its
condition (``state.changed``) wakes requests that wait on a job (``/runsync``, the OpenAI
routes). The records are plain dataclasses in snake case; ``*_dict`` functions give the
camel-case shapes RunPod answers with, which both the GraphQL layer and
:meth:`EmulatorState.snapshot` use.

Times inside records are seconds on the emulator's clock (``time.monotonic`` unless a test
passes another), except ``created_at`` strings, which are wall-clock ISO-8601 as RunPod shows.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from rpdeploy.emulator import ids
from rpdeploy.emulator.model import HandlerResult


@dataclass
class EnvVar:
    key: str
    value: str


@dataclass
class Template:
    id: str
    name: str
    image_name: str
    docker_args: str
    container_disk_in_gb: int
    volume_in_gb: int
    volume_mount_path: str
    ports: str
    env: list[EnvVar]
    is_serverless: bool
    is_public: bool
    readme: str
    start_ssh: bool
    start_jupyter: bool
    start_script: str
    advanced_start: bool
    container_registry_auth_id: str
    category: str
    ports_config: list[dict[str, Any]]
    config: Any
    created_at: str = field(default_factory=ids.timestamp)
    #: When the last endpoint using it let it go (emulator clock); starts the deletion delay.
    released_at: float | None = None

    def env_dict(self) -> dict[str, str]:
        return {item.key: item.value for item in self.env}


@dataclass
class RegistryAuth:
    id: str
    name: str
    username: str
    password: str = field(repr=False)


@dataclass
class NetworkVolume:
    id: str
    name: str
    size: int
    data_center_id: str
    #: Models a worker downloaded onto it, and when each is complete (emulator clock).
    models: dict[str, float] = field(default_factory=dict)


@dataclass
class AccountSecret:
    """An account secret. Its value never leaves the emulator except into a worker's env."""

    id: str
    name: str
    value: str = field(repr=False)
    description: str | None = None
    created_at: str = field(default_factory=ids.timestamp)
    updated_at: str | None = None


class JobStatus(str, Enum):
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def terminal(self) -> bool:
        return self not in (JobStatus.IN_QUEUE, JobStatus.IN_PROGRESS)


@dataclass
class Job:
    id: str
    endpoint_id: str
    input: dict[str, Any]
    sync: bool
    queued_at: float
    ttl: float  # seconds in the queue before the job expires (policy.ttl)
    execution_timeout: float | None  # seconds; None = no limit
    webhook: str | None = None
    status: JobStatus = JobStatus.IN_QUEUE
    # Decided when the job is queued (a fault switch can make it fail, error or hang).
    fault: str | None = None
    fault_message: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    run_until: float | None = None  # when a running job will finish; None = it hangs
    run_time: float = 0.0  # planned execution time, spreads stream chunks over it
    worker_id: str | None = None
    result: HandlerResult | None = None
    output: Any = None
    error: str | None = None
    retries: int = 0
    stream_cursor: int = 0  # chunks /stream has handed out already

    def end_time(self) -> float | None:
        """When this running job stops by itself: finishes or times out, whichever first."""
        if self.started_at is None:
            return None
        ends = [t for t in (self.run_until,) if t is not None]
        if self.execution_timeout is not None:
            ends.append(self.started_at + self.execution_timeout)
        return min(ends) if ends else None

    def chunks_produced(self, now: float) -> int:
        """How many stream chunks the worker has yielded by ``now``."""
        if self.result is None or self.started_at is None:
            return 0
        total = len(self.result.chunks)
        if self.status is JobStatus.COMPLETED:
            return total
        if self.run_until is None or self.result.error is not None:
            return 0
        stopped = self.finished_at if self.finished_at is not None else now
        if self.run_time <= 0:
            return total
        fraction = (min(stopped, now) - self.started_at) / self.run_time
        return max(0, min(total, int(total * fraction)))

    def body(self) -> dict[str, Any]:
        """The job as ``/status`` answers: timings only once they are known."""
        data: dict[str, Any] = {"id": self.id, "status": self.status.value}
        if self.started_at is not None:
            data["delayTime"] = _ms(self.started_at - self.queued_at)
            data["workerId"] = self.worker_id
        elif self.finished_at is not None:
            data["delayTime"] = _ms(self.finished_at - self.queued_at)
        if self.started_at is not None and self.finished_at is not None:
            data["executionTime"] = _ms(self.finished_at - self.started_at)
        if self.status is JobStatus.COMPLETED:
            data["output"] = self.output
        if self.error is not None:
            data["error"] = self.error
        if self.retries:
            data["retries"] = self.retries
        return data


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


@dataclass
class Worker:
    id: str
    ready_at: float  # cold start ends
    concurrency: int
    ready: bool = False  # cold start over (set by the fleet when it replays that event)
    jobs: set[str] = field(default_factory=set)
    idle_since: float | None = None
    #: The env it started with: the template's, RunPod secret references replaced by their values.
    env: dict[str, str] = field(default_factory=dict, repr=False)
    #: Where its weights came from (emulator/coldstart.py) and why it cannot run jobs, if so.
    weights: str = ""
    start_error: str | None = None
    #: The endpoint version it started on (REST v2 /workers: isStale when the endpoint's differs),
    #: and when it started (emulator clock): its logs begin there.
    version: int = 0
    started_at: float = 0.0

    @property
    def status(self) -> str:
        """As /health counts it: initializing, running (has jobs) or idle."""
        if not self.ready:
            return "initializing"
        return "running" if self.jobs else "idle"

    def free_slots(self) -> int:
        return self.concurrency - len(self.jobs)


@dataclass
class Endpoint:
    id: str
    name: str
    template_id: str
    gpu_ids: str
    gpu_count: int
    instance_ids: list[str]
    workers_min: int
    workers_max: int
    workers_pfb_target: int
    idle_timeout: int
    scaler_type: str
    scaler_value: int
    locations: str | None
    network_volume_id: str | None
    network_volume_ids: list[str]
    execution_timeout_ms: int
    allowed_cuda_versions: str | None
    min_cuda_version: str | None
    flash_boot_type: str
    type: str
    model_references: list[str]
    compliance: list[str]
    flash_environment_id: str | None
    hub_release_id: str | None
    user_id: str
    request_ttl: int | None = None
    version: int = 0
    created_at: str = field(default_factory=ids.timestamp)
    ai_key: str | None = None
    # The simulated fleet and queue.
    workers: list[Worker] = field(default_factory=list)
    queue: deque[str] = field(default_factory=deque)
    completed: int = 0
    failed: int = 0
    retried: int = 0

    @property
    def compute_type(self) -> str:
        return "CPU" if self.instance_ids else "GPU"


@dataclass(frozen=True)
class Account:
    id: str
    email: str


class EmulatorState:
    """Everything the emulated account holds. Lock ``lock`` around any read or write."""

    def __init__(self, account: Account, clock: Callable[[], float] = time.monotonic) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.clock = clock
        self.account = account
        self.templates: dict[str, Template] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.registry_auths: dict[str, RegistryAuth] = {}
        self.network_volumes: dict[str, NetworkVolume] = {}
        self.secrets: dict[str, AccountSecret] = {}
        self.jobs: dict[str, Job] = {}
        #: Each endpoint's releases, oldest first (REST v2 /releases; emulator/releases.py).
        self.releases: dict[str, list[dict[str, Any]]] = {}
        # Set by the fleet: brings workers and jobs up to the clock before a read.
        self.advance: Callable[[], None] = lambda: None

    def clear(self) -> None:
        with self.lock:
            self.templates.clear()
            self.endpoints.clear()
            self.registry_auths.clear()
            self.network_volumes.clear()
            self.secrets.clear()
            self.jobs.clear()
            self.releases.clear()
            self.changed.notify_all()

    # --- lookups --------------------------------------------------------------------------

    def template_by_name(self, name: str) -> Template | None:
        return next((t for t in self.templates.values() if t.name == name), None)

    def endpoint_bound_to(self, template_id: str) -> Endpoint | None:
        return next((e for e in self.endpoints.values() if e.template_id == template_id), None)

    def add_network_volume(self, name: str, size: int = 50, data_center_id: str = "EU-RO-1") -> NetworkVolume:
        """Create a network volume (the emulator has no mutation for it; tests seed them)."""
        volume = NetworkVolume(id=ids.network_volume_id(), name=name, size=size, data_center_id=data_center_id)
        with self.lock:
            self.network_volumes[volume.id] = volume
        return volume

    # --- views ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of the whole state (what ``GET /_emulator/state`` returns)."""
        with self.lock:
            self.advance()
            return {
                "account": {"id": self.account.id, "email": self.account.email},
                "templates": [template_dict(self, t) for t in self.templates.values()],
                "endpoints": [
                    {
                        **endpoint_dict(self, e),
                        "workers": [worker_dict(w) for w in e.workers],
                        "queue": list(e.queue),
                    }
                    for e in self.endpoints.values()
                ],
                "registryAuths": [
                    {"id": r.id, "name": r.name, "username": r.username} for r in self.registry_auths.values()
                ],
                "networkVolumes": [network_volume_dict(v) for v in self.network_volumes.values()],
                "secrets": [secret_dict(s) for s in self.secrets.values()],
                "jobs": [
                    {**job.body(), "endpointId": job.endpoint_id, "input": job.input} for job in self.jobs.values()
                ],
            }


def env_list(env: list[EnvVar]) -> list[dict[str, str]]:
    return [{"key": item.key, "value": item.value} for item in env]


def template_dict(state: EmulatorState, template: Template) -> dict[str, Any]:
    bound = state.endpoint_bound_to(template.id)
    return {
        "id": template.id,
        "name": template.name,
        "imageName": template.image_name,
        "dockerArgs": template.docker_args,
        "containerDiskInGb": template.container_disk_in_gb,
        "volumeInGb": template.volume_in_gb,
        "volumeMountPath": template.volume_mount_path,
        "ports": template.ports,
        "portsConfig": [dict(item) for item in template.ports_config],
        "env": env_list(template.env),
        "isServerless": template.is_serverless,
        "isPublic": template.is_public,
        "isRunpod": False,
        "readme": template.readme,
        "startSsh": template.start_ssh,
        "startJupyter": template.start_jupyter,
        "startScript": template.start_script,
        "advancedStart": template.advanced_start,
        "containerRegistryAuthId": template.container_registry_auth_id,
        "category": template.category,
        "config": template.config,
        "boundEndpointId": bound.id if bound else None,
    }


def network_volume_dict(volume: NetworkVolume) -> dict[str, Any]:
    return {"id": volume.id, "name": volume.name, "size": volume.size, "dataCenterId": volume.data_center_id}


def endpoint_dict(state: EmulatorState, endpoint: Endpoint) -> dict[str, Any]:
    template = state.templates.get(endpoint.template_id)
    volume = state.network_volumes.get(endpoint.network_volume_id) if endpoint.network_volume_id else None
    return {
        "id": endpoint.id,
        "name": endpoint.name,
        "templateId": endpoint.template_id,
        "template": template_dict(state, template) if template else None,
        "gpuIds": endpoint.gpu_ids,
        "gpuCount": endpoint.gpu_count,
        "instanceIds": list(endpoint.instance_ids),
        "computeType": endpoint.compute_type,
        "networkVolumeId": endpoint.network_volume_id,
        "networkVolume": network_volume_dict(volume) if volume else None,
        "networkVolumeIds": [
            {
                "networkVolumeId": volume_id,
                "dataCenterId": state.network_volumes[volume_id].data_center_id
                if volume_id in state.network_volumes
                else None,
            }
            for volume_id in endpoint.network_volume_ids
        ],
        "locations": endpoint.locations,
        "idleTimeout": endpoint.idle_timeout,
        "scalerType": endpoint.scaler_type,
        "scalerValue": endpoint.scaler_value,
        "workersMin": endpoint.workers_min,
        "workersMax": endpoint.workers_max,
        # saveEndpoint writes workersStandby := workersMax (mcp changeset, windows-claude-detection...).
        "workersStandby": endpoint.workers_max,
        "workersPFBTarget": endpoint.workers_pfb_target,
        "allowedCudaVersions": endpoint.allowed_cuda_versions,
        "minCudaVersion": endpoint.min_cuda_version,
        "executionTimeoutMs": endpoint.execution_timeout_ms,
        "flashBootType": endpoint.flash_boot_type,
        "modelReferences": list(endpoint.model_references),
        "requestTTL": endpoint.request_ttl,
        "compliance": list(endpoint.compliance),
        "type": endpoint.type,
        "aiKey": endpoint.ai_key,
        "userId": endpoint.user_id,
        "version": endpoint.version,
        "activeBuildid": None,
        "idePodId": None,
        "flashEnvironmentId": endpoint.flash_environment_id,
        "hubReleaseId": endpoint.hub_release_id,
        "createdAt": endpoint.created_at,
        "env": env_list(template.env) if template else [],
        "pods": [{"id": worker.id, "desiredStatus": "RUNNING"} for worker in endpoint.workers],
    }


def worker_dict(worker: Worker) -> dict[str, Any]:
    return {
        "id": worker.id,
        "status": worker.status,
        "jobs": sorted(worker.jobs),
        "concurrency": worker.concurrency,
        "weights": worker.weights,
    }


def secret_dict(secret: AccountSecret) -> dict[str, Any]:
    """A secret as RunPod shows it: metadata, never the value (the Secret type has no value field)."""
    return {
        "id": secret.id,
        "name": secret.name,
        "description": secret.description,
        "createdAt": secret.created_at,
        "updatedAt": secret.updated_at,
        "lastRetrievedAt": None,
        "lastUpdatedAt": secret.updated_at,
    }
