"""Stand-in for the Spring Boot backend that calls RunPod (runs in rpdeploy-test/systemd-host).

It reads the same environment a Spring Boot app would get from its EnvironmentFile or a systemd
drop-in (RUNPOD_ENDPOINT_URL, RUNPOD_ENDPOINT_ID, RUNPOD_API_KEY) and shows what it got on
GET /actuator/health, the key only as a SHA-256 so tests can compare it without it ever
appearing in a response or a log. GET /actuator/info tells the pid and start time, so a test
can prove a restart happened.

POST /api/chat {"message": "..."} is the app's own API, the one the seed's Spring Boot service
serves: it calls the endpoint with the env it was started with, as a RestTemplate built from
runpod.endpoint.url and ${RUNPOD_API_KEY} would (POST {url}/chat/completions, Bearer key), and
answers {"answer", "model", "release"} (release: the answer's system_fingerprint), or 502 with
what RunPod said when the call fails. rpdeploy's integration test goes through it.

Like a Spring app with a bad property, it exits non-zero before it is ready when
RUNPOD_ENDPOINT_URL is set (non-empty) but not an http(s) URL: the unit is Type=notify, so
`systemctl restart spring-boot` then fails and the unit is left failed. Empty values count as unset.
Standard library only: the image's python3, no packages.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _notify(state: str) -> None:
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(state.encode(), address)


def ask_runpod(url: str | None, key: str | None, message: str) -> tuple[int, dict[str, Any]]:
    """The app's one use of the endpoint: an OpenAI chat completion. (status, JSON to answer)."""
    if url is None:
        return 503, {"error": "runpod.endpoint.url is not set"}
    body = json.dumps({"messages": [{"role": "user", "content": message}], "max_tokens": 16}).encode()
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(f"{url.rstrip('/')}/chat/completions", data=body, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as response:
            completion = json.loads(response.read())
    except urllib.error.HTTPError as error:
        # What a RestTemplate's HttpClientErrorException carries: the status and RunPod's body.
        detail = error.read()[:300].decode(errors="replace")
        return 502, {"error": f"RunPod answered HTTP {error.code}", "detail": detail}
    except (OSError, ValueError) as error:
        return 502, {"error": f"RunPod call failed: {type(error).__name__}: {error}"}
    choice = (completion.get("choices") or [{}])[0]
    answer = (choice.get("message") or {}).get("content")
    return 200, {"answer": answer, "model": completion.get("model"), "release": completion.get("system_fingerprint")}


def main() -> int:
    url = _env("RUNPOD_ENDPOINT_URL")
    if url is not None and not _is_http_url(url):
        # The URL is not a secret; the key is never printed.
        sys.stderr.write(f"APPLICATION FAILED TO START: runpod.endpoint.url is not an http(s) URL: {url!r}\n")
        return 1
    key = _env("RUNPOD_API_KEY")
    endpoint_id = _env("RUNPOD_ENDPOINT_ID")
    health = {
        "status": "UP",
        "runpod": {
            "endpointUrl": url,
            "endpointId": endpoint_id,
            "apiKeySha256": hashlib.sha256(key.encode()).hexdigest() if key is not None else None,
        },
    }
    info = {"pid": os.getpid(), "startedAt": time.time()}
    bodies = {"/actuator/health": json.dumps(health).encode(), "/actuator/info": json.dumps(info).encode()}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            body = bodies.get(self.path.split("?", 1)[0])
            self._answer(200 if body is not None else 404, body or b"")

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/api/chat":
                self._answer(404, b"")
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                request = json.loads(self.rfile.read(length) or b"{}")
                message = str(request["message"])
            except (ValueError, KeyError, TypeError):
                self._answer(400, json.dumps({"error": 'send {"message": "..."}'}).encode())
                return
            status, answer = ask_runpod(url, key, message)
            self._answer(status, json.dumps(answer).encode())

        def log_message(self, format: str, *args: object) -> None:  # quiet: the journal needs no access log
            pass

    port = int(os.environ.get("SERVER_PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    print(
        f"Started on port {port}: endpoint url={url}, endpoint id={endpoint_id}, "
        f"api key {'set' if key is not None else 'not set'}",
        flush=True,
    )
    _notify("READY=1")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
