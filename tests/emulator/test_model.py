"""The stand-in model answers in the shape of each method's worker, and the OpenAI routes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from emulator_support import MODEL, OWN_IMAGE, Api

from rpdeploy.emulator import Emulator, model

CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is RunPod?"}]}


def runsync(api: Api, endpoint_id: str, job_input: dict[str, Any]) -> dict[str, Any]:
    response = api.invoke("POST", endpoint_id, "runsync", json={"input": job_input})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def vllm(api: Api) -> str:
    endpoint_id: str = api.endpoint(name="method-1", env=[{"key": "MODEL_NAME", "value": MODEL}])["id"]
    return endpoint_id


@pytest.fixture
def own(api: Api) -> str:
    endpoint_id: str = api.endpoint(name="method-2-3", image=OWN_IMAGE, env=[{"key": "MODEL_NAME", "value": MODEL}])[
        "id"
    ]
    return endpoint_id


# --- the text itself -------------------------------------------------------------------------------


def test_answer_is_deterministic_and_truncated_to_max_tokens() -> None:
    full = model.generate("What is RunPod?", None)
    again = model.generate("What is RunPod?", None)
    other = model.generate("Something else entirely", None)
    short = model.generate("What is RunPod?", 3)

    assert full == again and full.text != other.text
    assert full.finish_reason == "stop" and full.completion_tokens == len(full.text.split())
    assert short.words == full.words[:3] and short.finish_reason == "length"
    assert short.usage() == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert "".join(full.deltas()) == full.text


def test_served_model_name_prefers_the_override() -> None:
    vllm = model.WorkerKind.WORKER_VLLM
    assert model.served_model_name(vllm, {"MODEL_NAME": "a/b", "OPENAI_SERVED_MODEL_NAME_OVERRIDE": "c"}) == "c"
    assert model.served_model_name(vllm, {"MODEL_NAME": "a/b"}) == "a/b"
    assert model.worker_kind("docker.io/runpod/worker-v1-vllm:v2.24.0") is vllm
    assert model.worker_kind("acme/runpod-worker-v1-vllm:1") is model.WorkerKind.OWN_IMAGE


# --- method 1: worker-vllm ------------------------------------------------------------------------


def test_method_1_native_messages(api: Api, vllm: str) -> None:
    body = runsync(api, vllm, {**CHAT, "sampling_params": {"max_tokens": 5, "temperature": 0}})

    output = body["output"]
    assert isinstance(output, list) and len(output) == 1
    completion = output[0]
    assert completion["object"] == "chat.completion" and completion["model"] == MODEL
    assert completion["id"].startswith("chatcmpl-")
    choice = completion["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == model.generate("Be brief.\nWhat is RunPod?", 5).text
    assert choice["finish_reason"] == "length"
    # vLLM's UsageInfo, fields in its order (vllm/entrypoints/openai/engine/protocol.py).
    assert completion["usage"] == {
        "prompt_tokens": 5,
        "total_tokens": 10,
        "completion_tokens": 5,
        "prompt_tokens_details": None,
    }


def test_method_1_native_prompt(api: Api, vllm: str) -> None:
    completion = runsync(api, vllm, {"prompt": "Hello"})["output"][0]

    assert completion["object"] == "text_completion"
    assert completion["choices"][0]["text"] == model.generate("Hello", 16).text
    assert completion["choices"][0]["finish_reason"] == "stop"


def test_method_1_openai_passthrough_and_models(api: Api, vllm: str) -> None:
    chat = runsync(api, vllm, {"openai_route": "/v1/chat/completions", "openai_input": {"model": MODEL, **CHAT}})
    models = runsync(api, vllm, {"openai_route": "/v1/models"})

    assert chat["output"][0]["object"] == "chat.completion"
    assert models["output"] == [
        {"object": "list", "data": [{**models["output"][0]["data"][0], "id": MODEL, "object": "model"}]}
    ]


def test_method_1_stream_yields_sse_text(api: Api, vllm: str) -> None:
    output = runsync(api, vllm, {**CHAT, "stream": True})["output"]

    assert all(isinstance(chunk, str) and chunk.startswith("data: ") and chunk.endswith("\n\n") for chunk in output)
    assert output[-1] == "data: [DONE]\n\n"
    events = [json.loads(chunk[len("data: ") :]) for chunk in output[:-1]]
    assert {event["object"] for event in events} == {"chat.completion.chunk"}
    text = "".join(event["choices"][0]["delta"].get("content", "") for event in events)
    assert text == model.generate("Be brief.\nWhat is RunPod?", None).text


def test_method_1_worker_errors_fail_the_job(api: Api, vllm: str) -> None:
    """worker-vllm yields {"error": {...}}; runpod 1.12.0 fails the job with str() of the inner dict."""
    wrong_model = runsync(
        api, vllm, {"openai_route": "/v1/chat/completions", "openai_input": {"model": "other/model", **CHAT}}
    )
    unsupported = runsync(api, vllm, {"text": "neither prompt nor messages"})

    assert wrong_model["status"] == "FAILED" and "output" not in wrong_model
    vllm_body = (
        '{"error":{"message":"The model `other/model` does not exist.","type":"NotFoundError",'
        '"param":"model","code":404}}'
    )
    expected = {"message": f"vLLM returned HTTP 404: {vllm_body}", "type": "worker_error", "code": None}
    assert wrong_model["error"] == str(expected)
    assert unsupported["status"] == "FAILED"
    assert unsupported["error"].startswith("{'message': 'Job input must contain one of: openai_input")
    assert unsupported["error"].endswith("'type': 'worker_error', 'code': None}")


# --- method 2: our handler ---------------------------------------------------------------------------


def test_method_2_prompt(api: Api, own: str) -> None:
    output = runsync(api, own, {"prompt": "Hello there", "sampling_params": {"max_tokens": 100}})["output"]

    expected = model.generate("Hello there", 100)
    assert output == [
        {
            "text": expected.text,
            "finish_reason": "stop",
            "model": MODEL,
            "usage": {
                "prompt_tokens": 2,
                "completion_tokens": expected.completion_tokens,
                "total_tokens": 2 + expected.completion_tokens,
            },
            "release": None,  # no RPDEPLOY_RELEASE on this template (see the release tests below)
        }
    ]


def test_method_2_messages_streaming_deltas(api: Api, own: str) -> None:
    output = runsync(api, own, {**CHAT, "sampling_params": {"max_tokens": 4}, "stream": True})["output"]

    assert output[:-1] == [
        {"text": piece, "finish_reason": None} for piece in model.generate("Be brief.\nWhat is RunPod?", 4).deltas()
    ]
    assert output[-1] == {
        "text": "",
        "finish_reason": "length",
        "model": MODEL,
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
        "release": None,
    }


@pytest.mark.parametrize(
    ("job_input", "message"),
    [
        ({"text": "x"}, "'prompt'"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "sampling_params": {"max_tokens": 0}}, "max_tokens"),
        ({"prompt": "x", "stream": "yes"}, "stream"),
        ({"messages": "not a list"}, "messages"),
    ],
)
def test_method_2_invalid_input_fails_the_job(api: Api, own: str, job_input: dict[str, Any], message: str) -> None:
    body = runsync(api, own, job_input)

    assert body["status"] == "FAILED"
    assert message in body["error"]
    assert "output" not in body


# --- method 3: FastAPI app behind a handler ------------------------------------------------------------


def test_method_3_chat_completion(api: Api, own: str) -> None:
    [output] = runsync(api, own, {"method": "POST", "path": "/v1/chat/completions", "body": {"model": MODEL, **CHAT}})[
        "output"
    ]

    assert output["status_code"] == 200
    assert output["headers"] == {"content-type": "application/json"}
    assert output["body"]["object"] == "chat.completion"
    assert output["body"]["choices"][0]["message"]["content"] == model.generate("Be brief.\nWhat is RunPod?", None).text


@pytest.mark.parametrize(
    ("request_input", "status", "check"),
    [
        ({"method": "GET", "path": "/v1/models"}, 200, lambda b: b["data"][0]["id"] == MODEL),
        ({"method": "GET", "path": "/health"}, 200, lambda b: b == {"status": "ok"}),
        (
            {"method": "POST", "path": "/v1/completions", "body": {"prompt": "Hi"}},
            200,
            lambda b: b["object"] == "text_completion",
        ),
        ({"method": "GET", "path": "/nope"}, 404, lambda b: b == {"detail": "Not Found"}),
        ({"method": "GET", "path": "/v1/chat/completions"}, 405, lambda b: "detail" in b),
        (
            {"method": "POST", "path": "/v1/chat/completions", "body": {"messages": []}},
            400,
            lambda b: b["error"]["type"] == "BadRequestError",
        ),
    ],
)
def test_method_3_routes(api: Api, own: str, request_input: dict[str, Any], status: int, check: Any) -> None:
    [output] = runsync(api, own, request_input)["output"]

    assert output["status_code"] == status
    assert check(output["body"])


def test_method_3_without_path_fails(api: Api, own: str) -> None:
    body = runsync(api, own, {"method": "POST", "body": {}})
    assert body["status"] == "FAILED" and "path" in body["error"]


# --- /openai/v1 routes ---------------------------------------------------------------------------------


def test_openai_models_route(api: Api, vllm: str) -> None:
    response = api.invoke("GET", vllm, "openai/v1/models")

    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == [MODEL]
    assert body["data"][0]["object"] == "model"


def test_openai_chat_and_completions(api: Api, emulator: Emulator, vllm: str) -> None:
    chat = api.invoke("POST", vllm, "openai/v1/chat/completions", json={"model": MODEL, **CHAT, "max_tokens": 3})
    text = api.invoke("POST", vllm, "openai/v1/completions", json={"model": MODEL, "prompt": "Once upon"})

    assert chat.status_code == 200 and chat.headers["content-type"] == "application/json"
    assert chat.json()["choices"][0]["finish_reason"] == "length"
    assert chat.json()["usage"]["completion_tokens"] == 3
    assert text.json()["object"] == "text_completion"
    # The platform turned each request into a job, as RunPod does.
    jobs = [job for job in emulator.state.jobs.values() if job.endpoint_id == vllm]
    assert [job.input["openai_route"] for job in jobs] == ["/v1/chat/completions", "/v1/completions"]
    assert jobs[0].input["openai_input"]["max_tokens"] == 3


def test_openai_errors(api: Api, own: str, vllm: str) -> None:
    wrong_model = api.invoke("POST", vllm, "openai/v1/chat/completions", json={"model": "nope", **CHAT})
    own_wrong_model = api.invoke("POST", own, "openai/v1/chat/completions", json={"model": "nope", **CHAT})
    unknown = api.invoke("GET", vllm, "openai/v1/embeddings")
    no_body = api.invoke("POST", vllm, "openai/v1/chat/completions", content=b"[]")

    # The job failed; the answer is vLLM's own error, as the worker got it.
    assert wrong_model.status_code == 404 and wrong_model.json()["error"]["type"] == "NotFoundError"
    assert own_wrong_model.status_code == 404 and own_wrong_model.json() == wrong_model.json()
    assert unknown.status_code == 404
    assert no_body.status_code == 400


def test_own_image_endpoints_serve_the_openai_route(api: Api, own: str, vllm: str) -> None:
    """Methods 2 and 3 answer RunPod's OpenAI route like worker-vllm: one backend URL for all."""
    for endpoint_id in (own, vllm):
        models = api.invoke("GET", endpoint_id, "openai/v1/models")
        chat = api.invoke("POST", endpoint_id, "openai/v1/chat/completions", json={"model": MODEL, **CHAT})
        assert models.status_code == 200 and [m["id"] for m in models.json()["data"]] == [MODEL]
        assert chat.status_code == 200 and chat.json()["object"] == "chat.completion"
    passthrough = runsync(api, own, {"openai_route": "/v1/completions", "openai_input": {"prompt": "Hi"}})
    assert passthrough["output"][0]["object"] == "text_completion"


