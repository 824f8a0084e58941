"""Rolling releases in the simulated fleet: old workers serve on until new ones are ready.

What RunPod documents (docs serverless/endpoints/rolling-releases.mdx, runpod/docs@a900806):
a change to the image or env (or anything that needs new workers) makes a new release; idle
workers of the old version are replaced, busy ones finish their job first, the endpoint keeps
taking requests, "new requests go to updated workers when available", and there is "a short
overlap" in which old and new versions answer side by side. The emulator keeps that overlap
explicit and testable:

* every worker runs the release it started with (the endpoint's version, its template's image
  and env at that moment: :attr:`Worker.version`, ``image``, ``env``), answering from it for
  life;
* when the endpoint's version moves on, its older workers are *stale*: replacements start at
  once, jobs go to a ready worker of the current version when there is one and to a stale one
  otherwise, and an idle stale worker stops once a current worker is ready (or after
  ``grace`` seconds without one, or when workers_max is 0). The docs say idle old workers
  "are terminated immediately and replaced"; the emulator keeps them until a replacement is
  ready instead, the widest reading of the "short overlap" the same page warns of, so that
  tests meet the case a deploy must survive: an old worker answering after the update;
* a release can fail to start (fault ``release_start_fail``): its workers end their cold start
  *unhealthy* instead of ready, stay so for ``restart`` seconds, are replaced, and fail again
  while the switch is on. Meanwhile the stale workers go on answering: exactly the case in
  which "the endpoint answered" says nothing about the new release.

All functions expect ``state.lock`` to be held.
"""

from __future__ import annotations

from rpdeploy.emulator.state import Endpoint, Template, Worker

#: Seconds an unhealthy worker stays before it is replaced (RunPod restarts failing workers; the
#: pace is not documented). At least this, so a zero cold start cannot spin the simulation.
MIN_RESTART = 1.0


def start(worker: Worker, endpoint: Endpoint, template: Template | None, *, failing: bool) -> Worker:
    """Give a new worker the endpoint's current release (an env the worker was started with is kept)."""
    worker.version = endpoint.version
    worker.image = template.image_name if template is not None else ""
    if not worker.env:
        worker.env = template.env_dict() if template is not None else {}
    worker.failing = failing
    return worker


def current(endpoint: Endpoint) -> list[Worker]:
    return [w for w in endpoint.workers if w.version >= endpoint.version]


def stale(endpoint: Endpoint) -> list[Worker]:
    return [w for w in endpoint.workers if w.version < endpoint.version]


def serving(endpoint: Endpoint) -> list[Worker]:
    """Ready workers in the order jobs go to them: the current release first, then stale ones."""
    ready = [w for w in endpoint.workers if w.ready and w.failed_at is None]
    return [w for w in ready if w.version >= endpoint.version] + [w for w in ready if w.version < endpoint.version]


def replaced(endpoint: Endpoint) -> bool:
    """Is a worker of the current release ready to take over?"""
    return any(w.ready and w.failed_at is None for w in current(endpoint))


def end_cold_start(worker: Worker) -> None:
    """The cold start is over: ready, or unhealthy for a release that cannot start."""
    if worker.failing:
        worker.failed_at = worker.ready_at
    else:
        worker.ready = True
        worker.idle_since = worker.ready_at


def settle(endpoint: Endpoint, now: float, *, grace: float, restart: float) -> None:
    """Mark workers of older versions stale; stop the unhealthy ones due, and the idle stale ones that may go."""
    for worker in list(endpoint.workers):
        if worker.failed_at is not None and worker.failed_at + max(restart, MIN_RESTART) <= now:
            endpoint.workers.remove(worker)
            continue
        if worker.version < endpoint.version and worker.stale_since is None:
            worker.stale_since = now
    if not stale(endpoint):
        return
    taken_over = replaced(endpoint) or endpoint.workers_max == 0
    for worker in stale(endpoint):
        assert worker.stale_since is not None
        if worker.jobs:
            continue  # busy workers finish their jobs first
        if taken_over or worker.stale_since + grace <= now or not worker.ready:
            endpoint.workers.remove(worker)


def events(endpoint: Endpoint, *, grace: float, restart: float) -> list[float]:
    """When something in a release changes by itself: an unhealthy worker is replaced, a stale one's grace ends."""
    times = []
    for worker in endpoint.workers:
        if worker.failed_at is not None:
            times.append(worker.failed_at + max(restart, MIN_RESTART))
        elif worker.stale_since is not None and not worker.jobs:
            times.append(worker.stale_since + grace)
    return times
