"""Cold start of Qwen2.5-7B-Instruct on an NVIDIA L4 by model.weights: rpdeploy's estimate and the emulator's.

    python benchmarks/cold_start.py [--scale 0.002]

For each strategy (cached, network-volume, bake, download) it prints the estimate
``rpdeploy check`` shows (rpdeploy/preflight/cost.py: image pull, weights, load and engine start, each
figure with its source) beside what rpdeploy's RunPod emulator does with the same deployment:
the endpoint and template are made by rpdeploy itself (``ensure_endpoint``, over HTTP), one job
is sent through the invoke API, and its ``delayTime`` (queue + cold start) is read back. The
emulator runs at ``--scale`` of RunPod's speed (its cold start and ``weights_scale``); its
figure is scaled back to RunPod seconds. A network volume is measured twice: the first worker
downloads the model onto it, the next one (after the first has gone idle) reads it.

Neither is a measurement of RunPod: RunPod publishes no image-pull or download speeds, and the
estimate's assumptions are listed under it. The emulator shows that the strategies rpdeploy
configures behave as estimated end to end (references, volumes, MODEL_PATH reach it and it
times the start by them); the figures are figures, not pass/fail targets.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rpdeploy.config import Config, load_config
from rpdeploy.emulator import Emulator
from rpdeploy.output import NullReporter
from rpdeploy.preflight import cost
from rpdeploy.preflight.check import check_deployment
from rpdeploy.runpod.deployment import connect, ensure_endpoint

MODEL = "Qwen/Qwen2.5-7B-Instruct"
IMAGE = "registry.example/acme/qwen-worker@sha256:" + "ab" * 32
STRATEGIES = ("cached", "network-volume", "bake", "download")


def _config(folder: Path, strategy: str, volume_id: str) -> Config:
    """The reference deployment with model.weights set (bake needs our own image: method 2)."""
    method = "custom-handler" if strategy == "bake" else "worker-vllm"
    document: dict[str, Any] = {
        "method": method,
        "model": {"name": MODEL, "max_model_len": 8192, "gpu_memory_utilization": 0.9, "weights": strategy},
        "endpoint": {"name": f"bench-{strategy}", "gpu": "L4", "workers_min": 0, "workers_max": 1, "idle_timeout": 1},
    }
    if method == "custom-handler":
        document["image"] = {"registry": "registry.example", "repository": "acme/qwen-worker"}
    if strategy == "network-volume":
        document["endpoint"]["network_volume_id"] = volume_id
    path = folder / strategy / "deploy.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_config(path)


def _delay(emulator: Emulator, endpoint_id: str) -> float:
    """Seconds one job waited for a worker (RunPod's delayTime)."""
    headers = {"Authorization": f"Bearer {emulator.api_key}"}
    with httpx.Client(base_url=emulator.endpoint_url, headers=headers, timeout=30) as client:
        job = client.post(f"/{endpoint_id}/run", json={"input": {"prompt": "hi"}}).json()["id"]
        while True:
            status = client.get(f"/{endpoint_id}/status/{job}").json()
            if status["status"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"):
                assert status["status"] == "COMPLETED", status
                return float(status["delayTime"]) / 1000
            time.sleep(0.01)


def _idle(emulator: Emulator, endpoint_id: str) -> None:
    deadline = time.monotonic() + 30
    while emulator.state.snapshot()["endpoints"] and any(
        e["id"] == endpoint_id and e["workers"] for e in emulator.state.snapshot()["endpoints"]
    ):
        assert time.monotonic() < deadline, "the worker never went idle"
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.002, help="emulator speed as a share of RunPod's")
    args = parser.parse_args()
    scale = args.scale
    base = cost.IMAGE_BYTES / cost.IMAGE_PULL_BYTES_PER_SECOND + cost.ENGINE_START_SECONDS

    rows: list[tuple[str, float, float, str]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        Emulator(cold_start=base * scale, weights_scale=scale, execution_time=0.0, runsync_wait=5.0) as emulator,
    ):
        volume = emulator.state.add_network_volume("models", size=100)
        environ = {**emulator.env(), "HF_HUB_OFFLINE": "1"}
        weights = 0
        for strategy in STRATEGIES:
            config = _config(Path(tmp), strategy, volume.id)
            check = check_deployment(config, reporter=NullReporter(), environ=environ, offline=True)
            weights = check.fit.weight_bytes_total if check.fit else 0
            plan = check.cost.cold_start_plan
            with connect(config, environ) as cp:
                image = IMAGE if config.method.builds_image else None
                made = ensure_endpoint(cp, config, image=image, environ=environ, init_timeout=plan.init_timeout)
            assert made.result is not None
            endpoint_id = made.result.endpoint_id
            chosen = plan.chosen
            parts = " + ".join(f"{label} {seconds:.0f} s" for label, seconds in chosen.parts)
            measured = _delay(emulator, endpoint_id) / scale
            if strategy == "network-volume":
                assert chosen.first_seconds is not None
                rows.append(
                    ("network-volume, first", chosen.first_seconds, measured, "download onto the volume, then " + parts)
                )
                _idle(emulator, endpoint_id)
                rows.append(("network-volume, later", chosen.seconds, _delay(emulator, endpoint_id) / scale, parts))
            else:
                rows.append((strategy, chosen.seconds, measured, parts))

    print(f"{MODEL} on 1 x NVIDIA L4: {weights / 1e9:.1f} GB of weights (bf16), cold start without FlashBoot")
    print(f"emulator at {scale:g} of RunPod's speed, its figures scaled back\n")
    print(f"{'model.weights':<24}{'estimate':>10}{'emulator':>10}   estimate's parts")
    for name, estimate, emulated, parts in rows:
        print(f"{name:<24}{estimate:>9.0f}s{emulated:>9.0f}s   {parts}")
    fastest = min(rows, key=lambda row: row[1])
    print(
        f"\nfastest: {fastest[0]}; RunPod's limit before a starting worker is marked unhealthy: "
        f"{cost.RUNPOD_INIT_TIMEOUT_DEFAULT} s (RUNPOD_INIT_TIMEOUT)"
    )
    print("figures assumed:")
    for figure in cost.COLD_START_FIGURES:
        print(f"  {figure.name}: {figure.value} ({figure.source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
