"""The serverless invoke API: ``/v2/{endpoint_id}/run|runsync|status|stream|cancel|...``.

On RunPod this lives on ``api.runpod.ai``; the emulator serves it on the same port as the
control plane, under ``/v2`` (what ``RUNPOD_ENDPOINT_BASE_URL`` points at). Answers follow
RunPod's docs (reference §5): ``/run`` queues and returns ``{"id", "status": "IN_QUEUE"}``;
``/runsync`` waits up to its ``wait`` and then hands back a still-running job; terminal
bodies carry ``delayTime``/``executionTime`` in ms and ``workerId``; ``/stream`` returns the
chunks produced since the previous poll. The OpenAI routes turn a request into a job
(``openai_route`` + ``openai_input``, as the platform does) and relay the worker's answer,
streaming SSE chunks as the worker yields them. Every endpoint has them: worker-vllm answers
that job, and so do rpdeploy's own workers (methods 2 and 3). How RunPod relays a FAILED job
on this route is not documented: the emulator answers with the HTTP status and body the worker
got from vLLM (or 500 and the job's error), so an OpenAI client sees vLLM's error.

Error bodies (``{"error": "..."}``) are the emulator's own: RunPod's are not documented.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from rpdeploy.emulator import faults as fault_names
from rpdeploy.emulator import model
from rpdeploy.emulator.faults import Faults
from rpdeploy.emulator.state import EmulatorState, Endpoint, Job, JobStatus
from rpdeploy.emulator.workers import Fleet

RUN_LIMIT = 10 * 1024 * 1024  # documented payload caps
RUNSYNC_LIMIT = 20 * 1024 * 1024
WAIT_RANGE_MS = (1000, 300_000)  # /runsync?wait=
EXECUTION_TIMEOUT_RANGE_MS = (5_000, 7 * 24 * 3600 * 1000)
TTL_RANGE_MS = (10_000, 7 * 24 * 3600 * 1000)


@dataclass(frozen=True)
class Response:
    """One HTTP answer: JSON ``body``, or ``stream`` of server-sent-event bytes."""

    status: int
    body: Any = None
    headers: tuple[tuple[str, str], ...] = ()
    stream: Iterator[bytes] | None = None


def error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, {"error": message}, headers)


class InvokeApi:
    def __init__(self, state: EmulatorState, fleet: Fleet, faults: Faults, *, runsync_wait: float) -> None:
        self.state = state
        self.fleet = fleet
        self.faults = faults
        self.runsync_wait = runsync_wait

    def handle(self, method: str, parts: list[str], query: dict[str, str], raw: bytes) -> Response:
        """Answer ``method /v2/<parts...>`` for a caller whose key was already checked."""
        endpoint_id, route = parts[0], parts[1:]
        with self.state.lock:
            endpoint = self.state.endpoints.get(endpoint_id)
        if endpoint is None:
            return error(404, f"endpoint {endpoint_id} not found")
        limited = self.faults.take(fault_names.INVOKE_RATE_LIMIT, endpoint_id=endpoint_id)
        if limited is not None:
            seconds = limited.retry_after if limited.retry_after is not None else 1.0
            return error(429, "Too Many Requests", (("Retry-After", _seconds_header(seconds)),))

        name = route[0] if route else ""
        handlers: dict[tuple[str, int], tuple[tuple[str, ...], Callable[[], Response]]] = {
            ("run", 1): (("POST",), lambda: self._run(endpoint, raw, sync=False, query=query)),
            ("runsync", 1): (("POST",), lambda: self._run(endpoint, raw, sync=True, query=query)),
            ("status", 2): (("GET", "POST"), lambda: self._status(endpoint, route[1])),
            ("stream", 2): (("GET", "POST"), lambda: self._stream(endpoint, route[1])),
            ("cancel", 2): (("POST",), lambda: self._cancel(endpoint, route[1])),
            ("retry", 2): (("POST",), lambda: self._retry(endpoint, route[1])),
            ("purge-queue", 1): (("POST",), lambda: self._purge(endpoint)),
            ("health", 1): (("GET",), lambda: self._health(endpoint)),
        }
        if name == "openai":
            return self._openai(endpoint, method, "/" + "/".join(route[1:]), raw)
        entry = handlers.get((name, len(route)))
        if entry is None:
            return error(404, f"no route {'/'.join(route)!r} on the invoke API")
        methods, handler = entry
        if method not in methods:
            return error(405, f"{method} not allowed on /{name}; use {' or '.join(methods)}")
        return handler()

    # --- jobs -----------------------------------------------------------------------------

    def _run(self, endpoint: Endpoint, raw: bytes, *, sync: bool, query: dict[str, str]) -> Response:
        if len(raw) > (RUNSYNC_LIMIT if sync else RUN_LIMIT):
            return error(413, "request body too large")
        try:
            request = json.loads(raw) if raw else None
        except ValueError:
            return error(400, "request body must be JSON")
        if not isinstance(request, dict) or not isinstance(request.get("input"), dict):
            return error(400, 'request body must be a JSON object with an "input" object')
        webhook = request.get("webhook")
        if webhook is not None and not isinstance(webhook, str):
            return error(400, "webhook must be a URL string")
        try:
            timeout_ms, ttl_ms = _policy(request.get("policy"))
            wait = _wait(query.get("wait"), self.runsync_wait) if sync else 0.0
        except ValueError as exc:
            return error(400, str(exc))
        with self.state.lock:
            job = self.fleet.submit(
                endpoint,
                request["input"],
                sync=sync,
                execution_timeout_ms=timeout_ms,
                ttl_ms=ttl_ms,
                webhook=webhook,
            )
            if not sync:
                return Response(200, {"id": job.id, "status": JobStatus.IN_QUEUE.value})
            self.fleet.wait(lambda: job.status.terminal or job.id not in self.state.jobs, wait)
            if job.status.terminal:
                return Response(200, job.body())
            return Response(200, {"id": job.id, "status": job.status.value})

    def _job(self, endpoint: Endpoint, job_id: str) -> Job | None:
        self.fleet.advance_now()
        job = self.state.jobs.get(job_id)
        return job if job is not None and job.endpoint_id == endpoint.id else None

    def _status(self, endpoint: Endpoint, job_id: str) -> Response:
        with self.state.lock:
            job = self._job(endpoint, job_id)
            if job is None:
                return error(404, f"job {job_id} not found")
            return Response(200, job.body())

    def _stream(self, endpoint: Endpoint, job_id: str) -> Response:
        with self.state.lock:
            job = self._job(endpoint, job_id)
            if job is None:
                return error(404, f"job {job_id} not found")
            chunks = self.fleet.take_stream(job)
            return Response(200, {"id": job.id, "status": job.status.value, "stream": [{"output": c} for c in chunks]})

    def _cancel(self, endpoint: Endpoint, job_id: str) -> Response:
        with self.state.lock:
            job = self._job(endpoint, job_id)
            if job is None:
                return error(404, f"job {job_id} not found")
            self.fleet.cancel(job)
            return Response(200, job.body())

    def _retry(self, endpoint: Endpoint, job_id: str) -> Response:
        with self.state.lock:
            job = self._job(endpoint, job_id)
            if job is None:
                return error(404, f"job {job_id} not found")
            if not self.fleet.retry(endpoint, job):
                return error(400, f"job {job_id} is {job.status.value}; only FAILED or TIMED_OUT jobs can be retried")
            # Like /run, the answer acknowledges the queueing, even if a warm worker took it already.
            return Response(200, {"id": job.id, "status": JobStatus.IN_QUEUE.value})

    def _purge(self, endpoint: Endpoint) -> Response:
        with self.state.lock:
            return Response(200, {"removed": self.fleet.purge(endpoint), "status": "completed"})

    def _health(self, endpoint: Endpoint) -> Response:
        with self.state.lock:
            return Response(200, self.fleet.health(endpoint))

    # --- OpenAI-compatible routes (worker-vllm) -------------------------------------------

    def _openai(self, endpoint: Endpoint, method: str, route: str, raw: bytes) -> Response:
        routes = {"/v1/models": "GET", "/v1/chat/completions": "POST", "/v1/completions": "POST"}
        if route not in routes:
            return error(404, f"no OpenAI route {route!r}")
        if method != routes[route]:
            return error(405, f"{method} not allowed on {route}; use {routes[route]}")
        job_input: dict[str, Any] = {"openai_route": route}
        streaming = False
        if method == "POST":
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return Response(400, _openai_error(400, "BadRequestError", "request body must be a JSON object"))
            job_input["openai_input"] = body
            streaming = body.get("stream") is True
        with self.state.lock:
            job = self.fleet.submit(endpoint, job_input, sync=True)
            if streaming:
                # Wait for the worker's first chunk: it decides between an SSE stream and JSON.
                self.fleet.wait(
                    lambda: job.status.terminal or job.chunks_produced(self.state.clock()) > 0,
                    self.runsync_wait,
                )
                if (
                    job.result is not None
                    and job.result.sse
                    and job.status
                    in (
                        JobStatus.IN_PROGRESS,
                        JobStatus.COMPLETED,
                    )
                ):
                    return Response(
                        200,
                        headers=(
                            ("Content-Type", "text/event-stream; charset=utf-8"),
                            ("Cache-Control", "no-cache"),
                        ),
                        stream=self._relay(job.id),
                    )
            else:
                self.fleet.wait(lambda: job.status.terminal, self.runsync_wait)
            return _openai_answer(job)

    def _relay(self, job_id: str) -> Iterator[bytes]:
        """Yield a streaming job's SSE chunks as the worker produces them."""
        sent = 0
        while True:
            with self.state.lock:
                progressed = self.fleet.wait(partial(self._has_news, job_id, sent), self.runsync_wait)
                job = self.state.jobs.get(job_id)
                if job is None or job.result is None:
                    return
                produced = job.chunks_produced(self.state.clock())
                chunks = [str(chunk) for chunk in job.result.chunks[sent:produced]]
                sent = produced
                finished = job.status.terminal
            for chunk in chunks:
                yield chunk.encode("utf-8")
            if (finished and not chunks) or not progressed:
                return

    def _has_news(self, job_id: str, sent: int) -> bool:
        job = self.state.jobs.get(job_id)
        return job is None or job.status.terminal or job.chunks_produced(self.state.clock()) > sent


