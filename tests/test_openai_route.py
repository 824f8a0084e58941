"""RunPod's OpenAI route (``/openai/v1``) for all three methods, with the `openai` package as the client.

RunPod turns ``POST /v2/<id>/openai/v1/chat/completions`` into a job
``{"openai_route": "/v1/chat/completions", "openai_input": <body>}`` and relays the worker's
answer (worker-vllm v2.25.2 ``src/handler.py``: one JSON object, or SSE text pieces when
streaming). Three things are proved here:

1. Against the emulator, the `openai` client's chat (plain and streamed), completions and models
   calls succeed for endpoints of methods 1, 2 and 3, and the same request gets an answer of the
   same shape from each.
2. The rendered workers (methods 2 and 3, ``python handler.py --rp_serve_api`` with the stand-in
   vLLM) answer the jobs RunPod makes: the `openai` client works through a relay that does what
   the platform does, and the answers have the same shape as method 1's and each other's.
3. The emulator does not run the rendered workers (it has no vLLM and no image): its own-image
   endpoints answer with the stand-in it shares with method 1. The same jobs sent to it and to
   the real workers give answers of the same shape, field for field, errors included, so what
   the emulator shows is what the workers do.
4. Those answers carry the fields vLLM 0.27.1's server writes, in its order, read from the pinned
   wheel (skipped when the wheel is not cached; CI's contracts phase fetches it).

"Shape" is the JSON skeleton: keys, and each value's kind (text, number, bool, null, object,
list), with ids, timestamps and generated text left out; a stream is its sequence of event
skeletons with repeats of the same event collapsed (the two models write texts of different
lengths).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from rpdeploy.emulator import Emulator
from tests.conftest import ROOT, CliRunnerFn
from tests.workers import LocalWorker, local_worker

MODEL = "Qwen/Qwen2.5-7B-Instruct"
IMAGE = "registry.example/acme/qwen-worker@sha256:" + "ef" * 32
MESSAGES = [{"role": "user", "content": "What is RunPod?"}]


# --- shapes ---------------------------------------------------------------------------------


def skeleton(value: Any) -> Any:
    """The JSON skeleton of ``value``: keys and kinds, not values."""
    if isinstance(value, dict):
        return {key: skeleton(item) for key, item in value.items()}
    if isinstance(value, list):
        return collapse([skeleton(item) for item in value])
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    assert value is None, type(value)
    return None


def collapse(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out


def sse_events(text: str) -> list[Any]:
    """The events of an SSE body (``[DONE]`` kept as text), checking its framing."""
    assert text.endswith("\n\n"), text[-80:]
    events: list[Any] = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def stream_shape(text: str) -> list[Any]:
    events = sse_events(text)
    assert events[-1] == "[DONE]"
    return collapse([event if event == "[DONE]" else skeleton(event) for event in events])


def job_shape(body: dict[str, Any]) -> Any:
    """The shape of a finished job as RunPod reports it: its output's, or its error's."""
    if body["status"] == "FAILED":
        error = ast.literal_eval(body["error"])  # str() of the worker's error dict (runpod 1.12.0)
        match = re.fullmatch(r"(vLLM|app\.py) returned HTTP (\d+): (.*)", error["message"], re.S)
        assert match, error
        body = json.loads(match[3])
        # vLLM's error type and the field it names are part of the contract, not just their kinds.
        named = (body["error"]["type"], body["error"]["param"]) if isinstance(body.get("error"), dict) else None
        return {"FAILED": {**skeleton(error), "status": match[2], "body": skeleton(body), "named": named}}
    assert body["status"] == "COMPLETED", body
    output = body["output"]
    if isinstance(output, list) and output and all(isinstance(item, str) for item in output):
        return {"stream": stream_shape("".join(output))}
    return {"output": skeleton(output)}


def platform_view(local: dict[str, Any]) -> dict[str, Any]:
    """What RunPod reports for a job the SDK's local test server ran.

    The local server keeps an item with "error" in the output; the real worker loop fails the
    job with ``str()`` of the item's error (runpod-python 1.12.0, rp_job.py handle_job).
    """
    output = local.get("output")
    if isinstance(output, list):
        for item in output:
            if isinstance(item, dict) and item.get("error"):
                return {"id": local["id"], "status": "FAILED", "error": str(item["error"])}
    return local


# --- the platform's relay, for the local workers ----------------------------------------------


class RunPodRelay(httpx.BaseTransport):
    """Does for a local worker what RunPod does for /openai/v1: request -> job -> HTTP answer.

    The relay of a FAILED job is not documented by RunPod; like the emulator, this answers with
    the HTTP status and body the worker reports in its error.
    """

    def __init__(self, worker_url: str) -> None:
        self.worker_url = worker_url
        self.jobs: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        route = request.url.path.removeprefix("/openai")
        job: dict[str, Any] = {"openai_route": route}
        if request.method == "POST":
            job["openai_input"] = json.loads(request.read())
        self.jobs.append(job)
        done = platform_view(httpx.post(f"{self.worker_url}/runsync", json={"input": job}, timeout=30).json())
        if done["status"] == "FAILED":
            message = ast.literal_eval(done["error"])["message"]
            match = re.fullmatch(r".* returned HTTP (\d+): (.*)", message, re.S)
            assert match, message
            return httpx.Response(int(match[1]), json=json.loads(match[2]))
        output = done["output"]
        if all(isinstance(item, str) for item in output):
            body = "".join(output).encode()
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        [answer] = output
        return httpx.Response(200, json=answer)


# --- what the client asks -----------------------------------------------------------------------


def ask_everything(client: openai.OpenAI) -> dict[str, Any]:
    """Every call the acceptance names, checked as a client would check them; returns their raw shapes."""
    shapes: dict[str, Any] = {}

    models = client.models.with_raw_response.list()
    assert [m.id for m in models.parse().data] == [MODEL]
    shapes["models"] = skeleton(models.http_response.json())

    chat = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, max_tokens=5)
    completion = chat.parse()
    assert completion.object == "chat.completion" and completion.model == MODEL
    assert completion.choices[0].message.role == "assistant" and completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    shapes["chat"] = skeleton(chat.http_response.json())

    pieces: list[str] = []
    finish: list[str] = []
    usage = None
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=5, stream=True, stream_options={"include_usage": True}
    )
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            if choice.finish_reason:
                finish.append(choice.finish_reason)
        usage = chunk.usage or usage
    assert "".join(pieces) == completion.choices[0].message.content  # deterministic stand-ins
    assert finish == ["length"] and usage is not None and usage.completion_tokens == 5
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=MESSAGES, max_tokens=5, stream=True, stream_options={"include_usage": True}
    ) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        shapes["chat stream"] = stream_shape(raw.read().decode())

    text = client.completions.with_raw_response.create(model=MODEL, prompt="Once upon a time", max_tokens=4)
    parsed = text.parse()
    assert parsed.object == "text_completion" and parsed.choices[0].text
    assert parsed.usage is not None and parsed.usage.completion_tokens == 4
    shapes["completion"] = skeleton(text.http_response.json())

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="someone/else", messages=MESSAGES)
    assert missing.value.status_code == 404 and "someone/else" in str(missing.value)
    return shapes


# --- 1. the emulator, methods 1, 2 and 3 --------------------------------------------------------


def _project(folder: Path, method: int) -> Path:
    folder.mkdir()
    if method == 1:
        document = yaml.safe_load((ROOT / "deploy.yaml").read_text())
        document["endpoint"]["name"] = "openai-method-1"
    else:
        document = {
            "method": method,
            "model": {"name": MODEL, "max_model_len": 8192},
            "image": {"registry": "registry.example", "repository": "acme/qwen-worker"},
            "endpoint": {"name": f"openai-method-{method}", "gpu": "L4"},
        }
    (folder / "deploy.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return folder / "deploy.yaml"


def test_the_openai_client_works_for_every_method_against_the_emulator(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator
) -> None:
    shapes = {}
    for method in (1, 2, 3):
        config = _project(project / f"m{method}", method)
        image = ["--image", IMAGE] if method != 1 else []
        created = json.loads(cli("endpoint", "create", "--json", "--config", config, *image).stdout)["endpoint"]
        # The URL the backend is given is the OpenAI base, whatever the method.
        assert created["urls"]["openai_base"].endswith(f"/{created['endpoint_id']}/openai/v1")
        properties = cli("backend", "properties", "--endpoint-id", created["endpoint_id"], "--config", config)
        assert properties.stdout == (
            f"runpod.endpoint.url={created['urls']['openai_base']}\nrunpod.api.key=${{RUNPOD_API_KEY}}\n"
        )
        client = openai.OpenAI(base_url=created["urls"]["openai_base"], api_key=runpod_emulator.api_key, max_retries=0)
        shapes[method] = ask_everything(client)
        # Each call was a job on that endpoint, shaped as RunPod shapes it.
        routes = [
            job["input"].get("openai_route")
            for job in runpod_emulator.state.snapshot()["jobs"]
            if job["endpointId"] == created["endpoint_id"]
        ]
        assert routes == ["/v1/models"] + ["/v1/chat/completions"] * 3 + ["/v1/completions", "/v1/chat/completions"]
    assert shapes[1] == shapes[2] == shapes[3]
    assert shapes[1]["chat stream"][-1] == "[DONE]"


# --- 2. the rendered workers, as RunPod runs them ----------------------------------------------


def _init(folder: Path, method: int) -> Path:
    from typer.testing import CliRunner

    from rpdeploy.cli import app

    result = CliRunner().invoke(app, ["init", "--method", str(method), "--yes", "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    return folder / "worker"


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, LocalWorker]]:
    # As RunPod starts them: with the template's env, the release id rpdeploy sets included (every
    # answer names it, in system_fingerprint and in a method-2 job's "release").
    env = {"MAX_MODEL_LEN": "4096", "RPDEPLOY_RELEASE": "rel-0123456789ab-cdef01234567"}
    with (
        local_worker(_init(tmp_path_factory.mktemp("m2"), 2), env=env) as two,
        local_worker(_init(tmp_path_factory.mktemp("m3"), 3), env=env) as three,
    ):
        yield {2: two, 3: three}


@pytest.mark.slow
def test_the_openai_client_works_with_the_rendered_workers(workers: dict[int, LocalWorker]) -> None:
    shapes = {}
    for method, worker in workers.items():
        relay = RunPodRelay(worker.url)
        client = openai.OpenAI(
            base_url="http://runpod.invalid/openai/v1",
            api_key="unused",
            max_retries=0,
            http_client=httpx.Client(transport=relay),
        )
        shapes[method] = ask_everything(client)
        assert relay.jobs[0] == {"openai_route": "/v1/models"}
        assert relay.jobs[1]["openai_route"] == "/v1/chat/completions"
        assert relay.jobs[1]["openai_input"]["messages"] == MESSAGES
        assert workers[method].process.poll() is None
    assert shapes[2] == shapes[3]


# --- 3. the emulator's stand-in matches the workers -----------------------------------------------

JOBS: dict[str, dict[str, Any]] = {
    "models": {"openai_route": "/v1/models"},
    "models, empty input": {"openai_route": "/v1/models", "openai_input": {}},
    "chat": {"openai_route": "/v1/chat/completions", "openai_input": {"model": MODEL, "messages": MESSAGES}},
    "chat, default route": {"openai_input": {"messages": MESSAGES, "max_tokens": 3}},
    "chat stream": {
        "openai_route": "/v1/chat/completions",
        "openai_input": {"messages": MESSAGES, "max_tokens": 4, "stream": True},
    },
    "chat stream with usage": {
        "openai_route": "/v1/chat/completions",
        "openai_input": {
            "messages": MESSAGES,
            "max_completion_tokens": 4,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    },
    "completion": {"openai_route": "/v1/completions", "openai_input": {"prompt": "Once upon", "max_tokens": 3}},
    "completion stream with usage": {
        "openai_route": "/v1/completions",
        "openai_input": {"prompt": "Once", "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}},
    },
    "wrong model": {"openai_route": "/v1/chat/completions", "openai_input": {"model": "nope", "messages": MESSAGES}},
    "bad max_tokens": {
        "openai_route": "/v1/chat/completions",
        "openai_input": {"messages": MESSAGES, "max_tokens": 0},
    },
    "unknown route": {"openai_route": "/v1/embeddings", "openai_input": {"input": "x"}},
    "wrong verb": {"openai_route": "/v1/chat/completions"},
}


@pytest.mark.slow
def test_the_emulators_stand_in_answers_in_the_shape_of_the_rendered_workers(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, workers: dict[int, LocalWorker]
) -> None:
    config = _project(project / "m2", 2)
    endpoint = json.loads(cli("endpoint", "create", "--json", "--config", config, "--image", IMAGE).stdout)
    base = f"{runpod_emulator.endpoint_url}/{endpoint['endpoint']['endpoint_id']}"
    headers = {"Authorization": f"Bearer {runpod_emulator.api_key}"}
    for name, job in JOBS.items():
        emulated = httpx.post(f"{base}/runsync", json={"input": job}, headers=headers, timeout=30).json()
        expected = job_shape(emulated)
        for method, worker in workers.items():
            local = httpx.post(f"{worker.url}/runsync", json={"input": job}, timeout=30).json()
            assert job_shape(platform_view(local)) == expected, f"{name}: method {method} differs from the emulator"
        if name in ("wrong model", "bad max_tokens", "unknown route", "wrong verb"):
            assert "FAILED" in expected, name
        elif "stream" in name:
            assert "stream" in expected, name


@pytest.mark.slow
def test_the_job_api_keeps_working_beside_the_openai_route(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, workers: dict[int, LocalWorker]
) -> None:
    """Each method's own jobs (prompt/messages for 2, {method, path, body} for 3) have the emulator's shape."""
    config = _project(project / "m3", 3)
    endpoint = json.loads(cli("endpoint", "create", "--json", "--config", config, "--image", IMAGE).stdout)
    base = f"{runpod_emulator.endpoint_url}/{endpoint['endpoint']['endpoint_id']}"
    headers = {"Authorization": f"Bearer {runpod_emulator.api_key}"}
    own_jobs = {
        2: [{"prompt": "Hello", "sampling_params": {"max_tokens": 4}}, {"messages": MESSAGES}],
        3: [
            {"method": "POST", "path": "/v1/chat/completions", "body": {"messages": MESSAGES, "max_tokens": 4}},
            {"method": "GET", "path": "/v1/models"},
        ],
    }
    for method, jobs in own_jobs.items():
        for job in jobs:
            emulated = httpx.post(f"{base}/runsync", json={"input": job}, headers=headers, timeout=30).json()
            local = httpx.post(f"{workers[method].url}/runsync", json={"input": job}, timeout=30).json()
            assert job_shape(platform_view(local)) == job_shape(emulated), job


# --- 4. field for field what vLLM's server writes ---------------------------------------------------

#: Where vLLM 0.27.1 declares the objects its OpenAI server dumps (``model_dump()``).
VLLM_OBJECTS = {
    "ModelCard": "vllm/entrypoints/openai/engine/protocol.py",
    "ModelPermission": "vllm/entrypoints/openai/engine/protocol.py",
    "UsageInfo": "vllm/entrypoints/openai/engine/protocol.py",
    "ChatCompletionResponse": "vllm/entrypoints/openai/chat_completion/protocol.py",
    "ChatCompletionResponseChoice": "vllm/entrypoints/openai/chat_completion/protocol.py",
    "ChatMessage": "vllm/entrypoints/openai/chat_completion/protocol.py",
    "CompletionResponse": "vllm/entrypoints/openai/completion/protocol.py",
    "CompletionResponseChoice": "vllm/entrypoints/openai/completion/protocol.py",
}


def vllm_fields(wheel: Path) -> dict[str, list[str]]:
    """Each class's pydantic fields in declaration order (what model_dump() writes), read with ast."""
    import zipfile

    fields: dict[str, list[str]] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name, path in VLLM_OBJECTS.items():
            tree = ast.parse(archive.read(path).decode("utf-8"))
            [cls] = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name]
            fields[name] = [
                stmt.target.id
                for stmt in cls.body
                if isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and "ClassVar" not in ast.unparse(stmt.annotation)
            ]
    return fields


