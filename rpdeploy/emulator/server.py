"""The HTTP front: one ``ThreadingHTTPServer`` routing to the four surfaces.

``POST /graphql``      control plane over GraphQL (``control.py``)
``/v2/serverless...``, ``/v2/templates...``, ``/v2/registries...``, ``/v2/catalog/...``
                       control plane over REST v2 (``rest.py``), the same account state
``/v2/{endpoint}/...``  invoke API (``invoke.py``): any other ``/v2/`` path
``/_emulator/...``     admin API: state, request log, fault switches, reset

REST v2 takes the key in ``Authorization: Bearer`` only (RunPod's migration guide) and
answers errors, a missing or wrong key included, as RFC 9457 problem documents; its bodies
have the control plane's 1 MiB limit. :attr:`Emulator.rest_observer`, when set, sees every
REST exchange whole (request headers without the key's value, body, answer), which is how
the tests check each one against RunPod's OpenAPI document.

Every request to the first two is recorded in the :class:`RequestLog` (method, path, query
without ``api_key``, parsed JSON body, GraphQL operation and status) so tests can assert on
what a client sent. Credentials are never recorded: neither the ``Authorization`` header nor
an ``api_key`` query parameter. The admin API wants the same key as the rest (Bearer, bare
or ``?api_key=``), so an emulator bound to a non-loopback address is not an open door.

Hostile requests (``guard.py`` has the limits and why): every route checks the key, GraphQL
after parsing the whole document; a body past its route's size, a JSON body too deep or too
big, a GraphQL document too long, deep or wide, and a malformed admin payload are answered
with a 4xx. Each connection has a socket timeout, at most ``max_connections`` are served at
once (the rest get a 503), and a handler that fails anyway answers 500 and keeps the server
up: no request can take a thread down silently.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from rpdeploy.emulator import control, ids
from rpdeploy.emulator import faults as fault_names
from rpdeploy.emulator import rest as rest_api
from rpdeploy.emulator.faults import FaultError
from rpdeploy.emulator.guard import DEFAULT_LIMITS, Limits, Rejection, check_graphql, parse_json
from rpdeploy.emulator.invoke import Response, error

if TYPE_CHECKING:
    from rpdeploy.emulator.emulator import Emulator

MAX_BODY = 32 * 1024 * 1024
#: The root fields a query without a key may select, if the control plane names them; when it
#: does not, it answers keyless queries itself without an account, and guard.py only keeps
#: keyless writes out (see guard.check_graphql).
PUBLIC_FIELDS: frozenset[str] | None = getattr(control, "PUBLIC_FIELDS", None)
#: Bodies larger than this are recorded in the request log as their size only.
RECORDED_BODY = 1024 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it (never with credentials)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any  # parsed JSON; the raw text when it was not JSON; None when empty
    operation: str | None = None  # GraphQL operation name, else its first top-level field
    fields: tuple[str, ...] = ()  # GraphQL top-level fields
    status: int = 0
    time: str = field(default_factory=ids.timestamp)

    @property
    def variables(self) -> dict[str, Any] | None:
        """The GraphQL variables sent, if any."""
        variables = self.body.get("variables") if isinstance(self.body, dict) else None
        return variables if isinstance(variables, dict) else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "body": self.body,
            "operation": self.operation,
            "fields": list(self.fields),
            "status": self.status,
            "time": self.time,
        }


@dataclass(frozen=True)
class Exchange:
    """One REST v2 request and its answer, whole (for ``Emulator.rest_observer``)."""

    method: str
    path: str
    query: str  # the raw query string
    headers: dict[str, str]  # lower-case names; Authorization's value is masked
    body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes | None  # None for a stream (server-sent events)


class RequestLog:
    """Thread-safe, bounded list of :class:`RecordedRequest`, oldest first."""

    def __init__(self, limit: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._items: deque[RecordedRequest] = deque(maxlen=limit)

    def append(self, item: RecordedRequest) -> None:
        with self._lock:
            self._items.append(item)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def graphql(self, operation: str | None = None) -> list[RecordedRequest]:
        """GraphQL requests, optionally only those whose operation or a top-level field matches."""
        return [
            r
            for r in self.all()
            if r.path == "/graphql" and (operation is None or operation == r.operation or operation in r.fields)
        ]

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.all())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __getitem__(self, index: int) -> RecordedRequest:
        with self._lock:
            return self._items[index]


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a burst of clients would wait in SYN retries.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: Emulator, limits: Limits | None = None) -> None:
        self.emulator = emulator
        self.limits = limits or getattr(emulator, "limits", None) or DEFAULT_LIMITS
        self._slots = threading.BoundedSemaphore(self.limits.max_connections)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # A connection beyond the limit is told so at once, from the accepting thread.
        if not self._slots.acquire(blocking=False):
            body = b'{"error":"too many open connections"}'
            head = (
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            try:
                request.settimeout(1.0)
                request.sendall(head.encode("ascii") + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "rpdeploy-emulator"
    # Headers and body go out in separate writes; with Nagle on, the second one waits for
    # the client's delayed ACK (40 ms a request on Linux).
    disable_nagle_algorithm = True
    sys_version = ""

    # --- plumbing -------------------------------------------------------------------------

    def setup(self) -> None:
        # Per connection: a client that stops sending (or reading) is dropped after this long.
        self.request.settimeout(self.server.limits.socket_timeout)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is the record; stderr stays quiet for tests and the CLI

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _body_limit(self, path: str) -> int:
        limits = self.server.limits
        if path == "/graphql" or rest_api.is_rest(path):
            return limits.graphql_body
        if path.startswith("/_emulator"):
            return limits.admin_body
        return min(limits.invoke_body, MAX_BODY)

    def _read_body(self, limit: int) -> bytes | None:
        """The request body; None when it is larger than ``limit`` or its framing is broken."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length) if len(length) < 20 else -1
        except ValueError:
            return None
        if size < 0 or size > limit:
            return None
        body = self.rfile.read(size)
        return body if len(body) == size else None

    def _read_chunked(self, limit: int) -> bytes | None:
        # Streaming clients (aiohttp with a generator body) send chunked requests; an unread
        # body would corrupt the next request on this keep-alive connection.
        body = bytearray()
        while True:
            line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(line, 16) if len(line) <= 16 else -1
            except ValueError:
                return None
            if size < 0:
                return None
            if size == 0:
                for _ in range(100):
                    if not self.rfile.readline(1024).strip():
                        return bytes(body)  # after the trailers
                return None
            if len(body) + size > limit:
                return None
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                return None
            body += chunk
            self.rfile.readline(1024)  # the CRLF after each chunk

    def _key(self, query: dict[str, str]) -> str | None:
        header = self.headers.get("Authorization")
        if header:
            scheme, _, rest = header.strip().partition(" ")
            return rest.strip() if scheme.lower() == "bearer" and rest else header.strip()
        return query.get("api_key")

    def _linger(self, most: int = 64 * 1024 * 1024, seconds: float = 2.0) -> None:
        """After refusing a body we did not read: let the client finish sending it, then close.

        Closing with unread data makes the kernel reset the connection, and a client that is
        still sending would see the reset instead of our 413 (the "lingering close" of web servers).
        """
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.request.shutdown(socket.SHUT_WR)
            self.request.settimeout(0.5)
            deadline = time.monotonic() + seconds
            drained = 0
            while drained < most and time.monotonic() < deadline:
                chunk = self.request.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)

    def _authorized(self, key: str | None) -> bool:
        expected = self.server.emulator.api_key
        return key is not None and hmac.compare_digest(key.encode("utf-8", "replace"), expected.encode("utf-8"))

    def _dispatch(self, method: str) -> None:
        try:
            self._route(method)
        except (TimeoutError, ConnectionError):
            # The client stalled mid-body (the socket timeout) or went away: nothing to answer.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(error(408, "request timed out"))
        except Exception:  # a bug in a handler: answer, log it, keep serving
            sys.stderr.write("rpdeploy emulator: a request handler failed:\n" + traceback.format_exc())
            self.close_connection = True
            with contextlib.suppress(Exception):
                self._send(error(500, "internal error in the emulator"))

    def _route(self, method: str) -> None:
        emulator = self.server.emulator
        url = urlsplit(self.path)
        path = unquote(url.path)
        try:
            query = dict(parse_qsl(url.query, keep_blank_values=True, max_num_fields=100))
        except ValueError:
            self._send(error(400, "too many query parameters"))
            return
        raw = self._read_body(self._body_limit(path))
        if raw is None:
            self._send(error(413, "request body too large, or without a valid length or chunked framing"))
            self.close_connection = True
            self._linger()
            return
        key = self._key(query)
        public_query = {k: v for k, v in query.items() if k != "api_key"}
        data, rejected = parse_json(raw, self.server.limits)

        if path.startswith("/_emulator/") or path == "/_emulator":
            if not self._authorized(key):
                self._send(error(401, "Unauthorized: the admin API takes the emulator's API key"))
            elif rejected is not None:
                self._send(error(rejected.status, rejected.message))
            else:
                self._send(self._admin(method, path, data))
            return

        operation: str | None = None
        fields: tuple[str, ...] = ()
        if path == "/graphql":
            response, operation, fields = self._graphql(method, raw, data, rejected, key)
        elif rest_api.is_rest(path):
            operation = emulator.rest.operation(method, path)
            response = self._rest(method, path, public_query, raw, data, rejected)
            observer = getattr(emulator, "rest_observer", None)
            if observer is not None:
                exchange = self._exchange(method, url.query, raw, response)
                if response.stream is None:
                    observer(exchange)
                else:
                    response = Response(response.status, response.body, response.headers,
                                        _tee(response.stream, exchange, observer))  # fmt: skip
        elif path.startswith("/v2/") and len(path.split("/")) >= 4:
            if not self._authorized(key):
                response = error(401, "Unauthorized")
            elif rejected is not None:
                response = error(rejected.status, rejected.message)
            else:
                parts = [p for p in path.split("/")[2:] if p != ""]
                response = emulator.invoke.handle(method, parts, public_query, raw)
        else:
            response = error(404, f"no route {method} {path}")
        emulator.requests.append(
            RecordedRequest(
                method=method,
                path=path,
                query=public_query,
                body=_recorded(raw, data),
                operation=operation,
                fields=fields,
                status=response.status,
            )
        )
        self._send(response)

    def _graphql(
        self, method: str, raw: bytes, data: Any, rejected: Rejection | None, key: str | None
    ) -> tuple[Response, str | None, tuple[str, ...]]:
        emulator = self.server.emulator
        faults = emulator.faults
        if method != "POST":
            return error(405, "POST a GraphQL request to /graphql"), None, ()
        if key is not None and not self._authorized(key):
            return Response(401, {"errors": [{"message": "Unauthorized"}]}), None, ()
        if rejected is not None:
            status = rejected.status if key is not None else 401
            return Response(status, {"errors": [{"message": rejected.message if key else "Unauthorized"}]}), None, ()
        # Infrastructure faults come first: a proxy or rate limiter answers before GraphQL.
        if faults.take(fault_names.GRAPHQL_RETIRED) is not None:
            # "stops serving traffic and returns 410 Gone" (RunPod's announcement, dstack issue 4167).
            return Response(410, {"errors": [{"message": "Gone"}]}), None, ()
        limited = faults.take(fault_names.GRAPHQL_RATE_LIMIT)
        if limited is not None:
            after = str(max(0, round(limited.retry_after or 0)))
            body = {"errors": [{"message": "Too Many Requests"}]}
            return Response(429, body, (("Retry-After", after),)), None, ()
        broken = faults.take(fault_names.GRAPHQL_HTTP_STATUS)
        if broken is not None:
            status = broken.status or 503
            return Response(status, {"errors": [{"message": HTTPStatus(status).phrase}]}), None, ()
        slow = faults.take(fault_names.GRAPHQL_DELAY)
        if slow is not None and slow.seconds:
            time.sleep(slow.seconds)
        # Authorization and limits on the whole document, fragments resolved, before graphql-core sees it.
        refused = check_graphql(
            data, authorized=key is not None, public_fields=PUBLIC_FIELDS, limits=self.server.limits
        )
        if refused is not None:
            return Response(refused.status, {"errors": [{"message": refused.message}]}), None, ()
        answer = emulator.control.handle(raw, key=key, expected_key=emulator.api_key)
        return Response(answer.status, answer.body, answer.headers), answer.operation, answer.fields

    def _rest(
        self, method: str, path: str, query: dict[str, str], raw: bytes, data: Any, rejected: Rejection | None
    ) -> Response:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.strip().partition(" ")
        if not header:
            return rest_api.problem(401, "missing bearer token")
        if scheme.lower() != "bearer" or not self._authorized(token.strip()):
            return rest_api.problem(401, "invalid bearer token")
        if rejected is not None:
            return rest_api.problem(rejected.status, rejected.message)
        operation = self.server.emulator.rest.operation(method, path)
        injected = self.server.emulator.faults.take(fault_names.REST_ERRORS, operations=[operation or ""])
        if injected is not None:
            return rest_api.problem(injected.status or 500, injected.message or "")
        headers = {name.lower(): value for name, value in self.headers.items()}
        return self.server.emulator.rest.handle(method, path, query, data, raw, headers)

    def _exchange(self, method: str, query: str, raw: bytes, response: Response) -> Exchange:
        headers = {name.lower(): value for name, value in self.headers.items()}
        if "authorization" in headers:
            scheme, _, _ = headers["authorization"].partition(" ")
            headers["authorization"] = f"{scheme} <masked>"
        answer = dict(response.headers)
        if response.stream is None and response.status != 204:
            answer.setdefault("Content-Type", "application/json")
        body = (
            None
            if response.stream is not None
            else b""
            if response.status == 204
            else json.dumps(response.body).encode()
        )
        return Exchange(method, self.path.split("?", 1)[0], query, headers, raw, response.status, answer, body)

    def _admin(self, method: str, path: str, body: Any) -> Response:
        emulator = self.server.emulator
        route = path.removeprefix("/_emulator").strip("/")
        if (method, route) == ("GET", "state"):
            return Response(200, emulator.state.snapshot())
        if (method, route) == ("GET", "requests"):
            return Response(200, {"requests": [r.to_dict() for r in emulator.requests]})
        if (method, route) == ("DELETE", "requests"):
            emulator.requests.clear()
            return Response(200, {"requests": []})
        if (method, route) == ("GET", "faults"):
            return Response(200, {"faults": emulator.faults.to_list()})
        if (method, route) == ("POST", "faults"):
            try:
                emulator.faults.apply(body)
            except (FaultError, TypeError, ValueError) as exc:
                return error(400, str(exc)[:500])
            return Response(200, {"faults": emulator.faults.to_list()})
        if (method, route) == ("DELETE", "faults"):
            emulator.faults.clear()
            return Response(200, {"faults": []})
        if (method, route) == ("POST", "reset"):
            emulator.reset()
            return Response(200, {"reset": True})
        if (method, route) == ("POST", "network-volumes"):
            usage = 'POST {"name": "...", "size"?: GB (1-100000), "dataCenterId"?: "..."}'
            if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not 0 < len(body["name"]) <= 200:
                return error(400, usage)
            size = body.get("size", 50)
            center = body.get("dataCenterId", "EU-RO-1")
            if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= 100_000:
                return error(400, usage)
            if not isinstance(center, str) or not 0 < len(center) <= 64:
                return error(400, usage)
            volume = emulator.state.add_network_volume(body["name"], size, center)
            return Response(
                200,
                {
                    "id": volume.id,
                    "name": volume.name,
                    "size": volume.size,
                    "dataCenterId": volume.data_center_id,
                },
            )
        return error(404, f"no admin route {method} /_emulator/{route}")

    def _send(self, response: Response) -> None:
        headers = dict(response.headers)
        if response.stream is not None:
            # Server-sent events: no length known up front, so the body ends when we close.
            self.send_response(response.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for chunk in response.stream:
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except OSError:  # the client went away, or stopped reading (socket timeout)
                pass
            return
        payload = b"" if response.status == 204 else json.dumps(response.body).encode("utf-8")
        self.send_response(response.status)
        if response.status != 204:
            headers.setdefault("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except OSError:  # the client went away, or stopped reading (socket timeout)
            self.close_connection = True


def _tee(stream: Iterator[bytes], exchange: Exchange, observer: Callable[[Exchange], None]) -> Iterator[bytes]:
    """Pass a stream on, keeping its first bytes; the observer sees them when it ends."""
    from dataclasses import replace

    kept = bytearray()
    try:
        for chunk in stream:
            if len(kept) < RECORDED_BODY:
                kept.extend(chunk)
            yield chunk
    finally:
        observer(replace(exchange, response_body=bytes(kept)))


def _recorded(raw: bytes, data: Any) -> Any:
    """What the request log keeps of a body: its JSON, else its text; a large one by its size only."""
    if not raw:
        return None
    if len(raw) > RECORDED_BODY:
        return f"<{len(raw)} bytes>"
    if data is not None:
        return data
    return raw.decode("utf-8", errors="replace")
