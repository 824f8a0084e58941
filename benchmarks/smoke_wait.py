"""How quickly the smoke test notices a job that ends after a delay, and how many requests it makes meanwhile.

    python benchmarks/smoke_wait.py                      # cold starts of 2, 5, 20, 60 s and polling cases
    python benchmarks/smoke_wait.py --delays 2 5 --runsync-wait 90

Each case is one emulator (over real HTTP, like RunPod's invoke API) whose only worker takes
``delay`` seconds to cold-start and 0.05 s to run the job; the smoke test (``run_smoke``, the
code `rpdeploy smoke-test` and `deploy` run) then waits for it. The emulator holds ``/runsync``
for ``--runsync-wait`` seconds when the client does not ask for less (RunPod: ~90 s), so delays
longer than that are noticed by polling ``/status``. Cases run in parallel (one emulator and
one thread each), so the whole run takes about as long as the longest delay.

Per case it prints when the job completed (on the emulator), how long after that the smoke
test had the answer ("notice"), the HTTP requests sent from submitting the job to noticing
its end, and those requests per second averaged over that wait.
Targets: notice under 0.5 s, under 1 request/s on average.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from rpdeploy.deploy.smoke import SmokeSettings, run_smoke
from rpdeploy.emulator import Emulator
from rpdeploy.methods import Method
from rpdeploy.runpod.controlplane import GraphQLControlPlane
from rpdeploy.runpod.invoke import TERMINAL, InvokeClient
from rpdeploy.runpod.models import EndpointSpec, TemplateSpec
from rpdeploy.secrets import Secret

KEY = "rpa_BENCHMARK_smoke_wait_0123456789"
EXECUTION = 0.05
DEFAULT_DELAYS = (2.0, 5.0, 20.0, 60.0, 100.0, 120.0, 150.0)


class _LoggingTransport(httpx.HTTPTransport):
    """Counts every request the invoke client sends (health watcher included), with its time."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[float, str, str]] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.sent.append((time.monotonic(), request.method, request.url.path))
        return super().handle_request(request)


class _NoticingClient(InvokeClient):
    """Remembers when a terminal job body first arrived (the moment the smoke test knows)."""

    noticed: float | None = None

    def _seen(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.noticed is None and str(body.get("status")) in TERMINAL:
            self.noticed = time.monotonic()
        return body

    def runsync(self, job_input: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._seen(super().runsync(job_input, **kwargs))

    def status(self, job_id: str) -> dict[str, Any]:
        return self._seen(super().status(job_id))


@dataclass
class Outcome:
    delay: float
    passed: bool
    notice: float
    requests: int
    waited: float
    kinds: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.waited if self.waited > 0 else float("nan")


def _endpoint(emu: Emulator) -> str:
    with GraphQLControlPlane(Secret(KEY, "benchmark"), api_url=emu.api_url) as cp:
        template = cp.save_template(
            TemplateSpec(name="bench-template", image="registry.example/bench@sha256:" + "0" * 64, env=(),
                         container_disk_gb=20)
        )  # fmt: skip
        endpoint = cp.create_endpoint(
            EndpointSpec(
                name="bench-endpoint", template_id=template.id, gpu_ids="AMPERE_24", gpu_count=1, workers_min=0,
                workers_max=1, idle_timeout=5, scaler_type="QUEUE_DELAY", scaler_value=4, flashboot=True,
                execution_timeout_ms=600_000, allowed_cuda_versions="", locations="",
            )
        )  # fmt: skip
    return endpoint.id


def measure(delay: float, runsync_wait: float, timeout: float) -> Outcome:
    with Emulator(KEY, cold_start=delay, execution_time=EXECUTION, runsync_wait=runsync_wait,
                  sync_retention=3600) as emu:  # fmt: skip
        endpoint_id = _endpoint(emu)
        transport = _LoggingTransport()
        client = _NoticingClient(emu.invoke_url(endpoint_id), api_key=Secret(KEY, "benchmark"), transport=transport)
        submitted = time.monotonic()
        with client:
            result = run_smoke(
                client,
                Method.CUSTOM_HANDLER,
                SmokeSettings(prompt="benchmark", max_tokens=8, timeout=timeout),
                model="",
                target=endpoint_id,
            )
        job_id = result.checks[0].job_id
        with emu.state.lock:
            job = emu.state.jobs.get(job_id or "")
            finished = job.finished_at if job is not None else None
    noticed = client.noticed
    if finished is None or noticed is None:
        return Outcome(delay, False, float("nan"), len(transport.sent), float("nan"), {})
    during = [(t, m, p) for t, m, p in transport.sent if t <= noticed]
    kinds: dict[str, int] = {}
    for _, method, path in during:
        route = path.split("/")[3] if path.count("/") >= 3 else path
        kinds[f"{method} /{route}"] = kinds.get(f"{method} /{route}", 0) + 1
    return Outcome(delay, result.passed, noticed - finished, len(during), noticed - submitted, kinds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delays", type=float, nargs="+", default=list(DEFAULT_DELAYS), help="cold starts, seconds")
    parser.add_argument("--runsync-wait", type=float, default=90.0, help="the emulator's /runsync hold (RunPod: 90)")
    parser.add_argument("--timeout", type=float, default=600.0, help="the smoke test's --timeout")
    args = parser.parse_args()

    outcomes: dict[float, Outcome] = {}

    def run(delay: float) -> None:
        outcomes[delay] = measure(delay, args.runsync_wait, args.timeout)

    threads = [threading.Thread(target=run, args=(d,)) for d in args.delays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    print(f"/runsync hold {args.runsync_wait:g}s, job execution {EXECUTION}s, smoke timeout {args.timeout:g}s")
    print(f"{'delay':>7}  {'path':<8} {'passed':<6} {'notice':>8}  {'requests':>8}  {'req/s':>6}  breakdown")
    for delay in args.delays:
        o = outcomes[delay]
        path = "runsync" if delay < args.runsync_wait else "polling"
        breakdown = ", ".join(f"{k} {v}" for k, v in sorted(o.kinds.items()))
        print(
            f"{delay:>6g}s  {path:<8} {o.passed!s:<6} {o.notice:>7.3f}s  {o.requests:>8}  {o.rate:>6.2f}  {breakdown}"
        )
    polled = [outcomes[d] for d in args.delays if d >= args.runsync_wait and outcomes[d].passed]
    if polled:
        print(
            f"polling cases: notice mean {statistics.mean(o.notice for o in polled):.3f}s "
            f"max {max(o.notice for o in polled):.3f}s; req/s mean {statistics.mean(o.rate for o in polled):.2f} "
            f"max {max(o.rate for o in polled):.2f}"
        )


if __name__ == "__main__":
    main()
