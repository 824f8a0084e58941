"""Methods 2 and 3 look in RunPod's model cache first and load offline; else they download, and say so.

The rendered workers run for real (`python handler.py --rp_serve_api`, stand-in vLLM): the
cache folder is RunPod's layout (``models--ORG--NAME/snapshots/COMMIT``, docs
serverless/endpoints/model-caching.mdx) under ``MODEL_CACHE_DIR`` (on RunPod the default,
/runpod-volume/huggingface-cache/hub). What the engine was asked to load is read from the
stand-in's record of its arguments; what the worker says, from its log.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import STANDINS
from tests.test_workers import _init
from tests.workers import cached_model, engine_requests, local_worker

pytestmark = pytest.mark.slow

MODEL = "Qwen/Qwen2.5-7B-Instruct"
COMMIT = "a09a35458c702b33eeacc393d103063234e8bc28"
FILES: dict[str, Any] = {
    "config.json": {"model_type": "standin", "max_position_embeddings": 32768},
    "generation_config.json": {"temperature": 0.6, "top_p": 0.9},
    "model.safetensors": {},
}


@pytest.fixture(scope="module", params=[2, 3], ids=["custom-handler", "fastapi"])
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    return request.param, _init(tmp_path_factory.mktemp(f"cache{request.param}"), request.param) / "worker"


def _start(worker: Path, cache: Path, **env: str) -> Any:
    return local_worker(
        worker,
        env={"MODEL_CACHE_DIR": str(cache), "VLLM_STANDIN_RECORD": str(worker / "engine.json"),
             "VLLM_STANDIN_REQUESTS": str(worker / "requests.jsonl"), "MAX_MODEL_LEN": "4096", **env},
    )  # fmt: skip


def _ask(method: int, url: str) -> None:
    if method == 2:
        body = _runsync_url(url, {"prompt": "hello", "sampling_params": {"max_tokens": 4}})
        assert "error" not in body["output"][-1], body
    else:
        job = {"method": "POST", "path": "/v1/completions", "body": {"prompt": "hello", "max_tokens": 4}}
        assert _runsync_url(url, job)["output"][0]["status_code"] == 200  # one whole answer (issue 19)


def _runsync_url(url: str, job_input: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{url}/runsync", json={"input": job_input}, timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def test_a_cached_model_loads_offline_from_runpods_cache(project: tuple[int, Path], tmp_path: Path) -> None:
    method, worker = project
    cache = tmp_path / "huggingface-cache" / "hub"
    snapshot = cached_model(cache, MODEL, FILES, commit=COMMIT)
    with _start(worker, cache) as running:
        _ask(method, running.url)
        log = running.log.read_text()
    engine = json.loads((worker / "engine.json").read_text())
    # The snapshot folder, not the repo id: vLLM has nothing to ask the Hub for.
    assert (engine["model"], engine["revision"]) == (str(snapshot), None)
    assert engine["served_model_name"] == MODEL  # clients still see the model's name
    assert f"model {MODEL}: in the model cache at {snapshot}; loading it offline (HF_HUB_OFFLINE=1)" in log
    assert "downloading" not in log
    # The model's own sampling defaults came from the cached files too (parity with vllm serve).
    sampling = engine_requests(worker / "requests.jsonl")[-1]["sampling"]
    assert (sampling["temperature"], sampling["top_p"]) == (0.6, 0.9)


def test_without_the_model_in_the_cache_the_worker_downloads_and_says_so(
    project: tuple[int, Path], tmp_path: Path
) -> None:
    method, worker = project
    cache = tmp_path / "hub"
    # Incomplete: a snapshot whose weights are not all there (a download still under way).
    cached_model(cache, MODEL, {**FILES, "model.safetensors.index.json": {"weight_map": {"a": "model-1.safetensors"}}})
    with _start(worker, cache, MODEL_REVISION="main") as running:
        _ask(method, running.url)
        log = running.log.read_text()
    engine = json.loads((worker / "engine.json").read_text())
    assert (engine["model"], engine["revision"]) == (MODEL, "main")  # the Hub, at deploy.yaml's revision
    assert (
        f"model {MODEL} is not in the model cache ({cache}): downloading it from the Hugging Face "
        "Hub, so this start is slower"
    ) in log


def test_a_baked_model_is_loaded_from_the_image(project: tuple[int, Path], tmp_path: Path) -> None:
    method, worker = project
    baked = tmp_path / "models" / "model"
    baked.mkdir(parents=True)
    for name, content in FILES.items():
        (baked / name).write_text(json.dumps(content))
    cache = tmp_path / "hub"
    cached_model(cache, MODEL, FILES, commit=COMMIT)  # the image's copy wins over the cache
    with _start(worker, cache, MODEL_PATH=str(baked)) as running:
        _ask(method, running.url)
        log = running.log.read_text()
    assert json.loads((worker / "engine.json").read_text())["model"] == str(baked)
    assert f"model {MODEL}: loading the copy baked into the image at {baked}" in log
    # A model named by its folder (a path in your own image) is loaded from there, not "downloaded".
    with _start(worker, cache, MODEL_NAME=str(baked)) as running:
        _ask(method, running.url)
        log = running.log.read_text()
    assert json.loads((worker / "engine.json").read_text())["model"] == str(baked)
    assert "downloading" not in log and f"loading the copy baked into the image at {baked}" in log


def _lookup(worker: Path, cache: Path, model: str, revision: str | None) -> str | None:
    """The rendered worker's own cache lookup, imported (its __main__ block does not run)."""
    module = "app" if (worker / "app.py").exists() else "handler"
    code = f"import json, {module} as w; print(json.dumps(w.cached_snapshot({model!r}, {revision!r}, {str(cache)!r})))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=worker, env={"PYTHONPATH": str(STANDINS), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found: str | None = json.loads(out.strip().splitlines()[-1])
    return found


def test_the_lookup_follows_the_hugging_face_cache_layout(project: tuple[int, Path], tmp_path: Path) -> None:
    _, worker = project
    cache = tmp_path / "hub"
    snapshot = cached_model(cache, MODEL, FILES, commit=COMMIT)
    assert _lookup(worker, cache, MODEL, None) == str(snapshot)  # refs/main
    assert _lookup(worker, cache, MODEL, COMMIT) == str(snapshot)  # a commit names its folder
    assert _lookup(worker, cache, MODEL, "v2") is None  # a branch it does not have
    assert _lookup(worker, cache, "Qwen/Qwen2.5-0.5B-Instruct", None) is None
    # RunPod may keep no refs/main (it resolves the reference to one commit), and its docs show
    # a lower-case folder name: both are found.
    (cache / f"models--{MODEL.replace('/', '--')}" / "refs" / "main").unlink()
    lower = cache / f"models--{MODEL.replace('/', '--')}".lower()
    (cache / f"models--{MODEL.replace('/', '--')}").rename(lower)
    assert _lookup(worker, cache, MODEL, None) == str(lower / "snapshots" / COMMIT)
    assert _lookup(worker, tmp_path / "nothing-here", MODEL, None) is None