@pytest.mark.slow
def test_the_answers_carry_vllms_fields_in_vllms_order(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, workers: dict[int, LocalWorker]
) -> None:
    from tests.support.vllm_contract import generator

    gen = generator()
    version = gen.pinned_version()
    cached = sorted(gen.cache_dir().glob(f"vllm-{version}-*.whl"))
    if not cached:  # .ci/run's contracts phase downloads it before the tests
        pytest.skip(f"no vllm-{version} wheel in {gen.cache_dir()}: run scripts/contracts/vllm_surface.py --check once")
    expected = vllm_fields(cached[0])
    # ChatMessage drops tool_calls when it is empty (its model_serializer).
    expected["ChatMessage"].remove("tool_calls")

    config = _project(project / "m2", 2)
    endpoint = json.loads(cli("endpoint", "create", "--json", "--config", config, "--image", IMAGE).stdout)
    base = f"{runpod_emulator.endpoint_url}/{endpoint['endpoint']['endpoint_id']}"
    headers = {"Authorization": f"Bearer {runpod_emulator.api_key}"}
    answerers = {
        "emulator": lambda job: httpx.post(f"{base}/runsync", json={"input": job}, headers=headers, timeout=30),
        **{
            f"method {m}": (lambda job, w=w: httpx.post(f"{w.url}/runsync", json={"input": job}, timeout=30))
            for m, w in workers.items()
        },
    }
    for who, answer in answerers.items():
        [models] = answer(JOBS["models"]).json()["output"]
        [chat] = answer(JOBS["chat"]).json()["output"]
        [text] = answer(JOBS["completion"]).json()["output"]
        seen = {
            "ModelCard": list(models["data"][0]),
            "ModelPermission": list(models["data"][0]["permission"][0]),
            "UsageInfo": list(chat["usage"]),
            "ChatCompletionResponse": list(chat),
            "ChatCompletionResponseChoice": list(chat["choices"][0]),
            "ChatMessage": list(chat["choices"][0]["message"]),
            "CompletionResponse": list(text),
            "CompletionResponseChoice": list(text["choices"][0]),
        }
        assert seen == expected, who