def test_openai_worker_error(api: Api, emulator: Emulator, vllm: str) -> None:
    emulator.faults.job_error_output("engine crashed", endpoint_id=vllm)

    response = api.invoke("POST", vllm, "openai/v1/chat/completions", json={"model": MODEL, **CHAT})

    assert response.status_code == 500
    assert response.json() == {"error": {"message": "engine crashed", "type": "worker_error", "code": None}}


def test_openai_chat_stream_is_server_sent_events(api: Api, emulator: Emulator, vllm: str) -> None:
    emulator.faults.execution_time(0.3, endpoint_id=vllm)
    body = {"model": MODEL, **CHAT, "stream": True, "stream_options": {"include_usage": True}}

    reads: list[str] = []
    with api.http.stream("POST", f"/v2/{vllm}/openai/v1/chat/completions", json=body, headers=api.headers) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for text in resp.iter_text():
            reads.append(text)
    raw = "".join(reads)

    assert len(reads) > 1  # arrived in pieces, not as one body
    assert raw.endswith("data: [DONE]\n\n")
    events = [json.loads(block[len("data: ") :]) for block in raw.split("\n\n") if block and block != "data: [DONE]"]
    content = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert content == model.generate("Be brief.\nWhat is RunPod?", None).text
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == len(content.split())


