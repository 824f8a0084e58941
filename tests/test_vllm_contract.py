"""The workers and the stand-in vLLM answer to the pinned vLLM: tests/contracts/vllm-<version>.json.

The contract is read from the real wheel by scripts/contracts/vllm_surface.py. Here: it matches
the pin (c); the stand-in has exactly its surface and behaves like it (a); the rendered method-2
and method-3 workers use only what it records, awaiting exactly the coroutines (b); and every
checker reports a doctored contract, stand-in or worker (so none passes by checking nothing).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rpdeploy import versions
from rpdeploy.config import parse_config
from rpdeploy.worker.render import WorkerContext, render_worker
from tests.conftest import ROOT, STANDINS
from tests.support.vllm_contract import (
    CONTRACTS,
    generator,
    load_contract,
    runtime_differences,
    standin_surface,
    surface_differences,
    template_differences,
)

ASYNC_LLM = "vllm.v1.engine.async_llm.AsyncLLM"
VALIDATION_ERROR = "vllm.exceptions.VLLMValidationError"


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return load_contract()


@pytest.fixture(scope="module")
def surface(contract: dict[str, Any]) -> dict[str, Any]:
    return standin_surface(contract)


def _standin_python(code: str, **env: str) -> Any:
    """Run ``code`` with the stand-in importable as ``vllm``; it prints one JSON document."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(STANDINS), **env},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- (c) the contract is the pinned vLLM's ------------------------------------------------


def test_the_contract_is_for_the_pinned_vllm(contract: dict[str, Any]) -> None:
    pinned = versions.VLLM_BASE_IMAGE.rpartition(":v")[2]
    assert generator().pinned_version() == pinned
    assert contract["version"] == pinned
    assert contract["wheel"].startswith(f"vllm-{pinned}-") and len(contract["wheel_sha256"]) == 64
    assert contract["surface"] == generator().SURFACE  # regenerated after the last change to SURFACE
    standin = _standin_python("import json, vllm; print(json.dumps(vllm.MODELS_VLLM_VERSION))")
    assert standin == pinned


def test_bumping_the_pin_without_a_contract_fails(tmp_path: Path) -> None:
    bumped = tmp_path / "versions.py"
    bumped.write_text((ROOT / "rpdeploy" / "versions.py").read_text().replace(":v0.27.1", ":v0.99.0"))
    version = generator().pinned_version(bumped)
    assert version == "0.99.0"
    with pytest.raises(FileNotFoundError):
        load_contract(version)


def test_the_contract_records_what_broke_the_workers(contract: dict[str, Any]) -> None:
    """Acceptance: get_tokenizer is sync and VLLMValidationError is no ValueError, in vLLM and the stand-in."""
    engine = contract["classes"][ASYNC_LLM]["members"]
    assert contract["names"]["vllm.AsyncLLMEngine"]["target"] == ASYNC_LLM  # an alias, followed through the wheel
    assert "vllm.engine.async_llm_engine.AsyncLLMEngine" in contract["names"]["vllm.AsyncLLMEngine"]["via"]
    assert engine["get_tokenizer"]["kind"] == "function"
    assert engine["generate"]["kind"] == "async_generator"
    assert engine["abort"]["kind"] == engine["check_health"]["kind"] == "coroutine"
    mro = contract["exceptions"][VALIDATION_ERROR]["mro"]
    assert "builtins.ValueError" not in mro and "vllm.exceptions.VLLMClientError" in mro
    for name in ("EngineGenerateError", "EngineDeadError"):
        assert contract["exceptions"][f"vllm.v1.engine.exceptions.{name}"]["bases"] == [
            "vllm.exceptions.VLLMServerError"
        ]

    seen = _standin_python("""
        import inspect, json
        from vllm import AsyncLLMEngine
        from vllm.exceptions import VLLMValidationError
        print(json.dumps({
            "get_tokenizer_is_coroutine": inspect.iscoroutinefunction(AsyncLLMEngine.get_tokenizer),
            "generate_is_async_generator": inspect.isasyncgenfunction(AsyncLLMEngine.generate),
            "validation_error_is_value_error": issubclass(VLLMValidationError, ValueError),
            "engine": f"{AsyncLLMEngine.__module__}.{AsyncLLMEngine.__qualname__}",
        }))
    """)
    assert seen == {
        "get_tokenizer_is_coroutine": False,
        "generate_is_async_generator": True,
        "validation_error_is_value_error": False,
        "engine": ASYNC_LLM,
    }