# --- 5. a streamed answer goes out while it is generated ------------------------------------------

STREAMING_PROBE = """
import asyncio, json, sys, time
sys.argv = ["handler.py"]
import handler
if hasattr(handler, "build_engine"):
    handler.ENGINE = handler.build_engine()
else:
    handler.api.load_engine()
job = {"id": "probe", "input": {"openai_route": "/v1/chat/completions",
       "openai_input": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True}}}
async def main():
    start, seen = time.monotonic(), []
    async for item in handler.handler(job):
        seen.append([round(time.monotonic() - start, 3), item])
    print(json.dumps(seen))
asyncio.run(main())
"""


@pytest.mark.slow
@pytest.mark.parametrize("method", [2, 3], ids=["custom-handler", "fastapi"])
def test_a_streamed_answer_is_yielded_while_it_is_generated(tmp_path: Path, method: int) -> None:
    """The handler yields SSE text per generated token, so RunPod can relay each one at once."""
    import os
    import subprocess
    import sys

    from tests.conftest import STANDINS

    worker = _init(tmp_path, method)
    env = {**os.environ, "PYTHONPATH": f"{STANDINS}{os.pathsep}{worker}", "VLLM_STANDIN_DELAY": "0.3",
           "HF_HUB_CACHE": str(tmp_path / "hub")}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", STREAMING_PROBE], cwd=worker, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert all(isinstance(item, str) for _, item in seen)
    events = sse_events("".join(item for _, item in seen))
    assert events[-1] == "[DONE]" and len(events) >= 6  # role, 5 tokens (the last with finish_reason), [DONE]
    content = [(at, item) for at, item in seen if '"content":"' in item and '"content":""' not in item]
    # Each token left the handler about when the engine made it (0.3 s apart), not all at the end.
    assert len(content) >= 4 and content[-1][0] - content[0][0] >= 0.6, seen
