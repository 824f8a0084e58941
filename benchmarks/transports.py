"""GraphQL and REST v2 side by side: a method-1 deploy, a no-change re-run, an update, a destroy.

    python benchmarks/transports.py [--runs 5]

RunPod is a local emulator in this process, over HTTP, with cold starts and jobs at 0 s (the
emulated waits are not rpdeploy's time). For each API (``runpod.api``) and each step it prints
the median wall time of ``rpdeploy.deploy.stages.run_deploy`` (or the delete) and the control-plane
requests it sent, split into reads and mutations, GraphQL and REST. No targets: numbers only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rpdeploy.config import load_config
from rpdeploy.deploy.stages import DeployOptions, run_deploy
from rpdeploy.deploy.teardown import delete_deployment
from rpdeploy.emulator import Emulator
from rpdeploy.output import NullReporter

ROOT = Path(__file__).resolve().parent.parent
WRITES = {"POST", "PATCH", "DELETE"}


def counts(emulator: Emulator) -> tuple[int, int, int, int]:
    """(GraphQL reads, GraphQL mutations, REST reads, REST mutations) received."""
    gql_reads = gql_writes = rest_reads = rest_writes = 0
    for request in emulator.requests:
        if request.path == "/graphql":
            body = request.body if isinstance(request.body, dict) else {}
            if str(body.get("query", "")).lstrip().startswith("mutation"):
                gql_writes += 1
            else:
                gql_reads += 1
        elif request.operation is not None:  # a REST v2 control-plane call
            if request.method in WRITES:
                rest_writes += 1
            else:
                rest_reads += 1
    return gql_reads, gql_writes, rest_reads, rest_writes


def one_run(api: str) -> dict[str, tuple[float, tuple[int, int, int, int]]]:
    results: dict[str, tuple[float, tuple[int, int, int, int]]] = {}
    folder = Path(tempfile.mkdtemp(prefix="rpdeploy-transports-"))
    try:
        shutil.copy(ROOT / "deploy.yaml", folder / "deploy.yaml")
        with Emulator("rpa_BENCH_key_0123456789", cold_start=0.0, execution_time=0.0, runsync_wait=5.0) as emu:
            emu.faults.template_delete_delay(0)
            environ = {**os.environ, **emu.env(), "RPDEPLOY_RUNPOD_API": api}
            options = DeployOptions(skip_fit_check=True)

            def step(name: str, action: object) -> None:
                emu.requests.clear()
                started = time.perf_counter()
                action()  # type: ignore[operator]
                results[name] = (time.perf_counter() - started, counts(emu))

            config = load_config(folder / "deploy.yaml")
            step("first deploy", lambda: run_deploy(config, options, reporter=NullReporter(), environ=environ))
            step("no-change re-run", lambda: run_deploy(config, options, reporter=NullReporter(), environ=environ))
            text = (folder / "deploy.yaml").read_text().replace("workers_max: 2", "workers_max: 3")
            (folder / "deploy.yaml").write_text(text)
            config = load_config(folder / "deploy.yaml")
            step("update (workers_max)", lambda: run_deploy(config, options, reporter=NullReporter(), environ=environ))

            def destroy() -> None:
                from rpdeploy.runpod.deployment import connect

                with connect(config, environ) as cp:
                    delete_deployment(cp, config, wait=30, sleep=lambda s: time.sleep(min(s, 0.05)))

            step("destroy", destroy)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{'api':<8} {'step':<22} {'median s':>9}  {'gql reads':>9} {'gql muts':>8} {'rest reads':>10} {'rest muts':>9}"
    )
    for api in ("graphql", "rest"):
        runs = [one_run(api) for _ in range(args.runs)]
        for name in runs[0]:
            seconds = statistics.median(run[name][0] for run in runs)
            gr, gw, rr, rw = runs[-1][name][1]
            print(f"{api:<8} {name:<22} {seconds:>9.3f}  {gr:>9} {gw:>8} {rr:>10} {rw:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
