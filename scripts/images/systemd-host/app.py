"""Stand-in for the Spring Boot backend that calls RunPod (runs in rpdeploy-test/systemd-host).

It reads the same environment a Spring Boot app would get from its EnvironmentFile or a systemd
drop-in (RUNPOD_ENDPOINT_URL, RUNPOD_ENDPOINT_ID, RUNPOD_API_KEY) and shows what it got on
GET /actuator/health, the key only as a SHA-256 so tests can compare it without it ever
appearing in a response or a log. GET /actuator/info tells the pid and start time, so a test
can prove a restart happened.

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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def main() -> int:
    url = _env("RUNPOD_ENDPOINT_URL")
    if url is not None and not _is_http_url(url):
        # The URL is not a secret; the key is never printed.
        print(f"APPLICATION FAILED TO START: runpod.endpoint.url is not an http(s) URL: {url!r}", file=sys.stderr)
        return 1
    key = _env("RUNPOD_API_KEY")
    health = {
        "status": "UP",
        "runpod": {
            "endpointUrl": url,
            "endpointId": _env("RUNPOD_ENDPOINT_ID"),
            "apiKeySha256": hashlib.sha256(key.encode()).hexdigest() if key is not None else None,
        },
    }
    info = {"pid": os.getpid(), "startedAt": time.time()}
    bodies = {"/actuator/health": json.dumps(health).encode(), "/actuator/info": json.dumps(info).encode()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies.get(self.path.split("?", 1)[0])
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:  # quiet: the journal needs no access log
            pass

    port = int(os.environ.get("SERVER_PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    print(
        f"Started on port {port}: endpoint url={url}, endpoint id={health['runpod']['endpointId']}, "
        f"api key {'set' if key is not None else 'not set'}",
        flush=True,
    )
    _notify("READY=1")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
