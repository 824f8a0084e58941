"""REST v2's workers of an endpoint: their list, the endpoint's releases, and each worker's
logs as a Server-Sent Events stream (``GET /v2/serverless/{id}/workers/{workerId}/logs``).

Worker logs are an SSE stream made from what the fleet did: the worker's start (host, image
pull, where its weights came from: the cold start), its readiness, and each job it ran, with
the job's error. Each event's id is its line's time, as the document's schema has it
(``Last-Event-ID`` is a date-time; its example id, with a ``/<sequence>`` suffix, is not one),
a microsecond apart at least so no two lines share one. The stream replays ``tail`` lines
(``since``/``Last-Event-ID``, exclusive, resume), then stays open for new lines while the
worker lives; it closes after ``STREAM_IDLE`` seconds without one (an emulator rule: RunPod's
never closes, and a client reconnects with ``Last-Event-ID``).

:class:`WorkerRoutes` is a part of :class:`~rpdeploy.emulator.rest.RestApi`, which routes
requests to these methods under the state lock.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rpdeploy.emulator import releases
from rpdeploy.emulator.invoke import Response
from rpdeploy.emulator.rest_shapes import RATE_LIMIT_HEADERS, Refused, split
from rpdeploy.emulator.state import EmulatorState, Endpoint, Worker
from rpdeploy.preflight import gpus

#: Seconds a log stream stays open without a new line (emulator rule, see the module docstring).
STREAM_IDLE = 15.0
#: Seconds between SSE comments on a quiet stream (emulator rule: how a reader that left is noticed).
KEEP_ALIVE = 2.0


@dataclass(frozen=True)
class LogEntry:
    at: float  # emulator clock
    source: str  # container | system
    line: str


def _rfc3339(epoch: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_WEIGHTS = {
    "cached": "model weights found in RunPod's model cache on this host ({cache}): loading them from local disk",
    "download": "downloading the model weights from the Hugging Face Hub",
    "bake": "loading the model baked into the image",
    "network-volume": "loading the model weights from the network volume",
    "network-volume (first download)": "downloading the model weights onto the network volume (first worker)",
}


def worker_log(state: EmulatorState, endpoint: Endpoint, worker: Worker, placement: tuple[str, str]) -> list[LogEntry]:
    """What the worker has logged by now, oldest first (state lock held)."""
    gpu, data_center = placement
    model = worker.env.get("MODEL_NAME") or worker.env.get("MODEL_PATH") or "(no MODEL_NAME)"
    start = worker.started_at
    release = worker.env.get("RPDEPLOY_RELEASE")
    entries = [
        LogEntry(start, "system", f"worker {worker.id} assigned to a {gpu} host in {data_center}"),
        LogEntry(start, "system", f"pulling image {worker.image or '(none)'}"),
        LogEntry(start, "container", f"cold start: {model}"),
    ]
    if worker.weights:
        text = _WEIGHTS.get(worker.weights, worker.weights)
        entries.append(LogEntry(start, "container", text.format(cache="/runpod-volume/huggingface-cache/hub")))
    if worker.start_error is not None:
        entries.append(LogEntry(start, "container", f"error: {worker.start_error}"))
    if release:
        entries.append(LogEntry(start, "container", f"release {release}"))
    if worker.failed_at is not None:
        # A release that cannot start (fault release_start_fail, emulator/rolling.py): the engine
        # dies during its start and the worker is unhealthy until RunPod replaces it.
        entries.append(
            LogEntry(worker.failed_at, "container", "error: the worker failed to start: engine exited with code 1")
        )
    elif worker.ready or worker.ready_at <= state.clock():
        entries.append(
            LogEntry(worker.ready_at, "container", f"Worker ready (cold start {worker.ready_at - start:.1f}s).")
        )
    for job in state.jobs.values():
        if job.worker_id != worker.id or job.started_at is None:
            continue
        entries.append(LogEntry(job.started_at, "container", f"job {job.id} started"))
        if job.finished_at is not None and job.status.terminal:
            if job.error:
                entries.append(LogEntry(job.finished_at, "container", f"job {job.id} failed: {job.error}"))
            else:
                took = round((job.finished_at - job.started_at) * 1000)
                entries.append(
                    LogEntry(job.finished_at, "container", f"job {job.id} {job.status.value.lower()} in {took} ms")
                )
    entries.sort(key=lambda e: e.at)
    return entries


def _stamped(entries: list[LogEntry], epoch: float) -> list[tuple[float, LogEntry]]:
    """Each line with its wall time, strictly increasing (a microsecond apart at least): the event
    id is the time (getWorkerLogs: "Log-event id values are the event ts timestamp"; the
    Last-Event-ID header is a date-time), so two lines must never share one."""
    stamped: list[tuple[float, LogEntry]] = []
    last = 0.0
    for entry in entries:
        moment = max(round(epoch + entry.at, 6), round(last + 0.000001, 6))
        stamped.append((moment, entry))
        last = moment
    return stamped


def _sse(moment: float, entry: LogEntry) -> bytes:
    ts = _rfc3339(moment)
    payload = json.dumps({"ts": ts, "source": entry.source, "line": entry.line})
    return f"id: {ts}\ndata: {payload}\n\n".encode()


class WorkerRoutes:
    """``/v2/serverless/{id}/workers``, ``.../releases`` and ``.../workers/{workerId}/logs``
    (a part of ``RestApi``)."""

    state: EmulatorState
    control: Any
    fleet: Any
    stream_idle: float
    _placements: dict[str, tuple[str, str]]
    _epoch: float

    if TYPE_CHECKING:  # RestApi's

        def _endpoint(self, endpoint_id: str) -> Endpoint: ...

        def _ok(self, body: Any, status: int = 200) -> Response: ...

    def placement(self, endpoint: Endpoint, worker: Worker) -> tuple[str, str]:
        """Which GPU type and data center a worker got: one its endpoint allows, kept once chosen."""
        if worker.id not in self._placements:
            allowed = gpus.GpuSelection.parse(endpoint.gpu_ids).allowed(dict(self.control.pools)) or ("unknown",)
            centers = split(endpoint.locations) or ["EU-RO-1"]
            seed = sum(map(ord, worker.id))
            self._placements[worker.id] = (allowed[seed % len(allowed)], centers[seed % len(centers)])
        return self._placements[worker.id]

    def _listEndpointWorkers(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        endpoint = self._endpoint(parts[1])
        now = self.state.clock()
        rows = []
        counts = dict.fromkeys(("running", "idle", "initializing", "throttled", "unhealthy"), 0)
        for worker in endpoint.workers:
            status = "UNHEALTHY" if worker.start_error else worker.status.upper()
            counts[status.lower()] += 1
            gpu, center = self.placement(endpoint, worker)
            rows.append(
                {
                    "id": worker.id,
                    "status": status,
                    "isStale": worker.version != endpoint.version,
                    "version": worker.version,
                    "gpuCount": endpoint.gpu_count,
                    "image": worker.image or None,
                    "uptimeSeconds": max(0, math.floor(now - worker.started_at)),
                    "gpuTypeId": gpu,
                    "dataCenterId": center,
                    "startedAt": _rfc3339(self._epoch + worker.started_at),
                }
            )
        summary = {**counts, "total": len(rows)}
        return self._ok({"workers": rows, "summary": summary, "endpointVersion": endpoint.version})

    def _listEndpointReleases(self, parts: list[str], query: Any, body: Any, headers: Any) -> Response:
        return self._ok(releases.listing(self.state, self._endpoint(parts[1])))

    def _getWorkerLogs(self, parts: list[str], query: Mapping[str, str], body: Any, headers: Any) -> Response:
        endpoint = self._endpoint(parts[1])
        worker = next((w for w in endpoint.workers if w.id == parts[3]), None)
        if worker is None:
            # Only active workers are listed, and their logs go with them (docs serverless/development/logs.mdx).
            raise Refused(404, f"worker {parts[3]} not found on endpoint {endpoint.id}")
        try:
            tail = int(query.get("tail", "100"))
        except ValueError:
            raise Refused(422, "Request validation failed.", ["$.tail: not an integer"]) from None
        if not 0 <= tail <= 5000:
            raise Refused(422, "Request validation failed.", ["$.tail: must be between 0 and 5000"])
        source = query.get("source")
        if source not in (None, "container", "system"):
            raise Refused(422, "Request validation failed.", ["$.source: must be container or system"])
        entries = worker_log(self.state, endpoint, worker, self.placement(endpoint, worker))
        stamped = [(t, e) for t, e in _stamped(entries, self._epoch) if source is None or e.source == source]
        last = _parse_time(headers.get("last-event-id", "")) if headers.get("last-event-id") else None
        since = _parse_time(query["since"]) if query.get("since") else None
        if headers.get("last-event-id") and last is None:
            raise Refused(422, "Request validation failed.", ["$.Last-Event-ID: not a date-time"])
        if query.get("since") and since is None:
            raise Refused(422, "Request validation failed.", ["$.since: not a date-time"])
        if last is not None:
            backlog = [(t, e) for t, e in stamped if t > last]  # exclusive (runpodctl, verified against prod)
        elif since is not None:
            backlog = [(t, e) for t, e in stamped if t >= since]  # since overrides tail
        else:
            backlog = stamped[-tail:] if tail else []
        sent = max([t for t, _ in stamped], default=0.0)
        first = [_sse(t, e) for t, e in backlog]
        stream_headers = (
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
            *RATE_LIMIT_HEADERS,
        )
        return Response(200, None, stream_headers, self._follow(endpoint.id, worker.id, first, sent, source))

    def _follow(
        self, endpoint_id: str, worker_id: str, first: list[bytes], sent: float, source: str | None
    ) -> Iterator[bytes]:
        yield from first
        idle_since = beat = time.monotonic()
        while time.monotonic() - idle_since < self.stream_idle:
            if time.monotonic() - beat >= KEEP_ALIVE:
                # An SSE comment: readers skip it, and a reader that left is noticed at the write.
                beat = time.monotonic()
                yield b": keep-alive\n\n"
            with self.state.lock:
                self.state.changed.wait(0.25)
                self.state.advance()
                endpoint = self.state.endpoints.get(endpoint_id)
                worker = next((w for w in endpoint.workers if w.id == worker_id), None) if endpoint else None
                if endpoint is None or worker is None or self.fleet._stopping.is_set():
                    return
                entries = worker_log(self.state, endpoint, worker, self.placement(endpoint, worker))
                stamped = _stamped(entries, self._epoch)
                fresh = [_sse(t, e) for t, e in stamped if t > sent and (source is None or e.source == source)]
                sent = max([sent, *(t for t, _ in stamped)])
            if fresh:
                idle_since = time.monotonic()
                yield from fresh
