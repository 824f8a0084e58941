"""The workers' request logic reproduces `vllm serve`'s exactly (vllm 0.27.1), case by case.

Methods 2 and 3 do not run vLLM's OpenAI server classes (OpenAIServingChat needs the whole
server: OpenAIServingModels, OnlineRenderer, its ~80-field request models), so the rendered
files reproduce its two decisions, and this test pins them to the upstream rules:

- sampling defaults, vllm/entrypoints/openai/chat_completion/protocol.py ``to_sampling_params``:
  each of repetition_penalty, temperature, top_p, top_k, min_p is the request's value, else the
  model's ``get_diff_sampling_param()`` value, else vLLM's neutral one; None counts as unset.
- max_tokens, vllm/entrypoints/serve/utils/api_utils.py ``get_max_tokens`` with
  ``override_max_tokens`` from chat_completion/serving.py: the smallest of the room left in the
  context, the request's value (else the model's default), and a cap that is the model's
  ``max_new_tokens`` when ``--generation-config`` names a folder, or the override's
  ``max_new_tokens`` otherwise.

The functions are imported from a rendered handler.py (with the stand-in vLLM), not copied here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rpdeploy.config import parse_config
from rpdeploy.worker.render import WorkerContext, render_worker
from tests.conftest import STANDINS

CONFIG = """\
method: {method}
model:
  name: Qwen/Qwen2.5-7B-Instruct
  max_model_len: 8192
image:
  registry: 127.0.0.1:5000
  repository: acme/qwen-worker
endpoint:
  name: qwen
  gpu: L4
"""


def _evaluate(tmp_path: Path, method: str, code: str) -> Any:
    files = render_worker(WorkerContext.from_config(parse_config(CONFIG.format(method=method))))
    module = "handler" if method == "custom-handler" else "app"
    (tmp_path / f"{module}.py").write_text(files[f"{module}.py"])
    result = subprocess.run(
        [sys.executable, "-c", f"from {module} import *\n" + textwrap.dedent(code)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{STANDINS}{os.pathsep}{tmp_path}"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _folder(path: Path, generation: dict[str, Any]) -> str:
    path.mkdir()
    (path / "generation_config.json").write_text(json.dumps(generation))
    return str(path)


@pytest.mark.parametrize("method", ["custom-handler", "fastapi"])
def test_sampling_defaults_follow_to_sampling_params(tmp_path: Path, method: str) -> None:
    seen = _evaluate(
        tmp_path,
        method,
        """
        import json
        defaults = {"temperature": 0.6, "top_p": 0.9, "max_tokens": 300}
        from vllm.exceptions import VLLMValidationError
        def pick(values, max_tokens=42):
            p = make_sampling_params(values, defaults, max_tokens)
            return [p.temperature, p.top_p, p.top_k, p.min_p, p.repetition_penalty, p.max_tokens, p.seed]
        out = {
            "none": pick({}),
            "explicit": pick({"temperature": 0.2, "top_k": 5, "seed": 3, "max_tokens": 10}),
            "null_is_unset": pick({"temperature": None, "top_p": None}),
            "greedy": pick({"temperature": 0}),
            "no_model_defaults": [make_sampling_params({}, {}, 1).temperature, make_sampling_params({}, {}, 1).top_p],
        }
        try:
            pick({}, max_tokens=0)  # the prompt fills the context: vllm serve refuses it the same way
        except VLLMValidationError as exc:
            out["no_room"] = [exc.parameter, str(exc)]
        print(json.dumps(out))
        """,
    )
    assert seen["none"] == [0.6, 0.9, 0, 0.0, 1.0, 42, None]
    assert seen["explicit"] == [0.2, 0.9, 5, 0.0, 1.0, 42, 3]  # max_tokens is limit_max_tokens()'s answer
    assert seen["null_is_unset"] == [0.6, 0.9, 0, 0.0, 1.0, 42, None]
    assert seen["greedy"] == [0.0, 1.0, 0, 0.0, 1.0, 42, None]  # vLLM resets top_p for greedy sampling
    assert seen["no_model_defaults"] == [1.0, 1.0]
    assert seen["no_room"] == ["max_tokens", "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)"]


@pytest.mark.parametrize("method", ["custom-handler", "fastapi"])
def test_max_tokens_follow_get_max_tokens(tmp_path: Path, method: str) -> None:
    capped = _folder(tmp_path / "capped", {"max_new_tokens": 15})
    seen = _evaluate(
        tmp_path,
        method,
        f"""
        import json
        from vllm import AsyncEngineArgs, AsyncLLMEngine
        from vllm.exceptions import VLLMValidationError

        def engine(**args):
            return AsyncLLMEngine.from_engine_args(AsyncEngineArgs(model={capped!r}, max_model_len=100, **args))

        def limits(e, prompt_tokens=10):
            defaults = sampling_defaults(e)
            return [limit_max_tokens(e, requested, prompt_tokens, defaults) for requested in (None, 20, 50, 500)]

        out = {{
            # generation_config "auto": the model folder's max_new_tokens=15 is only a default
            "auto": limits(engine()),
            # "vllm": the model's defaults are ignored
            "vllm": limits(engine(generation_config="vllm")),
            # a folder given as --generation-config: its max_new_tokens is also a cap
            "folder": limits(engine(generation_config={capped!r})),
            # --override-generation-config max_new_tokens: default and cap
            "override": limits(engine(override_generation_config={{"max_new_tokens": 7}})),
            "full": limits(engine(generation_config="vllm"), prompt_tokens=100),
        }}
        try:
            limit_max_tokens(engine(), None, 101, {{}})
        except VLLMValidationError as exc:
            out["too_long"] = [exc.parameter, str(exc)]
        print(json.dumps(out))
        """,
    )
    assert seen["auto"] == [15, 20, 50, 90]
    assert seen["vllm"] == [90, 20, 50, 90]
    assert seen["folder"] == [15, 15, 15, 15]
    assert seen["override"] == [7, 7, 7, 7]
    assert seen["full"] == [0, 0, 0, 0]
    assert seen["too_long"][0] == "input_tokens" and "Input length (101)" in seen["too_long"][1]
