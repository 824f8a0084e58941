"""Templates: golden files for the reference config, and escaping that hostile values cannot break."""

from __future__ import annotations

import ast
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from rpdeploy.config import parse_config
from rpdeploy.errors import TemplateError
from rpdeploy.worker.render import (
    InitContext,
    WorkerContext,
    dockerfile_shell_word,
    dockerfile_word,
    py_literal,
    render_deploy_yaml,
    render_worker,
    shell_word,
    yaml_scalar,
)
from tests.conftest import ROOT

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("RPDEPLOY_UPDATE_GOLDEN") == "1"

BASE = """\
method: {method}
model:
  name: Qwen/Qwen2.5-7B-Instruct
  max_model_len: 8192
  gpu_memory_utilization: 0.9
{extra_model}image:
  registry: 127.0.0.1:5000
  repository: acme/qwen-worker
endpoint:
  name: qwen25-7b-instruct
  gpu: L4
  workers_min: 0
  workers_max: 2
"""

CASES = {
    "custom-handler": BASE.format(method="custom-handler", extra_model=""),
    "fastapi": BASE.format(method="fastapi", extra_model=""),
    "custom-handler-baked": BASE.format(method="custom-handler", extra_model="  revision: main\n  bake: true\n"),
}

HOSTILE = [
    "it's",
    'say "hi"',
    "back\\slash",
    "$HOME ${PATH} $(id) `id`",
    "line1\nline2",
    "carriage\rreturn",
    "tab\tstop",
    "; rm -rf / #",
    "\"; import os; os.system('id'); x = \"",
    "'''",
    '"""',
    "{{ 7*7 }} {% raw %}",
    "é 日本 🚀",
    "\u2028\u2029",
    "x" * 10_000,
]


def _compare(name: str, files: dict[str, str]) -> None:
    folder = GOLDEN / name
    if UPDATE:
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text, encoding="utf-8")
    expected = {str(p.relative_to(folder)): p.read_text(encoding="utf-8") for p in folder.rglob("*") if p.is_file()}
    assert sorted(files) == sorted(expected), "set RPDEPLOY_UPDATE_GOLDEN=1 to regenerate after a deliberate change"
    for rel, text in files.items():
        assert text == expected[rel], f"{name}/{rel} differs from the golden file"


@pytest.mark.parametrize("name", sorted(CASES))
def test_worker_files_match_golden(name: str) -> None:
    _compare(name, render_worker(WorkerContext.from_config(parse_config(CASES[name]))))


def test_deploy_yaml_for_each_method_matches_golden() -> None:
    files = {}
    for method in ("worker-vllm", "custom-handler", "fastapi"):
        files[f"deploy-{method}.yaml"] = render_deploy_yaml(
            InitContext(
                method=method,
                model_name="Qwen/Qwen2.5-7B-Instruct",
                endpoint_name="qwen2-5-7b-instruct",
                repository="acme/qwen-worker",
                deployment_id="0123456789abcdef",
            )
        )
    _compare("init", files)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_python_compiles(name: str, tmp_path: Path) -> None:
    for rel, text in render_worker(WorkerContext.from_config(parse_config(CASES[name]))).items():
        if rel.endswith(".py"):
            path = tmp_path / rel
            path.write_text(text)
            subprocess.run(["python3", "-m", "py_compile", str(path)], check=True)
        if rel.endswith(".json"):
            json.loads(text)


def test_rendering_is_pure(monkeypatch: pytest.MonkeyPatch) -> None:
    context = WorkerContext.from_config(parse_config(CASES["fastapi"]))
    first = render_worker(context)
    monkeypatch.setenv("MODEL_NAME", "something-else")
    monkeypatch.setenv("HOME", "/nowhere")
    assert render_worker(context) == first


@pytest.mark.parametrize("value", HOSTILE)
def test_py_literal_round_trips_and_cannot_inject(value: str) -> None:
    source = f"value = {py_literal(value)}\n"
    tree = ast.parse(source)
    # One assignment of one constant: nothing else can have been smuggled in.
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Assign)
    assert isinstance(tree.body[0].value, ast.Constant)
    assert ast.literal_eval(tree.body[0].value) == value


@pytest.mark.parametrize("value", HOSTILE)
def test_shell_word_is_one_word_that_round_trips(value: str) -> None:
    out = subprocess.run(["sh", "-c", f"printf '%s' {shell_word(value)}"], capture_output=True, check=True).stdout
    assert out.decode() == value