def test_openai_completions_stream(api: Api, vllm: str) -> None:
    body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 4, "stream": True}

    with api.http.stream("POST", f"/v2/{vllm}/openai/v1/completions", json=body, headers=api.headers) as resp:
        raw = resp.read().decode()

    blocks = [block for block in raw.split("\n\n") if block]
    assert blocks[-1] == "data: [DONE]"
    events = [json.loads(block[len("data: ") :]) for block in blocks[:-1]]
    assert "".join(e["choices"][0]["text"] for e in events) == model.generate("Once upon a time", 4).text
    assert events[-1]["choices"][0]["finish_reason"] == "length"


# --- which release answered (rpdeploy/runpod/release.py) ------------------------------------------------------

RELEASE = "rel-0123456789ab-cdef01234567"


def _events(raw: str) -> list[Any]:
    blocks = [block[len("data: ") :] for block in raw.split("\n\n") if block]
    return [block if block == "[DONE]" else json.loads(block) for block in blocks]


def test_method_1_names_the_release_vllm_is_given(api: Api) -> None:
    """worker-vllm passes VLLM_EXTRA_ARGS to `vllm serve`; --fingerprint-mode custom writes the value."""
    extra = f"--max-num-batched-tokens 512 --fingerprint-mode custom --fingerprint-value {RELEASE}"
    named = api.endpoint(name="m1-named", env=[{"key": "VLLM_EXTRA_ARGS", "value": extra}])["id"]
    overridden = api.endpoint(
        name="m1-overridden", env=[{"key": "VLLM_EXTRA_ARGS", "value": f"{extra} --fingerprint-mode=none"}]
    )["id"]
    plain = api.endpoint(name="m1-plain", env=[])["id"]

    chat = runsync(api, named, CHAT)["output"][0]
    openai = api.invoke("POST", named, "openai/v1/completions", json={"prompt": "Hi", "max_tokens": 2}).json()
    assert chat["system_fingerprint"] == openai["system_fingerprint"] == RELEASE
    # argparse keeps the last occurrence: the user's own mode wins over rpdeploy's.
    assert runsync(api, overridden, CHAT)["output"][0]["system_fingerprint"] is None
    assert runsync(api, plain, CHAT)["output"][0]["system_fingerprint"] is None


