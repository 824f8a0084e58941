"""How far a release has rolled out on the endpoint's workers, as the control plane reports it.

When deploy changes what the workers run, RunPod bumps the endpoint's ``version`` and replaces
the workers one by one: idle ones at once, busy ones after their job, and "there is a short
overlap" where old and new versions serve side by side (docs
serverless/endpoints/rolling-releases.mdx, runpod/docs@a900806). The deploy's endpoint check
uses this view to wait until old workers are gone, and to say what it saw.

The view is transport-neutral: :class:`Rollout` is what any control plane can supply.

* GraphQL (today): ``Endpoint.version`` and the version each worker runs, ``Endpoint.pods
  { slsVersion }`` (pulumi-runpod-native models_gen.go @82738bd: ``Endpoint.version Int``,
  ``Pod.slsVersion Int``). No RunPod client selects ``slsVersion`` yet, so reading it as "the
  endpoint version this worker runs" is rpdeploy's; a worker whose slsVersion is null counts
  as unknown, never as current, and a view with no version at all is "not observable".
* REST v2 (``runpod.api: rest``): ``GET /v2/serverless/{id}/workers`` gives ``endpointVersion``,
  each worker's ``version``, its ``status`` (``UNHEALTHY``: failing its health checks) and the
  authoritative ``isStale``; ``GET /v2/serverless/{id}/releases`` gives ``rollout.inProgress``
  (runpod-openapi-v2.json 2026-08-18, ListEndpointWorkersResponse, Worker.isStale and
  RolloutSummary). :func:`from_rest` builds the view from the control plane's ``workers()`` and
  ``releases()``, and nothing above this module changes.

RunPod's own e2e tests show a limit no API reveals: an endpoint with workers min = max = 1 may
never pick up a new release (runpod/flash e2e/test_redeploy.py, "recycle not working",
AE-2940/2941/2942). :func:`pinned_note` says so when it applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rpdeploy.runpod.models import ReleaseList, WorkerList

#: Where each transport reads its view.
GRAPHQL_SOURCE = "GraphQL Endpoint.version and pods.slsVersion"
REST_SOURCE = "REST v2 /workers and /releases"


@dataclass(frozen=True)
class WorkerVersion:
    """One worker and the endpoint version it runs (None: the control plane did not say)."""

    id: str
    version: int | None
    status: str | None = None
    #: The control plane's own verdict (REST v2 ``isStale``); None: derive it from the versions.
    stale: bool | None = None

    def is_stale(self, endpoint_version: int | None) -> bool | None:
        if self.stale is not None:
            return self.stale
        if self.version is None or endpoint_version is None:
            return None
        return self.version < endpoint_version


@dataclass(frozen=True)
class Rollout:
    endpoint_version: int | None
    workers: tuple[WorkerVersion, ...]
    source: str
    #: REST v2 /releases ``rollout.inProgress`` when the transport has it.
    in_progress: bool | None = None

    @property
    def stale(self) -> tuple[WorkerVersion, ...]:
        return tuple(w for w in self.workers if w.is_stale(self.endpoint_version) is True)

    @property
    def unknown(self) -> tuple[WorkerVersion, ...]:
        return tuple(w for w in self.workers if w.is_stale(self.endpoint_version) is None)

    @property
    def on_latest(self) -> int:
        return sum(1 for w in self.workers if w.is_stale(self.endpoint_version) is False)

    @property
    def observable(self) -> bool:
        """Whether this view can tell old workers from new ones at all."""
        if self.in_progress is not None:
            return True
        return self.endpoint_version is not None and not self.unknown

    @property
    def unhealthy(self) -> tuple[WorkerVersion, ...]:
        """Workers of the current version failing their health checks (REST v2 ``UNHEALTHY``)."""
        return tuple(w for w in self.workers if w.status == "UNHEALTHY" and w.is_stale(self.endpoint_version) is False)

    @property
    def done(self) -> bool:
        """No worker is known to run an older version (and none is unknown)."""
        if self.in_progress is not None:
            return not self.in_progress and not self.stale
        return self.observable and not self.stale

    def describe(self) -> str:
        if self.endpoint_version is None:
            return f"the endpoint's version is not reported ({self.source})"
        if not self.workers:
            return f"version {self.endpoint_version}: no workers running"
        parts = [f"version {self.endpoint_version}: {self.on_latest} of {len(self.workers)} worker(s) on it"]
        if self.stale:
            parts.append(f"{len(self.stale)} on an older version")
        if self.unknown:
            parts.append(f"{len(self.unknown)} without a version")
        if self.unhealthy:
            parts.append(f"{len(self.unhealthy)} of the current version unhealthy")
        return ", ".join(parts)


def from_graphql(endpoint: Any) -> Rollout:
    """The view from ``myself { endpoint(id:) { version pods { id desiredStatus slsVersion } } }``."""
    data = endpoint if isinstance(endpoint, dict) else {}
    workers = []
    for pod in data.get("pods") or ():
        if not isinstance(pod, dict) or not pod.get("id"):
            continue
        version = pod.get("slsVersion")
        workers.append(
            WorkerVersion(
                id=str(pod["id"]),
                version=version if isinstance(version, int) and not isinstance(version, bool) else None,
                status=str(pod["desiredStatus"]) if pod.get("desiredStatus") else None,
            )
        )
    version = data.get("version")
    return Rollout(
        endpoint_version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        workers=tuple(workers),
        source=GRAPHQL_SOURCE,
    )


def from_rest(workers: WorkerList, releases: ReleaseList | None = None) -> Rollout:
    """The view from REST v2: the worker list (``isStale`` per worker) and, when it could be read,
    the release history's ``rollout.inProgress``."""
    version = workers.endpoint_version
    if version is None and releases is not None:
        version = releases.endpoint_version
    return Rollout(
        endpoint_version=version,
        workers=tuple(
            WorkerVersion(id=w.id, version=w.version, status=w.status or None, stale=w.is_stale)
            for w in workers.workers
        ),
        source=REST_SOURCE,
        in_progress=releases.rollout.in_progress if releases is not None else None,
    )


def pinned_note(workers_min: int, workers_max: int) -> str:
    """Why a release may never reach an endpoint whose only worker is always on."""
    if workers_min == workers_max == 1:
        return (
            "workers_min = workers_max = 1: RunPod's own tests track such endpoints as never recycling their worker "
            "onto a new release (runpod/flash e2e/test_redeploy.py, AE-2940); allow workers_max 2 for the overlap"
        )
    return ""
