"""Run a rendered worker for real: `python handler.py --rp_serve_api` with the stand-in vLLM."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import STANDINS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LocalWorker:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def local_worker(folder: Path, *, env: dict[str, str] | None = None, timeout: float = 30.0) -> Iterator[LocalWorker]:
    """Start the worker in ``folder`` under the runpod SDK's local API server; stop it after."""
    port = free_port()
    full_env = {
        **os.environ,
        "PYTHONPATH": str(STANDINS),
        "PYTHONUNBUFFERED": "1",
        # The stand-in reads model files (generation_config.json...) from the HF cache: not this machine's.
        "HF_HUB_CACHE": str(folder / ".hf-hub-cache"),
        **(env or {}),
    }
    full_env.pop("RUNPOD_WEBHOOK_GET_JOB", None)
    log = folder / f"worker-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "handler.py", "--rp_serve_api", "--rp_api_host", "127.0.0.1", "--rp_api_port", str(port)],
            cwd=folder,
            env=full_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start in {timeout}s:\n{log.read_text()}")
            time.sleep(0.1)
        yield LocalWorker(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cached_model(hub: Path, repo_id: str, files: dict[str, Any], commit: str = "0123456789abcdef") -> Path:
    """A model in the Hugging Face cache layout (``models--ORG--NAME/snapshots/COMMIT``, ``refs/main``)."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (snapshot / name).write_text(json.dumps(content))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def engine_requests(record: Path) -> list[dict[str, Any]]:
    """What the stand-in engine received, one entry per generate() call (VLLM_STANDIN_REQUESTS)."""
    if not record.is_file():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
