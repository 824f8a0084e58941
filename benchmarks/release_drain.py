"""After an update, how long the endpoint check takes to hear from the new release, and what it costs.

    python benchmarks/release_drain.py                   # new-release cold starts of 2, 5, 15, 30 s
    python benchmarks/release_drain.py --cold-starts 5 60
    python benchmarks/release_drain.py --api rest        # the update and the rollout over REST v2

Each case is one emulator over real HTTP (rolling releases as in rpdeploy/emulator/rolling.py):
an endpoint of method 2 (our handler) whose release A has a warm worker, then an update (of the
template over GraphQL, of the endpoint's container over REST v2) to release B whose workers
take ``cold_start`` seconds to start. The check (``run_smoke`` with a ``ReleaseCheck`` for B, the
code `rpdeploy deploy` and `smoke-test` run; the rollout read over the same API) is started right
after the update: the warm worker of A answers first and is refused until B's worker is ready.

Per case it prints the drain the check reported (from its start to B's first answer), how much
later than B's worker became ready the check noticed it ("late"), the answers of A it refused,
and the jobs it sent. The retry pause doubles from 1 s up to 8 s, so "late" stays under the
pause in force and the job count grows with the logarithm of the drain, then linearly at one
job per 8 s. Cases run in parallel.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rpdeploy.deploy.smoke import ReleaseCheck, SmokeSettings, run_smoke
from rpdeploy.emulator import Emulator
from rpdeploy.methods import Method
from rpdeploy.preflight.gpus import GpuSelection
from rpdeploy.runpod.controlplane import ControlPlane, GraphQLControlPlane
from rpdeploy.runpod.invoke import InvokeClient
from rpdeploy.runpod.models import EndpointSpec, EnvVar, TemplateSpec
from rpdeploy.runpod.rest import RestControlPlane
from rpdeploy.secrets import Secret

KEY = "rpa_BENCHMARK_release_drain_0123456789"
OLD, NEW = "rel-00000000000a-aaaaaaaaaaaa", "rel-00000000000b-bbbbbbbbbbbb"
DEFAULT_COLD_STARTS = (2.0, 5.0, 15.0, 30.0)


@dataclass
class Outcome:
    cold_start: float
    passed: bool
    drain: float | None
    late: float
    refused: int
    jobs: int


def _template(release: str) -> TemplateSpec:
    image = "registry.example/bench@sha256:" + release[4:16].ljust(64, "0")
    return TemplateSpec(name="drain-template", image=image, env=(EnvVar("RPDEPLOY_RELEASE", release),),
                        container_disk_gb=20)  # fmt: skip


L4 = GpuSelection(frozenset({"AMPERE_24"}), frozenset({"NVIDIA RTX A5000", "NVIDIA GeForce RTX 3090"}))


def _endpoint(template_id: str, container: TemplateSpec | None) -> EndpointSpec:
    return EndpointSpec(
        name="drain-endpoint", template_id=template_id, gpus=L4, gpu_count=1, workers_min=1, workers_max=2,
        idle_timeout=60, scaler_type="QUEUE_DELAY", scaler_value=4, flashboot=True, execution_timeout_ms=600_000,
        allowed_cuda_versions=(), locations=(), container=container,
    )  # fmt: skip


def measure(cold_start: float, api: str = "graphql") -> Outcome:
    with Emulator(KEY, cold_start=0.1, execution_time=0.05, runsync_wait=5.0) as emu:
        secret = Secret(KEY, "benchmark")
        cp: ControlPlane = (RestControlPlane if api == "rest" else GraphQLControlPlane)(secret, api_url=emu.api_url)
        with cp:
            if cp.container_on_endpoint:
                endpoint = cp.create_endpoint(_endpoint("", _template(OLD)))
            else:
                template = cp.save_template(_template(OLD))
                endpoint = cp.create_endpoint(_endpoint(template.id, None))
            time.sleep(0.3)  # release A's worker is warm
            emu.faults.cold_start(cold_start, endpoint_id=endpoint.id)
            if cp.container_on_endpoint:
                cp.update_endpoint(cp.get_endpoint(endpoint.id) or endpoint, _endpoint("", _template(NEW)))
            else:
                cp.save_template(_template(NEW), template=template)
            with emu.state.lock:
                ready_at = max(w.ready_at for w in emu.state.endpoints[endpoint.id].workers)
            check = ReleaseCheck(NEW, rollout=lambda: cp.rollout(endpoint.id))
            with InvokeClient(emu.invoke_url(endpoint.id), api_key=secret) as client:
                result = run_smoke(
                    client,
                    Method.CUSTOM_HANDLER,
                    SmokeSettings(prompt="benchmark", max_tokens=8, timeout=cold_start * 4 + 30),
                    model="",
                    target=endpoint.id,
                    release=check,
                )
            noticed = time.monotonic()
        jobs = len([r for r in emu.requests if r.path.endswith("/runsync")])
    report = result.release
    assert report is not None
    accepted = result.checks[0]
    late = noticed - ready_at - sum(c.seconds for c in result.checks[1:]) - accepted.seconds
    return Outcome(cold_start, result.passed, report.drain_seconds, max(late, 0.0), report.old_answers, jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-starts", type=float, nargs="+", default=list(DEFAULT_COLD_STARTS))
    parser.add_argument("--api", choices=("graphql", "rest"), default="graphql", help="the control-plane API")
    args = parser.parse_args()
    outcomes: dict[float, Outcome] = {}

    def run(cold: float) -> None:
        outcomes[cold] = measure(cold, args.api)

    threads = [threading.Thread(target=run, args=(cold,)) for cold in args.cold_starts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"control plane: {args.api}")
    print(f"{'cold start':>10}  {'passed':<6} {'drain':>7}  {'late':>6}  {'refused':>7}  {'jobs':>4}")
    for cold in args.cold_starts:
        o = outcomes[cold]
        drain = f"{o.drain:.2f}s" if o.drain is not None else "-"
        print(f"{cold:>9g}s  {o.passed!s:<6} {drain:>7}  {o.late:>5.2f}s  {o.refused:>7}  {o.jobs:>4}")


if __name__ == "__main__":
    main()