@pytest.mark.parametrize("value", [v for v in HOSTILE if not any(ord(c) < 0x20 or c in "\u2028\u2029" for c in v)])
def test_dockerfile_word_escapes_quotes_backslashes_and_dollars(value: str) -> None:
    word = dockerfile_word(value)
    assert word.startswith('"') and word.endswith('"')
    inner = word[1:-1]
    # Undo the Dockerfile lexer's double-quote escapes: we must get the value back, and no
    # unescaped quote or $ may remain to end the word or expand a variable.
    decoded, index = [], 0
    while index < len(inner):
        char = inner[index]
        if char == "\\":
            decoded.append(inner[index + 1])
            index += 2
            continue
        assert char not in '"$', f"unescaped {char!r} in {word!r}"
        decoded.append(char)
        index += 1
    assert "".join(decoded) == value


@pytest.mark.parametrize("value", [v for v in HOSTILE if any(ord(c) < 0x20 or c in "\u2028\u2029" for c in v)])
def test_dockerfile_words_refuse_line_breaks_and_control_characters(value: str) -> None:
    with pytest.raises(TemplateError, match="control characters"):
        dockerfile_word(value)
    with pytest.raises(TemplateError, match="control characters"):
        dockerfile_shell_word(value)


@pytest.mark.parametrize("value", HOSTILE)
def test_yaml_scalar_round_trips(value: str) -> None:
    assert yaml.safe_load(f"key: {yaml_scalar(value)}\n") == {"key": value}


def test_hostile_model_values_in_every_worker_file(tmp_path: Path) -> None:
    """Bypass config validation (which already refuses these) to prove the templates hold."""
    base = WorkerContext.from_config(parse_config(CASES["custom-handler-baked"]))
    for value in HOSTILE:
        if any(ord(c) < 0x20 for c in value) or value == "\u2028\u2029":
            continue
        for method in ("custom-handler", "fastapi"):
            context = WorkerContext(
                **{
                    **base.as_dict(),
                    "method": method,
                    "model_name": value,
                    "served_model_name": value,
                    "revision": value,
                    "smoke_prompt": value,
                }
            )
            files = render_worker(context)
            settings = [_module_constants(text) for rel, text in files.items() if rel.endswith(".py")]
            with_model = [s for s in settings if "MODEL_NAME" in s]
            assert with_model, "no rendered module carries the model settings"
            for namespace in with_model:
                assert namespace["MODEL_NAME"] == value
                assert namespace["SERVED_MODEL_NAME"] == value
            for rel, text in files.items():
                if rel.endswith(".json"):
                    job = json.loads(text)["input"]
                    messages = job["body"]["messages"] if method == "fastapi" else job["messages"]
                    assert messages[0]["content"] == value
            # Docker splits instructions on \n only (str.splitlines would also split on U+2028).
            run_line = next(line for line in files["Dockerfile"].split("\n") if "snapshot_download" in line)
            # The model name reaches the download as exactly one argv word.
            argv = subprocess.run(
                ["sh", "-c", 'for a in "$@"; do printf "%s\\0" "$a"; done', "sh", *_shell_args(run_line)],
                capture_output=True,
                check=True,
            ).stdout.split(b"\0")[:-1]
            assert argv[-2:] == [value.encode(), value.encode()]


def _module_constants(source: str) -> dict[str, object]:
    """The string defaults of the module's settings, read without importing runpod/vllm."""
    tree = ast.parse(source)
    out: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            call = node.value
            if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "_env" and len(call.args) == 2:
                default = call.args[1]
                if isinstance(default, ast.Constant):
                    out[node.targets[0].id] = default.value
                elif isinstance(default, ast.Name) and default.id in out:
                    out[node.targets[0].id] = out[default.id]
    return out


def _shell_args(run_line: str) -> list[str]:
    """The words after the python3 -c '...' script in the bake RUN line, as the shell parses them."""
    import shlex

    words = shlex.split(run_line.removeprefix("RUN ").split(" \\")[0])
    return words[3:]


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_name_is_defined_twice_in_a_rendered_worker(name: str) -> None:
    # The common parts (settings.py, serving.py) are included into each worker: a function of the
    # same name there and in the worker would silently replace one of them.
    for rel, text in render_worker(WorkerContext.from_config(parse_config(CASES[name]))).items():
        if rel.endswith(".py"):
            tree = ast.parse(text)
            names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
            assert len(names) == len(set(names)), (rel, sorted(n for n in names if names.count(n) > 1))
