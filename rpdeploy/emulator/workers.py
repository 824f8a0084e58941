"""The simulated serverless fleet: queues, workers scaling up and down, jobs running.

The fleet is a small discrete-event simulation over the emulator's clock. Events are a
worker finishing its cold start, a job finishing (or hitting its execution timeout), and an
idle worker above ``workersMin`` reaching ``idleTimeout``. :meth:`Fleet.advance` replays
every event up to "now" in time order, so the state is exact whenever it is read, however
late the reader comes; every request advances it first. A background thread advances it at
each event time too, so that waiting requests wake up promptly and webhooks go out.

Scaling is deliberately simple: when queued jobs outnumber the free slots of the workers
that exist or are starting, new workers start, up to ``workersMax``; ``workersMin`` workers
are kept running. RunPod's scaler (``QUEUE_DELAY`` seconds, ``REQUEST_COUNT``) is not
modelled: in the emulator both scale at once. ``workersMax == 0`` (or the ``no_capacity``
switch) means no worker ever starts, so jobs stay ``IN_QUEUE``, as on RunPod when no GPU is
free.

All methods expect ``state.lock`` to be held unless they say otherwise.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rpdeploy.emulator import coldstart, ids, model
from rpdeploy.emulator import faults as fault_names
from rpdeploy.emulator.faults import Faults
from rpdeploy.emulator.state import EmulatorState, Endpoint, Job, JobStatus, Worker

DEFAULT_TTL = 24 * 3600.0  # policy.ttl default: 24 h
DEFAULT_EXECUTION_TIMEOUT_MS = 600_000  # endpoint default: 600 s


@dataclass(frozen=True)
class FleetConfig:
    cold_start: float = 0.5  # seconds a new worker initializes (image pull and engine start)
    #: Scale of the seconds a worker's weights take on top (emulator/coldstart.py): 0 leaves
    #: them out, 1 is RunPod's speed as rpdeploy estimates it.
    weights_scale: float = 0.0
    execution_time: float = 0.1  # seconds a job runs
    concurrency: int = 4  # jobs one worker runs at once
    run_retention: float = 30 * 60.0  # a finished /run job answers /status this long
    sync_retention: float = 60.0  # ... and a /runsync job this long
    webhook_attempts: int = 3  # one delivery and two retries
    webhook_retry_interval: float = 10.0


class Fleet:
    def __init__(self, state: EmulatorState, faults: Faults, config: FleetConfig) -> None:
        self.state = state
        self.faults = faults
        self.config = config
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._deliveries: list[threading.Thread] = []
        state.advance = self.advance_now

    # --- background thread ----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="rpdeploy-emulator-fleet", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the scheduler and abandon pending webhook retries (lock must NOT be held)."""
        self._stopping.set()
        with self.state.lock:
            self.state.changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for delivery in self._deliveries:
            delivery.join(timeout)
        self._deliveries.clear()

    def _run(self) -> None:
        with self.state.lock:
            while not self._stopping.is_set():
                now = self.state.clock()
                self.advance(now)
                upcoming = self._next_event()
                # Wake at the next event, or now and then to notice stop() and expiries.
                wait = 1.0 if upcoming is None else min(1.0, max(upcoming - now, 0.001))
                self.state.changed.wait(wait)

    # --- the simulation -------------------------------------------------------------------

    def advance_now(self) -> None:
        self.advance(self.state.clock())

    def advance(self, now: float) -> None:
        """Replay every event up to ``now``, in time order."""
        with self.state.lock:
            changed = False
            while True:
                moment = self._next_event()
                if moment is None or moment > now:
                    break
                self._process(moment)
                self._settle(moment)
                changed = True
            self._settle(now)
            changed = self._expire(now) or changed
            if changed:
                self.state.changed.notify_all()

    def _next_event(self) -> float | None:
        times: list[float] = []
        for endpoint in self.state.endpoints.values():
            for worker in endpoint.workers:
                if not worker.ready:
                    times.append(worker.ready_at)
                elif not worker.jobs and worker.idle_since is not None and len(endpoint.workers) > endpoint.workers_min:
                    times.append(worker.idle_since + endpoint.idle_timeout)
                for job_id in worker.jobs:
                    end = self.state.jobs[job_id].end_time()
                    if end is not None:
                        times.append(end)
        return min(times) if times else None

    def _process(self, moment: float) -> None:
        for endpoint in self.state.endpoints.values():
            for worker in list(endpoint.workers):
                if not worker.ready and worker.ready_at <= moment:
                    worker.ready = True
                    worker.idle_since = worker.ready_at
                for job_id in sorted(worker.jobs):
                    job = self.state.jobs[job_id]
                    end = job.end_time()
                    if end is not None and end <= moment:
                        self._finish(endpoint, worker, job, end)
            # Idle workers above the minimum stop, those idle longest first.
            idle = sorted(
                (w for w in endpoint.workers if w.ready and not w.jobs and w.idle_since is not None),
                key=lambda w: w.idle_since or 0.0,
            )
            for worker in idle:
                assert worker.idle_since is not None
                if len(endpoint.workers) <= endpoint.workers_min:
                    break
                if worker.idle_since + endpoint.idle_timeout <= moment:
                    endpoint.workers.remove(worker)

    def _settle(self, now: float) -> None:
        """Apply the scaling rules at ``now``: retire extra workers, start jobs, start workers."""
        for endpoint in self.state.endpoints.values():
            self._retire_extra(endpoint, now)
            self._assign(endpoint, now)
            self._scale_up(endpoint, now)

    def _retire_extra(self, endpoint: Endpoint, now: float) -> None:
        while len(endpoint.workers) > endpoint.workers_max:
            spare = [w for w in endpoint.workers if not w.jobs]
            if not spare:
                return  # busy workers stop once their jobs are done
            endpoint.workers.remove(spare[-1])

    def _assign(self, endpoint: Endpoint, now: float) -> None:
        while endpoint.queue:
            worker = next((w for w in endpoint.workers if w.ready and w.free_slots() > 0), None)
            if worker is None:
                return
            job = self.state.jobs[endpoint.queue.popleft()]
            self._start(endpoint, worker, job, now)

    def _scale_up(self, endpoint: Endpoint, now: float) -> None:
        if self.faults.peek(fault_names.NO_CAPACITY, endpoint_id=endpoint.id) is not None:
            return
        queued = len(endpoint.queue)
        coming = sum(w.free_slots() for w in endpoint.workers if not w.ready)
        while len(endpoint.workers) < endpoint.workers_max and (
            len(endpoint.workers) < endpoint.workers_min or queued > coming
        ):
            worker = self._new_worker(endpoint, now)
            endpoint.workers.append(worker)
            coming += worker.concurrency

    def _new_worker(self, endpoint: Endpoint, now: float) -> Worker:
        start = coldstart.worker_start(self.state, endpoint, now, self.config.weights_scale)
        cold = self.faults.take(fault_names.COLD_START, endpoint_id=endpoint.id)
        if cold is not None and cold.seconds is not None:
            cold_start = cold.seconds
        else:
            cold_start = self.config.cold_start + start.weights_seconds
        limit = self.faults.peek(fault_names.CONCURRENCY, endpoint_id=endpoint.id)
        concurrency = limit.value if limit is not None and limit.value else self.config.concurrency
        return Worker(
            id=ids.worker_id(),
            ready_at=now + cold_start,
            concurrency=concurrency,
            env=start.env,
            weights=start.weights,
            start_error=start.error,
            version=endpoint.version,
            started_at=now,
        )

    def _start(self, endpoint: Endpoint, worker: Worker, job: Job, now: float) -> None:
        job.status = JobStatus.IN_PROGRESS
        job.started_at = now
        job.worker_id = worker.id
        worker.jobs.add(job.id)
        timing = self.faults.take(fault_names.EXECUTION_TIME, endpoint_id=endpoint.id)
        job.run_time = (
            timing.seconds if timing is not None and timing.seconds is not None else self.config.execution_time
        )
        job.run_until = None if job.fault == fault_names.JOB_HANG else now + job.run_time
        job.result = self._compute(endpoint, job, worker)

    def _compute(self, endpoint: Endpoint, job: Job, worker: Worker | None = None) -> model.HandlerResult | None:
        if job.fault == fault_names.JOB_HANG:
            return None
        if worker is not None and worker.start_error is not None:
            return model.HandlerResult(error=worker.start_error)
        message = job.fault_message or fault_names.WORKER_FAILURE
        if job.fault == fault_names.JOB_FAIL:
            return model.HandlerResult(error=message)
        if job.fault == fault_names.JOB_ERROR_OUTPUT:
            output = model.worker_error_output(message)
            return model.HandlerResult(output=output, chunks=(output,), http_status=500)
        template = self.state.templates.get(endpoint.template_id)
        # The env the worker started with (secrets substituted), as on RunPod.
        env = worker.env if worker is not None else template.env_dict() if template else {}
        kind = model.worker_kind(template.image_name if template else "")
        try:
            return model.run_job(kind, model.served_model_name(kind, env), job.input, env)
        except Exception as exc:  # a crash in the stand-in worker fails its job, as on RunPod
            return model.HandlerResult(error=f"emulated worker crashed: {exc!r}")

    def _finish(self, endpoint: Endpoint, worker: Worker, job: Job, moment: float) -> None:
        worker.jobs.discard(job.id)
        if not worker.jobs:
            worker.idle_since = moment
        job.finished_at = moment
        timed_out = job.run_until is None or (
            job.execution_timeout is not None
            and job.started_at is not None
            and job.started_at + job.execution_timeout < job.run_until
        )
        if timed_out:
            job.status = JobStatus.TIMED_OUT
            endpoint.failed += 1
        elif job.result is not None and job.result.error is not None:
            job.status = JobStatus.FAILED
            job.error = job.result.error
            endpoint.failed += 1
        else:
            job.status = JobStatus.COMPLETED
            job.output = job.result.output if job.result is not None else None
            endpoint.completed += 1
        self._deliver_webhook(job)

    def _expire(self, now: float) -> bool:
        expired = []
        for job in self.state.jobs.values():
            if job.status is JobStatus.IN_QUEUE and job.queued_at + job.ttl <= now:
                expired.append(job)
            elif job.status.terminal and job.finished_at is not None:
                keep = self.config.sync_retention if job.sync else self.config.run_retention
                if job.finished_at + keep <= now:
                    expired.append(job)
        for job in expired:
            endpoint = self.state.endpoints.get(job.endpoint_id)
            if endpoint is not None and job.id in endpoint.queue:
                endpoint.queue.remove(job.id)
            del self.state.jobs[job.id]
        return bool(expired)

    # --- operations the invoke API calls --------------------------------------------------

    def submit(
        self,
        endpoint: Endpoint,
        job_input: dict[str, Any],
        *,
        sync: bool,
        execution_timeout_ms: int | None = None,
        ttl_ms: int | None = None,
        webhook: str | None = None,
    ) -> Job:
        now = self.state.clock()
        self.advance(now)
        timeout_ms = execution_timeout_ms if execution_timeout_ms is not None else endpoint.execution_timeout_ms
        job = Job(
            id=ids.job_id(sync=sync),
            endpoint_id=endpoint.id,
            input=job_input,
            sync=sync,
            queued_at=now,
            ttl=ttl_ms / 1000 if ttl_ms is not None else DEFAULT_TTL,
            execution_timeout=timeout_ms / 1000 if timeout_ms else None,
            webhook=webhook,
        )
        self._decide_fault(endpoint, job)
        self.state.jobs[job.id] = job
        endpoint.queue.append(job.id)
        self._settle(now)
        self.state.changed.notify_all()
        return job

    def _decide_fault(self, endpoint: Endpoint, job: Job) -> None:
        job.fault = job.fault_message = None
        for name in (fault_names.JOB_FAIL, fault_names.JOB_ERROR_OUTPUT, fault_names.JOB_HANG):
            fault = self.faults.take(name, endpoint_id=endpoint.id)
            if fault is not None:
                job.fault, job.fault_message = name, fault.message
                return

    def cancel(self, job: Job) -> None:
        now = self.state.clock()
        self.advance(now)
        endpoint = self.state.endpoints.get(job.endpoint_id)
        if job.status is JobStatus.IN_QUEUE:
            if endpoint is not None and job.id in endpoint.queue:
                endpoint.queue.remove(job.id)
        elif job.status is JobStatus.IN_PROGRESS and endpoint is not None:
            for worker in endpoint.workers:
                if job.id in worker.jobs:
                    worker.jobs.discard(job.id)
                    if not worker.jobs:
                        worker.idle_since = now
        else:
            return
        job.status = JobStatus.CANCELLED
        job.finished_at = now
        self._settle(now)
        self.state.changed.notify_all()
        self._deliver_webhook(job)

    def retry(self, endpoint: Endpoint, job: Job) -> bool:
        """Queue a FAILED or TIMED_OUT job again (same id, same input); False otherwise."""
        now = self.state.clock()
        self.advance(now)
        if job.status not in (JobStatus.FAILED, JobStatus.TIMED_OUT):
            return False
        job.status = JobStatus.IN_QUEUE
        job.queued_at = now
        job.started_at = job.finished_at = job.run_until = None
        job.worker_id = job.error = job.output = job.result = None
        job.stream_cursor = 0
        job.retries += 1
        endpoint.retried += 1
        self._decide_fault(endpoint, job)
        endpoint.queue.append(job.id)
        self._settle(now)
        self.state.changed.notify_all()
        return True

    def purge(self, endpoint: Endpoint) -> int:
        self.advance_now()
        removed = list(endpoint.queue)
        endpoint.queue.clear()
        for job_id in removed:
            self.state.jobs.pop(job_id, None)
        self.state.changed.notify_all()
        return len(removed)

    def health(self, endpoint: Endpoint) -> dict[str, Any]:
        now = self.state.clock()
        self.advance(now)
        statuses = [worker.status for worker in endpoint.workers]
        initializing, running, idle = (statuses.count(s) for s in ("initializing", "running", "idle"))
        in_progress = sum(len(w.jobs) for w in endpoint.workers)
        return {
            "jobs": {
                "completed": endpoint.completed,
                "failed": endpoint.failed,
                "inProgress": in_progress,
                "inQueue": len(endpoint.queue),
                "retried": endpoint.retried,
            },
            "workers": {
                "idle": idle,
                "initializing": initializing,
                "ready": idle + running,
                "running": running,
                "throttled": 0,
                "unhealthy": 0,
            },
        }

    def take_stream(self, job: Job) -> list[Any]:
        """Chunks the job produced since the last call (what one ``/stream`` poll returns)."""
        self.advance_now()
        produced = job.chunks_produced(self.state.clock())
        if job.result is None or produced <= job.stream_cursor:
            return []
        chunks = list(job.result.chunks[job.stream_cursor : produced])
        job.stream_cursor = produced
        return chunks

    def wait(self, until: Callable[[], bool], timeout: float) -> bool:
        """Block (lock held, released while waiting) until ``until()`` or ``timeout`` seconds."""
        deadline = self.state.clock() + timeout
        while True:
            now = self.state.clock()
            self.advance(now)
            if until():
                return True
            remaining = deadline - now
            if remaining <= 0 or self._stopping.is_set():
                return False
            upcoming = self._next_event()
            pause = remaining if upcoming is None else min(remaining, max(upcoming - now, 0.001))
            self.state.changed.wait(pause)

    def endpoint_changed(self, endpoint: Endpoint) -> None:
        """Called after an endpoint is created or updated: keep workersMin running."""
        self.advance_now()
        self._settle(self.state.clock())
        self.state.changed.notify_all()

    def endpoint_deleted(self, endpoint: Endpoint) -> None:
        for job_id in [job.id for job in self.state.jobs.values() if job.endpoint_id == endpoint.id]:
            del self.state.jobs[job_id]
        endpoint.workers.clear()
        endpoint.queue.clear()
        self.state.changed.notify_all()

    # --- webhooks -------------------------------------------------------------------------

    def _deliver_webhook(self, job: Job) -> None:
        if not job.webhook:
            return
        payload = json.dumps(job.body()).encode()
        delivery = threading.Thread(
            target=self._post_webhook,
            args=(job.webhook, payload),
            name="rpdeploy-emulator-webhook",
            daemon=True,
        )
        self._deliveries = [d for d in self._deliveries if d.is_alive()]
        self._deliveries.append(delivery)
        delivery.start()

    def _post_webhook(self, url: str, payload: bytes) -> None:
        for attempt in range(self.config.webhook_attempts):
            if attempt and self._stopping.wait(self.config.webhook_retry_interval):
                return
            request = urllib.request.Request(
                url, data=payload, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError, ValueError):
                continue