@pytest.mark.slow
def test_the_committed_contract_matches_the_wheel(tmp_path: Path) -> None:
    """What CI's `contracts` phase runs: regenerate from the wheel, compare, and show a stale file fails."""
    gen = generator()
    version = gen.pinned_version()
    cached = sorted(gen.cache_dir().glob(f"vllm-{version}-*.whl"))
    if not cached:  # .ci/run's contracts phase downloads it (~300 MB) before the tests
        pytest.skip(f"no vllm-{version} wheel in {gen.cache_dir()}: run scripts/contracts/vllm_surface.py --check once")
    wheel = cached[0]
    text = gen.render(gen.contract_document(wheel))
    committed = gen.contract_path(version)
    assert gen.difference(committed, text) is None, "run python scripts/contracts/vllm_surface.py"

    stale = tmp_path / committed.name
    document = json.loads(committed.read_text())
    document["classes"][ASYNC_LLM]["members"]["get_tokenizer"]["kind"] = "coroutine"  # the old assumption
    stale.write_text(gen.render(document))
    diff = gen.difference(stale, text)
    assert diff is not None and '"kind": "function"' in diff and '"kind": "coroutine"' in diff


# --- (a) the stand-in has exactly the contract's surface -----------------------------------


def test_the_standin_has_the_contract_surface(contract: dict[str, Any], surface: dict[str, Any]) -> None:
    assert surface_differences(contract, surface) == []
    assert surface["names"]["vllm.AsyncLLMEngine"]["via"][:2] == contract["names"]["vllm.AsyncLLMEngine"]["via"][:2]


def test_the_standin_agrees_at_runtime(contract: dict[str, Any]) -> None:
    assert runtime_differences(contract) == []


def _mutated(contract: dict[str, Any], change: Any) -> dict[str, Any]:
    doctored = copy.deepcopy(contract)
    change(doctored)
    return doctored


def _members(doc: dict[str, Any], target: str) -> dict[str, Any]:
    members: dict[str, Any] = doc["classes"][target]["members"]
    return members


SAMPLING = "vllm.sampling_params.SamplingParams"
MUTATIONS: dict[str, tuple[Any, str]] = {
    "await-ness": (
        lambda d: _members(d, ASYNC_LLM)["get_tokenizer"].update(kind="coroutine"),
        "AsyncLLM.get_tokenizer: kind is 'function' in the stand-in, 'coroutine' in vLLM",
    ),
    "a parameter": (
        lambda d: _members(d, ASYNC_LLM)["abort"]["params"][0].update(name="request_ids"),
        "AsyncLLM.abort: parameters",
    ),
    "a literal default": (
        lambda d: next(f for f in d["classes"][SAMPLING]["fields"] if f["name"] == "max_tokens").update(
            default={"value": 32}
        ),
        "SamplingParams.max_tokens: default",
    ),
    "a field vLLM added": (
        lambda d: d["classes"][SAMPLING]["fields"].append({"name": "min_thinking_tokens", "default": {"value": 0}}),
        "fields missing from the stand-in: ['min_thinking_tokens']",
    ),
    "a member the contract drops": (
        lambda d: _members(d, ASYNC_LLM).pop("shutdown"),
        "AsyncLLM: the stand-in defines ['shutdown']",
    ),
    "where a class lives": (
        lambda d: d["names"]["vllm.SamplingParams"].update(target="vllm.v1.sampling_params.SamplingParams"),
        "vllm.SamplingParams: resolves to vllm.sampling_params.SamplingParams in the stand-in",
    ),
    "an exception's bases": (
        lambda d: d["exceptions"][VALIDATION_ERROR].update(
            bases=["vllm.exceptions.VLLMClientError", "builtins.ValueError"]
        ),
        "exception vllm.exceptions.VLLMValidationError: bases",
    ),
    "a new exception": (
        lambda d: d["exceptions"].update({"vllm.exceptions.VLLMTimeoutError": d["exceptions"][VALIDATION_ERROR]}),
        "exception vllm.exceptions.VLLMTimeoutError: missing from the stand-in",
    ),
    "an attribute's type": (
        lambda d: _members(d, ASYNC_LLM)["renderer"].update(type={"class": "vllm.config.model.ModelConfig"}),
        "AsyncLLM.renderer: type",
    ),
}


