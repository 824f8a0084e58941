"""Endpoint releases as REST v2 reports them (``GET /v2/serverless/{id}/releases``).

A release is a versioned configuration snapshot with a ``diff`` of what changed (RunPod's
OpenAPI document for v2, ``listEndpointReleases`` and ``Release``). The emulator records one
when an endpoint is created and each time its version goes up, whichever API made the change:
GraphQL (``graphql_templates.py``, ``graphql_endpoints.py``: a template update, new GPUs,
another template, the volumes or the cached model) or REST (``rest.py``: the container
settings, GPUs, CUDA, volumes or flashboot).
What v2 puts in ``diff[].field`` is not settled (its description names GraphQL fields like
``template.imageName``, its example ``workers.max``); the emulator uses v2's own names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rpdeploy.emulator import ids
from rpdeploy.emulator.state import EmulatorState, Endpoint

Diff = Sequence[tuple[str, Any, Any]]


def record(state: EmulatorState, endpoint: Endpoint, diff: Diff = ()) -> dict[str, Any]:
    """Add a MANUAL release for the endpoint's current version (state lock held)."""
    release = {
        "id": ids.release_id(),
        "version": endpoint.version,
        "source": "MANUAL",
        "buildId": None,
        "createdByUserId": state.account.id,
        "createdAt": ids.timestamp(),
        "diff": [{"field": field, "old": old, "new": new} for field, old, new in diff],
    }
    state.releases.setdefault(endpoint.id, []).append(release)
    return release


def forget(state: EmulatorState, endpoint_id: str) -> None:
    state.releases.pop(endpoint_id, None)


def listing(state: EmulatorState, endpoint: Endpoint) -> dict[str, Any]:
    """The ``ListEndpointReleasesResponse`` of an endpoint: history newest first, and the rollout."""
    workers = endpoint.workers
    on_latest = sum(1 for w in workers if w.version == endpoint.version)
    total = len(workers)
    releases = []
    for release in reversed(state.releases.get(endpoint.id, [])):
        count = sum(1 for w in workers if w.version == release["version"])
        releases.append({**release, "workerCount": count})
    return {
        "endpointVersion": endpoint.version,
        "rollout": {
            "inProgress": on_latest < total,
            "workersOnLatest": on_latest,
            "workersTotal": total,
            "percentOnLatest": round(100 * on_latest / total) if total else 0,
        },
        "releases": releases,
    }