def _openai_answer(job: Job) -> Response:
    """The HTTP answer to a non-streaming OpenAI request, from its job."""
    if job.status is JobStatus.COMPLETED:
        output = job.output
        if isinstance(output, list) and output:
            status = job.result.http_status if job.result is not None else 200
            return Response(status, output[0])
        return Response(500, output)  # a worker error object, {"error": {...}}
    if job.status is JobStatus.FAILED and job.result is not None and job.result.http_body is not None:
        return Response(job.result.http_status, job.result.http_body)
    if job.status.terminal:
        message = job.error or f"job {job.id} ended {job.status.value}"
        return Response(500, {"error": {"message": message, "type": model.WORKER_ERROR_TYPE, "code": None}})
    return Response(
        504, _openai_error(504, "Timeout", f"no answer from a worker yet (job {job.id} {job.status.value})")
    )


def _openai_error(status: int, kind: str, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


def _policy(policy: Any) -> tuple[int | None, int | None]:
    if policy is None:
        return None, None
    if not isinstance(policy, dict):
        raise ValueError("policy must be an object")
    values: list[int | None] = []
    for key, (low, high) in (("executionTimeout", EXECUTION_TIMEOUT_RANGE_MS), ("ttl", TTL_RANGE_MS)):
        value = policy.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
            raise ValueError(f"policy.{key} must be an integer number of ms between {low} and {high}")
        values.append(value)
    return values[0], values[1]


def _wait(raw: str | None, default: float) -> float:
    if raw is None:
        return default
    try:
        wait_ms = int(raw)
    except ValueError as exc:
        raise ValueError("wait must be an integer number of milliseconds") from exc
    if not WAIT_RANGE_MS[0] <= wait_ms <= WAIT_RANGE_MS[1]:
        raise ValueError(f"wait must be between {WAIT_RANGE_MS[0]} and {WAIT_RANGE_MS[1]} ms")
    return wait_ms / 1000


def _seconds_header(seconds: float) -> str:
    return str(max(0, round(seconds)))