@pytest.mark.parametrize("change", sorted(MUTATIONS))
def test_the_surface_check_reports_a_doctored_contract(
    contract: dict[str, Any], surface: dict[str, Any], change: str
) -> None:
    mutate, expected = MUTATIONS[change]
    problems = surface_differences(_mutated(contract, mutate), surface)
    assert any(expected in p for p in problems), problems


@pytest.fixture
def standin_copy(tmp_path: Path) -> Path:
    copied = tmp_path / "standins"
    shutil.copytree(STANDINS, copied, ignore=shutil.ignore_patterns("__pycache__"))
    return copied


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_both_checks_report_a_standin_with_the_old_assumptions(contract: dict[str, Any], standin_copy: Path) -> None:
    vllm = standin_copy / "vllm"
    # What the stand-in used to say: a coroutine get_tokenizer and a ValueError for bad values.
    _edit(vllm / "v1" / "engine" / "async_llm.py", "    def get_tokenizer(self)", "    async def get_tokenizer(self)")
    _edit(
        vllm / "exceptions.py",
        "class VLLMValidationError(VLLMClientError):",
        "class VLLMValidationError(VLLMClientError, ValueError):",
    )
    problems = surface_differences(contract, standin_surface(contract, standin_copy))
    assert any("AsyncLLM.get_tokenizer: kind is 'coroutine' in the stand-in" in p for p in problems), problems
    assert any(p.startswith(f"exception {VALIDATION_ERROR}: bases") for p in problems), problems
    runtime = runtime_differences(contract, standin_copy)
    assert "vllm.AsyncLLMEngine.get_tokenizer: coroutine at runtime, function in vLLM" in runtime
    assert f"issubclass({VALIDATION_ERROR}, ValueError) is True at runtime, False in vLLM" in runtime


def test_the_runtime_check_reports_a_decorator_that_changes_await_ness(
    contract: dict[str, Any], standin_copy: Path
) -> None:
    # Invisible to the ast comparison (still `def`), visible at runtime.
    path = standin_copy / "vllm" / "v1" / "engine" / "async_llm.py"
    _edit(path, "    def shutdown(self", "    @_as_coroutine\n    def shutdown(self")
    helper = (
        "def _as_coroutine(func):\n    async def wrapper(*a, **k):\n        return func(*a, **k)\n\n"
        "    return wrapper\n\n\n"
    )
    _edit(path, "class AsyncLLM(EngineClient):", helper + "class AsyncLLM(EngineClient):")
    assert "vllm.AsyncLLMEngine.shutdown: coroutine at runtime, function in vLLM" in runtime_differences(
        contract, standin_copy
    )


# --- the stand-in raises the real exception types for the real reasons -----------------------


def test_sampling_params_fail_as_in_vllm() -> None:
    seen = _standin_python("""
        import json
        from vllm import SamplingParams
        out = {}
        for label, kwargs in {
            "bad value": {"temperature": 5.0},
            "negative max_tokens": {"max_tokens": 0},
            "unknown name": {"temprature": 1.0},
            "wrong type": {"temperature": "hot"},
        }.items():
            try:
                SamplingParams(**kwargs)
                out[label] = None
            except Exception as exc:
                kind = type(exc).__module__ + "." + type(exc).__name__
                out[label] = [kind, str(exc), getattr(exc, "parameter", None)]
        greedy = SamplingParams(temperature=0.0, top_p=0.5, top_k=5)
        out["greedy"] = [greedy.top_p, greedy.top_k, greedy.stop]
        print(json.dumps(out))
    """)
    assert seen["bad value"] == [
        VALIDATION_ERROR,
        "temperature must be in [0, 2], got 5.0. (parameter=temperature, value=5.0)",
        "temperature",
    ]
    assert seen["negative max_tokens"][0] == VALIDATION_ERROR and seen["negative max_tokens"][2] == "max_tokens"
    assert seen["unknown name"] == ["builtins.TypeError", "Unexpected keyword argument 'temprature'", None]
    assert seen["wrong type"][0] == "builtins.TypeError"  # msgspec does not check types; the range check fails
    assert seen["greedy"] == [1.0, 0, []]  # temperature 0 is greedy: vLLM resets top_p/top_k


