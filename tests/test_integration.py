"""backend.integration_test: the request, how it is sent (on a host, or from here) and how its answer is judged.

The sending is exercised for real: the host script (rpdeploy.backend.integration._SEND) runs under
``sh`` on this machine through rpdeploy.backend.host.LocalHost, once with curl and once with only
python3 on PATH, against a small HTTP server that records what it received. The SSH path, the
systemd host and the rollback are in tests/test_deploy_e2e_cutover.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from rpdeploy.backend import host as remote
from rpdeploy.backend.integration import _send_on_host, find, judge, run_integration_test
from rpdeploy.config import parse_config
from rpdeploy.errors import ConfigError
from tests.conftest import ROOT

TOKEN = "Bearer integration-token-5e1a9c"


def _config(tmp_path: Path, **test: Any) -> Any:
    document = {
        "method": "worker-vllm",
        "model": {"name": "Qwen/Qwen2.5-7B-Instruct"},
        "endpoint": {"name": "integration"},
        "backend": {
            "integration_test": {"url": "http://127.0.0.1:1/api/chat", "expect": {"json_path": "answer"}, **test}
        },
    }
    path = tmp_path / "deploy.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return parse_config(path.read_text(), path=path)


# --- the answer ---------------------------------------------------------------------------------


def test_paths_into_the_answer() -> None:
    document = {"choices": [{"message": {"content": "hi"}}], "data": {"items": [1, {"x": ""}]}}
    assert find(document, "choices[0].message.content") == (True, "hi")
    assert find(document, "$.choices.0.message.content") == (True, "hi")
    assert find(document, "data.items[1].x") == (True, "")
    assert find(document, "data.items[2]") == (False, None)
    assert find(document, "choices[0].missing") == (False, None)
    assert find([{"a": 1}], "[0].a") == (True, 1)


@pytest.mark.parametrize(
    ("expect", "status", "body", "passed", "says"),
    [
        ({"json_path": "answer"}, 200, {"answer": "hello there"}, True, "answer = 'hello there'"),
        ({"json_path": "answer", "contains": "hello"}, 200, {"answer": "hello"}, True, "contains 'hello'"),
        ({"contains": "hello"}, 200, "say hello", True, "contains 'hello'"),
        ({"json_path": "answer"}, 502, {"error": "RunPod answered HTTP 401"}, False, "expected HTTP 200, got 502"),
        ({"json_path": "answer"}, 200, {"answer": "  "}, False, "answer is empty"),
        ({"json_path": "answer"}, 200, {"other": 1}, False, "has no answer"),
        ({"json_path": "answer"}, 200, "<html>", False, "not JSON"),
        ({"json_path": "answer", "contains": "bye"}, 200, {"answer": "hi"}, False, "does not contain 'bye'"),
        ({"json_path": "answer", "status": 201}, 201, {"answer": "ok"}, True, "answer = 'ok'"),
        ({"json_path": "answer"}, None, b"", False, "did not answer"),
    ],
)
def test_the_answer_is_judged(
    tmp_path: Path, expect: dict[str, Any], status: int | None, body: Any, passed: bool, says: str
) -> None:
    test = _config(tmp_path, expect=expect).backend.integration_test
    raw = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    ok, message = judge(test, status, raw)
    assert (ok, says in message) == (passed, True), message


# --- deploy.yaml --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("test", "problem"),
    [
        ({"headers": {"Authorization": "Bearer abc"}}, "carries a credential but has a literal value"),
        ({"headers": {"X-Api-Key": "abc"}}, "carries a credential"),
        ({"headers": {"X-Ok": "a\nb"}}, "control character"),
        ({"headers": {"Bad Name": "x"}}, "not an HTTP header name"),
        ({"expect": {"status": 200}}, "give json_path or contains"),
        ({"expect": {"json_path": "a b"}}, "is not a path like"),
        ({"url": "ftp://host/x"}, "not an http(s) URL"),
        ({"send_from": "elsewhere"}, "send_from"),
    ],
)
def test_bad_integration_tests_are_config_errors(tmp_path: Path, test: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, **test)
    assert problem in str(caught.value)
    assert "Bearer abc" not in str(caught.value)


def test_the_readme_example_is_valid() -> None:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("backend:\n  host: deploy@ec2") :]
    block = block[: block.index("```")]
    config = parse_config("method: 1\nmodel: {name: Qwen/Qwen2.5-7B-Instruct}\nendpoint: {name: abc}\n" + block)
    test = config.backend.integration_test
    assert test is not None and test.expect.json_path == "answer" and test.send_from.value == "host"


# --- sending it ---------------------------------------------------------------------------------


class Recorder(ThreadingHTTPServer):
    requests: list[dict[str, Any]]
    answer: tuple[int, bytes]


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers.items()), "body": body}
        )
        status, answer = self.server.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = _record

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def backend_api() -> Iterator[Recorder]:
    server = Recorder(("127.0.0.1", 0), _Handler)
    server.requests = []
    server.answer = (200, json.dumps({"answer": "hello from the model"}).encode())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _path_without_curl(tmp_path: Path) -> str:
    """A PATH with the tools the host script uses, python3 included, and no curl."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in ("sh", "dd", "mktemp", "rm", "head", "tr", "cat", "wc", "env"):
        found = shutil.which(tool)
        assert found, tool
        (folder / tool).symlink_to(found)
    # The interpreter itself, not a launcher (a pyenv shim needs more than this PATH holds).
    (folder / "python3").symlink_to(os.path.realpath(sys.executable))
    return str(folder)


