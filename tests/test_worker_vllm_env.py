"""Method 1: every env var rpdeploy sets is one the pinned worker-vllm reads (tests/contracts/worker-vllm-<tag>.json).

worker-vllm turns env vars into `vllm serve` flags and ignores the rest silently, so a misspelt
or retired name would deploy without its setting. The contract is read from worker-vllm's source
at the tag of ``WORKER_VLLM_IMAGE`` by scripts/contracts/worker_vllm_env.py.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import sys
from types import ModuleType
from typing import Any

import pytest

from rpdeploy import versions
from rpdeploy.config import parse_config
from rpdeploy.runpod.deployment import resolve_env
from tests.conftest import ROOT

#: Every model setting deploy.yaml has, set away from its default, so model_env emits every name.
FULL = """\
method: worker-vllm
model:
  name: Qwen/Qwen2.5-7B-Instruct
  revision: main
  served_model_name: qwen
  max_model_len: 8192
  gpu_memory_utilization: 0.85
  dtype: bfloat16
  quantization: awq
  kv_cache_dtype: fp8
  max_num_seqs: 64
  trust_remote_code: true
  enforce_eager: true
  hf_token: HF_TOKEN
endpoint:
  name: qwen
  gpu: L4
  gpu_count: 2
"""


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "contracts" / "worker_vllm_env.py"
    spec = importlib.util.spec_from_file_location("rpdeploy_worker_vllm_env", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    tag = versions.WORKER_VLLM_IMAGE.rpartition(":")[2]
    document: dict[str, Any] = json.loads((ROOT / "tests" / "contracts" / f"worker-vllm-{tag}.json").read_text())
    return document


#: Names rpdeploy sets that worker-vllm is not meant to read, and who reads each instead.
READ_ELSEWHERE = {
    # The ownership mark: rpdeploy reads it back from the template (rpdeploy/runpod/deployment.py).
    "RPDEPLOY_DEPLOYMENT": "rpdeploy",
    # The HF token: huggingface_hub reads it itself when HF_TOKEN is unset
    # (huggingface/huggingface_hub src/huggingface_hub/utils/_auth.py, _get_token_from_environment),
    # in the `vllm serve` process the wrapper starts with its own environment (src/main.py).
    "HUGGING_FACE_HUB_TOKEN": "huggingface_hub",
    # RunPod's platform: how long a worker may take to start (docs serverless/development/optimization.mdx).
    "RUNPOD_INIT_TIMEOUT": "RunPod",
}


def env_problems(env: dict[str, str], contract: dict[str, Any]) -> list[str]:
    """Names worker-vllm would not read, and boolean values it would refuse."""
    problems = []
    booleans = set(contract["true_values"]) | set(contract["false_values"])
    for name, value in sorted(env.items()):
        entry = contract["env"].get(name)
        if name in READ_ELSEWHERE and entry is None:
            continue
        if name in contract["removed"]:
            problems.append(f"{name}: worker-vllm {contract['tag']} ignores it (flag removed from vLLM)")
        elif entry is None:
            problems.append(f"{name}: worker-vllm {contract['tag']} does not read it")
        elif entry.get("kind") in ("paired_bool", "bool") and value.strip().lower() not in booleans:
            problems.append(f"{name}={value!r}: worker-vllm accepts only {sorted(booleans)}")
    return problems


def _method1_env(text: str = FULL) -> dict[str, str]:
    config = parse_config(text)
    return {var.key: var.reveal() for var in resolve_env(config, environ={"HF_TOKEN": "hf_canary"}, init_timeout=900)}


def test_the_contract_is_for_the_pinned_worker(contract: dict[str, Any]) -> None:
    assert contract["tag"] == versions.WORKER_VLLM_IMAGE.rpartition(":")[2] == _generator().pinned_tag()
    assert len(contract["commit"]) == 40


def test_every_name_rpdeploy_sets_for_method_1_is_read(contract: dict[str, Any]) -> None:
    env = _method1_env()
    # model_env emits each setting only when it differs from worker-vllm's default: the config
    # above sets them all, so every name rpdeploy can emit is checked here.
    assert {
        "MODEL_NAME", "MODEL_REVISION", "MAX_MODEL_LEN", "GPU_MEMORY_UTILIZATION", "MAX_CONCURRENCY", "DTYPE",
        "QUANTIZATION", "KV_CACHE_DTYPE", "MAX_NUM_SEQS", "TENSOR_PARALLEL_SIZE", "OPENAI_SERVED_MODEL_NAME_OVERRIDE",
        "TRUST_REMOTE_CODE", "ENFORCE_EAGER", "HUGGING_FACE_HUB_TOKEN", "RUNPOD_INIT_TIMEOUT",
    } <= set(env)  # fmt: skip
    assert env_problems(env, contract) == []
    # The names the workers of methods 2 and 3 add for parity are worker-vllm's too.
    assert env_problems({"GENERATION_CONFIG": "auto", "OVERRIDE_GENERATION_CONFIG": "{}"}, contract) == []


def test_the_env_check_reports_names_worker_vllm_does_not_read(contract: dict[str, Any]) -> None:
    assert env_problems({"MAX_MODEL_LENGTH": "4096"}, contract) == [
        f"MAX_MODEL_LENGTH: worker-vllm {contract['tag']} does not read it"
    ]
    assert env_problems({"SWAP_SPACE": "4"}, contract) == [
        f"SWAP_SPACE: worker-vllm {contract['tag']} ignores it (flag removed from vLLM)"
    ]
    assert "accepts only" in env_problems({"ENFORCE_EAGER": "enabled"}, contract)[0]
    older = copy.deepcopy(contract)
    del older["env"]["OPENAI_SERVED_MODEL_NAME_OVERRIDE"]  # as if worker-vllm dropped the alias
    assert env_problems(_method1_env(), older) == [
        f"OPENAI_SERVED_MODEL_NAME_OVERRIDE: worker-vllm {contract['tag']} does not read it"
    ]


def test_no_name_rpdeploy_sets_puts_the_hf_token_on_vllm_serves_argv(contract: dict[str, Any]) -> None:
    # worker-vllm turns HF_TOKEN into `--hf-token <token>` and logs the argv (src/main.py):
    # rpdeploy hands the token over under a name no flag has, with its secret or as a value.
    assert contract["env"]["HF_TOKEN"]["flag"] == "--hf-token"
    way_out = FULL.replace("  hf_token: HF_TOKEN\n", "  hf_token: HF_TOKEN\n  hf_token_delivery: template-env\n")
    for env in (_method1_env(), _method1_env(way_out)):
        assert "HF_TOKEN" not in env and "HUGGING_FACE_HUB_TOKEN" in env
        flags = [name for name in env if contract["env"].get(name, {}).get("flag")]
        assert "HUGGING_FACE_HUB_TOKEN" not in flags and "hf_canary" not in [env[name] for name in flags]
    assert _method1_env()["HUGGING_FACE_HUB_TOKEN"] == "{{ RUNPOD_SECRET_rpdeploy_qwen_hf_token }}"
    assert _method1_env(way_out)["HUGGING_FACE_HUB_TOKEN"] == "hf_canary"


def test_the_committed_contract_matches_the_worker_source() -> None:
    gen = _generator()
    tag = gen.pinned_tag()
    # .ci/run's contracts phase clones it into the cache before the tests (and checks it itself).
    if not (os.environ.get("RPDEPLOY_WORKER_VLLM_GIT") or (gen.cache_dir() / "worker-vllm.git").is_dir()):
        pytest.skip("no worker-vllm clone here: run scripts/contracts/worker_vllm_env.py --check once, or set "
                    "RPDEPLOY_WORKER_VLLM_GIT to a git dir of it")  # fmt: skip
    text = gen.render(gen.contract_document(gen.git_dir(tag), tag))
    assert gen.contract_path(tag).read_text() == text, "run python scripts/contracts/worker_vllm_env.py"