def test_generate_fails_as_in_vllm() -> None:
    seen = _standin_python("""
        import asyncio, inspect, json
        from vllm import AsyncEngineArgs, AsyncLLMEngine, SamplingParams
        from vllm.renderers import ChatParams, TokenizeParams

        async def run(engine, text, **render):
            (engine_input,) = await engine.renderer.render_cmpl_async([{"prompt": text}], **render)
            try:
                async for _ in engine.generate(engine_input, SamplingParams(max_tokens=4), "r"):
                    pass
                return None
            except Exception as exc:
                cause = exc.__cause__
                return [type(exc).__name__, str(exc), type(cause).__name__ if cause else None, str(cause or "")]

        async def main():
            engine = AsyncLLMEngine.from_engine_args(AsyncEngineArgs(model="org/model", max_model_len=8))
            out = {"tokenizer_is_awaitable": inspect.isawaitable(engine.get_tokenizer())}
            out["fail"] = await run(engine, "please __standin_fail__")
            out["alive_after_fail"] = [engine.errored, await run(engine, "hello")]
            try:
                await engine.renderer.render_cmpl_async([{"prompt": "one two three four five six seven eight nine"}])
            except Exception as exc:
                out["too_long"] = [type(exc).__name__, exc.parameter]
            try:
                TokenizeParams(max_total_tokens=8, max_output_tokens=9, max_output_tokens_param="max_tokens")
            except Exception as exc:
                out["too_many_tokens"] = [type(exc).__name__, exc.parameter]
            out["die"] = await run(engine, "__standin_die__")
            out["after_death"] = [engine.errored, await run(engine, "hello")]
            try:
                await engine.check_health()
            except Exception as exc:
                out["health"] = type(exc).__name__
            print(json.dumps(out))

        asyncio.run(main())
    """)
    assert seen["tokenizer_is_awaitable"] is False
    assert seen["fail"] == ["EngineGenerateError", "", "RuntimeError", seen["fail"][3]]
    assert "__standin_fail__" in seen["fail"][3]
    assert seen["alive_after_fail"] == [False, None]
    assert seen["too_long"] == ["VLLMValidationError", "input_tokens"]
    assert seen["too_many_tokens"] == ["VLLMValidationError", "max_tokens"]
    assert seen["die"][0] == "EngineDeadError"
    assert seen["after_death"] == [True, seen["die"]]
    assert seen["health"] == "EngineDeadError"


def _model_folder(folder: Path, generation: dict[str, Any] | None = None, bos: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "standin", "max_position_embeddings": 4096}))
    if generation is not None:
        (folder / "generation_config.json").write_text(json.dumps(generation))
    if bos:
        (folder / "tokenizer_config.json").write_text(
            json.dumps({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "add_bos_token": True})
        )
    return folder