@pytest.mark.parametrize("tool", ["curl", "python3"])
def test_on_the_host_the_request_goes_out_with_its_headers_and_body(
    tmp_path: Path, backend_api: Recorder, tool: str
) -> None:
    url = f"http://127.0.0.1:{backend_api.server_address[1]}/api/chat"
    test = _config(
        tmp_path,
        url=url,
        headers={"Authorization": {"env": "BACKEND_TOKEN"}, "X-Request-Id": "itest"},
        body={"message": "hi"},
    ).backend.integration_test
    if tool == "curl" and shutil.which("curl") is None:
        pytest.skip("no curl on this machine")
    environ = {"PATH": os.environ["PATH"] if tool == "curl" else _path_without_curl(tmp_path)}
    headers = {"Authorization": TOKEN, "X-Request-Id": "itest", "Content-Type": "application/json"}

    status, answer, error = _send_on_host(remote.LocalHost(environ=environ), test, headers, b'{"message": "hi"}')

    assert (status, error) == (200, "")
    assert json.loads(answer) == {"answer": "hello from the model"}
    [seen] = backend_api.requests
    assert seen["method"] == "POST" and seen["path"] == "/api/chat" and seen["body"] == b'{"message": "hi"}'
    assert seen["headers"]["Authorization"] == TOKEN and seen["headers"]["X-Request-Id"] == "itest"


def test_from_here_and_judged(tmp_path: Path, backend_api: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{backend_api.server_address[1]}/api/chat"
    config = _config(
        tmp_path, url=url, send_from="local", headers={"Authorization": {"env": "BACKEND_TOKEN"}}, body={"m": 1}
    )
    monkeypatch.setenv("BACKEND_TOKEN", TOKEN)

    result = run_integration_test(config)

    assert result.passed and result.status == 200 and result.where == "from this machine"
    assert result.message == "answer = 'hello from the model'"
    [seen] = backend_api.requests
    assert seen["headers"]["Authorization"] == TOKEN and seen["headers"]["Content-Type"] == "application/json"
    backend_api.answer = (502, json.dumps({"error": f"RunPod answered HTTP 401 ({TOKEN})"}).encode())
    failed = run_integration_test(config)
    assert not failed.passed and failed.status == 502 and "expected HTTP 200, got 502" in failed.message
    assert TOKEN not in failed.describe()  # the answer is shown redacted


def test_no_answer_at_all_is_a_failure_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, url="http://127.0.0.1:1/api/chat", send_from="local")
    result = run_integration_test(config)
    assert not result.passed and result.status is None and "did not answer" in result.message