def test_methods_2_and_3_name_their_release_in_every_answer(api: Api) -> None:
    endpoint_id = api.endpoint(
        name="own-named",
        image=OWN_IMAGE,
        env=[{"key": "MODEL_NAME", "value": MODEL}, {"key": "RPDEPLOY_RELEASE", "value": RELEASE}],
    )["id"]

    assert runsync(api, endpoint_id, {"prompt": "Hi"})["output"][-1]["release"] == RELEASE
    streamed = runsync(api, endpoint_id, {"prompt": "Hi", "stream": True})["output"]
    assert [item.get("release") for item in streamed] == [None] * (len(streamed) - 1) + [RELEASE]
    [app] = runsync(api, endpoint_id, {"method": "POST", "path": "/v1/chat/completions", "body": CHAT})["output"]
    assert app["headers"]["x-rpdeploy-release"] == RELEASE and app["body"]["system_fingerprint"] == RELEASE

    chat = api.invoke("POST", endpoint_id, "openai/v1/chat/completions", json={**CHAT, "max_tokens": 3})
    assert chat.json()["system_fingerprint"] == RELEASE
    # A stream names it on its last chunk, or on the usage chunk when one follows (vLLM 0.27.1).
    for usage in (False, True):
        body = {**CHAT, "max_tokens": 3, "stream": True, "stream_options": {"include_usage": usage}}
        with api.http.stream(
            "POST", f"/v2/{endpoint_id}/openai/v1/chat/completions", json=body, headers=api.headers
        ) as resp:
            events = _events(resp.read().decode())
        named = [i for i, event in enumerate(events) if isinstance(event, dict) and "system_fingerprint" in event]
        assert named == [len(events) - 2] and events[-2]["system_fingerprint"] == RELEASE, events
        assert ("usage" in events[-2]) is usage