def test_generation_config_defaults_as_in_vllm(tmp_path: Path) -> None:
    local = _model_folder(
        tmp_path / "local", {"temperature": 0.6, "top_p": 0.9, "max_new_tokens": 300, "do_sample": True}
    )
    # The Hugging Face cache layout: refs/main names the snapshot.
    repo = tmp_path / "hub" / "models--org--cached"
    _model_folder(repo / "snapshots" / "abc123", {"top_k": 20, "repetition_penalty": 1.05, "temperature": None})
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    fallback = tmp_path / "fallback"
    _model_folder(fallback)
    (fallback / "config.json").write_text(json.dumps({"temperature": 0.3, "max_position_embeddings": 2048}))
    seen = _standin_python(
        f"""
        import json
        from vllm.config import ModelConfig
        print(json.dumps({{
            "local": ModelConfig(model={str(local)!r}).get_diff_sampling_param(),
            "cached": ModelConfig(model="org/cached").get_diff_sampling_param(),
            "from_config_json": ModelConfig(model={str(fallback)!r}).get_diff_sampling_param(),
            "vllm_neutral": ModelConfig(model={str(local)!r}, generation_config="vllm").get_diff_sampling_param(),
            "override": ModelConfig(
                model={str(local)!r}, override_generation_config={{"temperature": 0.1}}).get_diff_sampling_param(),
            "nothing": ModelConfig(model="org/absent").get_diff_sampling_param(),
            "context": [
                ModelConfig(model={str(fallback)!r}).max_model_len, ModelConfig(model="org/absent").max_model_len
            ],
        }}))
        """,
        HF_HUB_CACHE=str(tmp_path / "hub"),
    )
    assert seen["local"] == {"temperature": 0.6, "top_p": 0.9, "max_tokens": 300}
    assert seen["cached"] == {"top_k": 20, "repetition_penalty": 1.05}
    assert seen["from_config_json"] == {"temperature": 0.3}
    assert seen["vllm_neutral"] == {}
    assert seen["override"] == {"temperature": 0.1, "top_p": 0.9, "max_tokens": 300}
    assert seen["nothing"] == {}
    assert seen["context"] == [2048, 32768]


def test_chat_and_prompt_rendering_add_special_tokens_once(tmp_path: Path) -> None:
    model = _model_folder(tmp_path / "llama-like", bos=True)
    seen = _standin_python(f"""
        import asyncio, json
        from vllm import AsyncEngineArgs, AsyncLLMEngine
        from vllm.renderers import ChatParams, TokenizeParams

        async def main():
            engine = AsyncLLMEngine.from_engine_args(AsyncEngineArgs(model={str(model)!r}))
            bos = engine.get_tokenizer().bos_token_id
            chat = ChatParams(chat_template_kwargs={{"add_generation_prompt": True, "tokenize": False}})
            messages = [{{"role": "user", "content": "hi"}}]
            def starts(engine_input):
                return engine_input["prompt_token_ids"][:2].count(bos)
            _, (chat_default,) = await engine.renderer.render_chat_async([messages], chat)
            _, (chat_doubled,) = await engine.renderer.render_chat_async(
                [messages], chat, TokenizeParams(max_total_tokens=4096, add_special_tokens=True))
            (prompt,) = await engine.renderer.render_cmpl_async([{{"prompt": "hi"}}])
            print(json.dumps({{
                "chat": starts(chat_default), "chat_with_special_tokens": starts(chat_doubled),
                "prompt": starts(prompt), "chat_text": chat_default["prompt"], "type": chat_default["type"],
            }}))

        asyncio.run(main())
    """)
    assert seen["chat"] == 1 and seen["prompt"] == 1
    assert seen["chat_with_special_tokens"] == 2  # the double BOS vLLM's chat path avoids
    assert seen["chat_text"] == "<|begin_of_text|><|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert seen["type"] == "token"


# --- (b) the rendered workers use only the contract ----------------------------------------

WORKERS = {
    "custom-handler": ("handler.py",),
    "fastapi": ("app.py", "handler.py"),
}
#: Uses each worker must have been seen to make: the checker is not passing by resolving nothing.
MUST_RESOLVE = {
    "vllm.v1.engine.async_llm.AsyncLLM.from_engine_args",
    "vllm.v1.engine.async_llm.AsyncLLM.generate",
    "vllm.v1.engine.async_llm.AsyncLLM.errored",
    "vllm.v1.engine.async_llm.AsyncLLM.renderer",
    "vllm.renderers.base.BaseRenderer.render_chat_async",
    "vllm.renderers.base.BaseRenderer.render_cmpl_async",
    "vllm.config.model.ModelConfig.get_diff_sampling_param",
    "vllm.config.model.ModelConfig.max_model_len",
    "vllm.outputs.RequestOutput.outputs",
    "vllm.outputs.CompletionOutput.text",
    "vllm.outputs.CompletionOutput.token_ids",
    "vllm.SamplingParams()",
    "vllm.AsyncEngineArgs()",
    "vllm.renderers.TokenizeParams()",
    "vllm.renderers.ChatParams()",
}


