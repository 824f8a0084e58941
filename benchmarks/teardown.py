"""`rpdeploy destroy` against RunPod's template deletion delay: how long after RunPod lets the
template go does the delete finish, and how many times is RunPod asked?

    python benchmarks/teardown.py [--delays 0,1,3,10,30]

RunPod keeps a template "in use" for up to 2 minutes after its endpoint is deleted; rpdeploy
retries after 1, 2, 4, then every 5 s. For each delay the local emulator is
set to, a method-1 endpoint is created and deleted through rpdeploy's own core
(``rpdeploy.deploy.teardown.delete_deployment``) over real HTTP. Printed per delay: the wall time of
the delete, the time spent past the delay (the cost of polling instead of knowing), and the
deleteTemplate requests sent. Needs no other service.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rpdeploy.config import load_config
from rpdeploy.deploy.teardown import delete_deployment
from rpdeploy.emulator import Emulator
from rpdeploy.runpod.deployment import connect, ensure_endpoint

KEY = "rpa_BENCH_emulator_key_0123456789"


def one(delay: float) -> tuple[float, float, int]:
    """(seconds the delete took, seconds past the delay, deleteTemplate requests)."""
    with (
        tempfile.TemporaryDirectory(prefix="rpdeploy-bench-") as tmp,
        Emulator(KEY, template_delete_delay=delay) as emu,
    ):
        path = Path(tmp) / "deploy.yaml"
        document = {
            "method": "worker-vllm",
            "model": {"name": "Qwen/Qwen2.5-7B-Instruct"},
            "endpoint": {"name": "bench-teardown", "gpu": "L4", "workers_max": 0},
        }
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        config = load_config(path)
        environ = {**os.environ, **emu.env()}
        with connect(config, environ) as cp:
            ensure_endpoint(cp, config, image=None, environ=environ)
            emu.requests.clear()
            started = time.perf_counter()
            delete_deployment(cp, config, wait=600)
            seconds = time.perf_counter() - started
        sent = len(emu.requests.graphql("DeleteTemplate"))
        assert emu.state.snapshot()["templates"] == []
    return seconds, max(0.0, seconds - delay), sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delays", default="0,1,3,10,30", help="comma-separated emulator delays in seconds")
    args = parser.parse_args()
    print(f"{'delay':>7}  {'delete took':>11}  {'past delay':>10}  {'deleteTemplate sent':>19}")
    for delay in (float(d) for d in args.delays.split(",")):
        seconds, late, sent = one(delay)
        print(f"{delay:>6.1f}s  {seconds:>10.2f}s  {late:>9.2f}s  {sent:>19}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
