"""Every REST v2 exchange with the emulator, checked against RunPod's OpenAPI document.

The document is RunPod's (``runpod/docs`` ``api-reference-v2/openapi.json``, 2026-08-18),
committed as ``rpdeploy/runpod/openapi-v2.json`` and identical to ``../shared/reference/
runpod-openapi-v2.json`` (``tests/test_rest_contract.py`` checks that). The validator is
openapi-core's (an OpenAPI 3.1 request and response validator nobody here wrote): the
request rpdeploy sent (path, query, headers, body) and the answer the emulator gave (status,
body) must both match the operation's schemas. A log stream's events are checked one by one
against the payload the operation documents (``{"source", "line", "ts"}``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

DOCUMENT = Path(__file__).resolve().parents[2] / "rpdeploy" / "runpod" / "openapi-v2.json"
SERVER = "https://api.runpod.io"


@functools.cache
def openapi() -> Any:
    from openapi_core import Config, OpenAPI

    # RFC 9457 problem documents are JSON under their own media type.
    # An SSE stream is text (its schema: a string).
    config = Config(
        extra_media_type_deserializers={
            "application/problem+json": json.loads,
            "text/event-stream": lambda data: data.decode("utf-8") if isinstance(data, bytes) else data,
        }
    )
    return OpenAPI.from_file_path(str(DOCUMENT), config=config)


def _request(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Any:
    from openapi_core.testing import MockRequest

    args = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
    return MockRequest(
        SERVER,
        method.lower(),
        path,
        args=args,
        headers=headers,
        data=body or None,
        content_type=headers.get("content-type") or "application/json",
    )


def _cause(error: BaseException) -> str:
    parts = [f"{type(error).__name__}: {error}"]
    inner = error.__cause__ or error.__context__
    while inner is not None and len(parts) < 4:
        parts.append(f"{type(inner).__name__}: {str(inner)[:600]}")
        inner = inner.__cause__ or inner.__context__
    return " <- ".join(parts)


def check_request(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> str | None:
    """None when the request matches the document; else what is wrong."""
    try:
        openapi().validate_request(_request(method, path, query, headers, body))
    except Exception as exc:  # openapi-core raises its own tree; any of it is a finding
        return _cause(exc)
    return None


def check_sse_events(text: str) -> list[str]:
    """Each event's data must be ``{"source", "line", "ts"}`` and carry an id (getWorkerLogs)."""
    problems = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines if ": " in line)
        if "id" not in fields or "data" not in fields:
            problems.append(f"event without id or data: {block!r}")
            continue
        payload = json.loads(fields["data"])
        if set(payload) != {"source", "line", "ts"} or payload["source"] not in ("container", "system"):
            problems.append(f"event data not as documented: {payload!r}")
    return problems


@dataclass
class RestChecker:
    """``Emulator.rest_observer``: validates each exchange, keeps what failed."""

    problems: list[str] = field(default_factory=list)
    checked: int = 0

    def __call__(self, exchange: Any) -> None:
        from openapi_core.testing import MockResponse

        self.checked += 1
        where = f"{exchange.method} {exchange.path}?{exchange.query} -> {exchange.status}"
        request = _request(exchange.method, exchange.path, exchange.query, exchange.headers, exchange.body)
        if exchange.status < 400:
            # A request the emulator refused may be refused for being invalid: that is its point.
            found = check_request(exchange.method, exchange.path, exchange.query, exchange.headers, exchange.body)
            if found:
                self.problems.append(f"request {where}: {found}\n  body: {exchange.body[:500]!r}")
        headers = {k: v for k, v in exchange.response_headers.items()}
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/json")
        data = exchange.response_body if exchange.response_body is not None else b""
        if content_type.startswith("text/event-stream"):
            self.problems += [f"stream {where}: {p}" for p in check_sse_events(data.decode("utf-8", "replace"))]
            # A stream that ended before its first event is an empty string (the schema's type),
            # which openapi-core reads as no body at all.
            data = data or b"\n"
        response = MockResponse(data, status_code=exchange.status, headers=headers, content_type=content_type)
        try:
            openapi().validate_response(request, response)
        except Exception as exc:
            self.problems.append(f"response {where}: {_cause(exc)}\n  body: {data[:500]!r}")

    def assert_clean(self) -> None:
        assert not self.problems, "REST v2 exchanges that do not match RunPod's OpenAPI document:\n" + "\n".join(
            self.problems
        )