def _rendered(method: str) -> dict[str, str]:
    yaml_text = f"""\
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
    return render_worker(WorkerContext.from_config(parse_config(yaml_text)))


@pytest.mark.parametrize("method", sorted(WORKERS))
def test_rendered_workers_use_only_the_contract(contract: dict[str, Any], method: str) -> None:
    files = _rendered(method)
    resolved: set[str] = set()
    for name in WORKERS[method]:
        report = template_differences(contract, files[name], f"{method}/{name}")
        assert report.problems == []
        resolved.update(report.resolved)
    assert resolved >= MUST_RESOLVE, sorted(MUST_RESOLVE - resolved)


BAD_USES = {
    "await ENGINE.get_tokenizer()": (
        "    tokenizer = await engine.get_tokenizer()",
        "AsyncLLM.get_tokenizer() is a plain function in vLLM 0.27.1: do not await it",
    ),
    "an abort not awaited": ("    engine.abort('x')", "AsyncLLM.abort() is a coroutine: await it"),
    "generate awaited": (
        "    x = await engine.generate('p', None, 'r')",
        "AsyncLLM.generate() is an async generator: iterate it with `async for`, do not await it",
    ),
    "a member vLLM lacks": (
        "    engine.model_config.hf_token_secret",
        "ModelConfig.hf_token_secret is not in the contract",
    ),
    "a misspelt field": ("    SamplingParams(temprature=0.2)", "vllm.SamplingParams() has no parameter 'temprature'"),
    "a sync method awaited": (
        "    await engine.model_config.get_diff_sampling_param()",
        "ModelConfig.get_diff_sampling_param() is a plain function",
    ),
    "a tokenizer method vLLM lacks": (
        "    engine.get_tokenizer().encode_batch(['x'])",
        "TokenizerLike.encode_batch is not in the contract",
    ),
    "a tokenizer property called": (
        "    engine.get_tokenizer().bos_token_id()",
        "TokenizerLike.bos_token_id is a property, not a method: it cannot be called",
    ),
    "too many positional arguments": (
        "    await engine.renderer.render_cmpl_async([], None, None)",
        "BaseRenderer.render_cmpl_async() takes at most 2 positional arguments, got 3",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_USES))
def test_the_template_check_reports_misuse(contract: dict[str, Any], case: str) -> None:
    source = _rendered("custom-handler")["handler.py"]
    line, expected = BAD_USES[case]
    anchor = "    return dict(engine.model_config.get_diff_sampling_param())\n"
    assert anchor in source
    doctored = source.replace(anchor, line + "\n" + anchor)
    problems = template_differences(contract, doctored, "handler.py").problems
    assert len(problems) == 1 and expected in problems[0], problems


def test_the_template_check_follows_the_tokenizer(contract: dict[str, Any]) -> None:
    source = _rendered("custom-handler")["handler.py"]
    anchor = "    return dict(engine.model_config.get_diff_sampling_param())\n"
    use = "    tokenizer = engine.get_tokenizer()\n    tokenizer.apply_chat_template([], tokenize=False)\n"
    report = template_differences(contract, source.replace(anchor, use + anchor), "handler.py")
    assert report.problems == []
    assert "vllm.tokenizers.protocol.TokenizerLike.apply_chat_template" in report.resolved


def test_the_template_check_reports_an_import_outside_the_contract(contract: dict[str, Any]) -> None:
    source = _rendered("fastapi")["app.py"]
    doctored = source.replace(
        "from vllm.renderers import",
        "from vllm.entrypoints.openai.api_server import build_app\nfrom vllm.renderers import",
    )
    [problem] = template_differences(contract, doctored, "app.py").problems
    assert "vllm.entrypoints.openai.api_server.build_app is not in the contract" in problem


def test_contract_files_are_only_the_pinned_ones() -> None:
    # An old contract left behind would look authoritative; regenerate, do not accumulate.
    pinned_vllm = generator().pinned_version()
    pinned_worker = versions.WORKER_VLLM_IMAGE.rpartition(":")[2]
    assert sorted(p.name for p in CONTRACTS.glob("*.json")) == [
        f"vllm-{pinned_vllm}.json",
        f"worker-vllm-{pinned_worker}.json",
    ]
