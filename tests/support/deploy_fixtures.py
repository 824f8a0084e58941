"""Helpers for the end-to-end deploy tests: real docker + registry, the systemd host, the emulator.

A project is written the way `rpdeploy init` writes it (tests.test_build.write_project), with
the image going to the test registry on the local stand-in for vllm/vllm-openai, and, when a
host is given, a ``backend:`` section that reaches the systemd host over SSH. Everything the
deploy needs from the environment (RunPod URLs and key, registry credentials, the SSH config
that trusts only the host's key) is in ``os.environ``, so an in-process run (the ``cli``
fixture) and a subprocess (:class:`DeployProcess`) see the same.

:class:`RegistryGate` is a TCP proxy in front of the registry that a test can close (a
registry that is down: connections refused), or make hang up or stall at the first blob
upload (a push that fails, or a push that is in the middle of sending a layer).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from rpdeploy.backend import host as remote
from rpdeploy.deploy.ledger import Ledger
from rpdeploy.emulator import Emulator
from tests.conftest import CliRunnerFn
from tests.support.services import REPO_ROOT, Registry, SystemdHost
from tests.test_build import write_project

#: The health URL as the host itself sees it (the restart stage polls it on the host).
HOST_HEALTH_URL = "http://127.0.0.1:8080/actuator/health"
ENV_FILE = "/opt/spring-boot/.env"
SYSTEMD_ENV_FILE = "/etc/rpdeploy/spring-boot.env"
ALL_STAGES = (
    "handler",
    "dockerfile",
    "build",
    "push",
    "account",
    "template",
    "gpu",
    "endpoint",
    "smoke-test",  # step 11's endpoint check runs before the backend stages (verify, then cut over)
    "backend-env",
    "backend-restart",
    "integration-test",
)
BUILD_STAGES = ("handler", "dockerfile", "build", "push")
BACKEND_STAGES = ("backend-env", "backend-restart", "integration-test")
DIGEST_REF = re.compile(r"^(?P<name>.+)@(?P<digest>sha256:[0-9a-f]{64})$")
CREDENTIALS = {"username": "REG_USER", "password": "REG_PASS"}


def stages_for(method: int, *, backend: bool) -> list[str]:
    skip = set() if method in (2, 3) else set(BUILD_STAGES)
    if not backend:
        skip |= set(BACKEND_STAGES)
    return [name for name in ALL_STAGES if name not in skip]


# --- projects ---------------------------------------------------------------------------------


def backend_section(host: SystemdHost, *, mode: str = "dotenv", **fields: Any) -> dict[str, Any]:
    return {
        "host": f"root@127.0.0.1:{host.port}",
        "identity_file": str(host.identity_file),
        "mode": mode,
        "health_url": HOST_HEALTH_URL,
        "health_timeout": 20,
        **fields,
    }


def write_deploy_project(
    folder: Path,
    *,
    method: int,
    registry_host: str = "127.0.0.1:5000",
    repository: str = "rpdeploy-e2e/worker",
    base_image: str = "rpdeploy-test/python:1",
    backend: dict[str, Any] | None = None,
    endpoint: dict[str, Any] | None = None,
) -> Path:
    """A project for ``method`` (1, 2 or 3); returns its deploy.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "deploy.yaml"
    if method == 1:
        path.write_text(
            yaml.safe_dump(
                {
                    "method": "worker-vllm",
                    "model": {"name": "Qwen/Qwen2.5-0.5B-Instruct", "max_model_len": 8192},
                    "endpoint": {"name": "e2e-worker", "gpu": "L4", "workers_min": 0, "workers_max": 2},
                },
                sort_keys=False,
            )
        )
    else:
        write_project(
            folder,
            method,
            registry=registry_host,
            repository=repository,
            image={"base_image": base_image, "credentials": CREDENTIALS},
        )
    data = yaml.safe_load(path.read_text())
    data["endpoint"].update(endpoint or {})
    if backend is not None:
        data["backend"] = backend
    data["smoke_test"] = {"max_tokens": 16, "timeout": 60}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def edit_yaml(path: Path, section: str, **changes: Any) -> None:
    data = yaml.safe_load(path.read_text())
    data[section].update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def touch_handler(project: Path, note: str) -> None:
    """A one-line edit of worker/handler.py: a new image (and digest) for the same config."""
    handler = project / "worker" / "handler.py"
    handler.write_text(handler.read_text() + f"\n# {note}\n")


def ledger(project: Path) -> Ledger:
    return Ledger.load(project / ".rpdeploy")


# --- environment --------------------------------------------------------------------------


def ssh_config_for(known_hosts: Path, folder: Path) -> Path:
    path = folder / "ssh_config"
    path.write_text(f"Host *\n  UserKnownHostsFile {known_hosts}\n  GlobalKnownHostsFile /dev/null\n")
    return path


def trust_host(host: SystemdHost, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RPDEPLOY_SSH_CONFIG: an ssh_config that knows only this host's key."""
    monkeypatch.setenv(remote.SSH_CONFIG_ENV, str(ssh_config_for(host.known_hosts_file, folder)))


def registry_env(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """The credentials deploy.yaml references (REG_USER, REG_PASS)."""
    monkeypatch.setenv("REG_USER", registry.username)
    monkeypatch.setenv("REG_PASS", registry.password)


# --- what the real services hold ------------------------------------------------------------


def registry_manifest(registry: Registry, image: str) -> dict[str, Any] | None:
    """The manifest of ``host/repo@sha256:...`` as the registry stores it, or None if it has none."""
    match = DIGEST_REF.match(image)
    assert match, f"not an immutable reference: {image}"
    repository = match["name"].split("/", 1)[1]
    request = urllib.request.Request(
        f"{registry.url}/v2/{repository}/manifests/{match['digest']}",
        headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, "
            "application/vnd.oci.image.manifest.v1+json",
            "Authorization": "Basic " + base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    # A digest reference is only honest if the bytes hash to it.
    assert "sha256:" + hashlib.sha256(body).hexdigest() == match["digest"]
    document: dict[str, Any] = json.loads(body)
    return document


class EngineWatch:
    """The Docker engine's image events about one repository between ``start()`` and ``stop()``.

    The engine is shared with other test sessions, so only events naming ``repository`` count:
    a build tags the image (``tag``), a push says ``push``.
    """

    def __init__(self, client: Any, repository: str) -> None:
        self.client = client
        self.repository = repository
        self.since = 0.0
        self.events: list[dict[str, Any]] = []

    def start(self) -> EngineWatch:
        self.since = time.time()
        self.events = []
        return self

    def stop(self) -> list[dict[str, Any]]:
        until = time.time()
        time.sleep(0.05)  # the engine shares our clock; let its last events land
        # "seconds.nanoseconds": the engine reads the fraction, so `until` is not rounded up
        # into the future (it would wait for it).
        stream = self.client.api.events(
            since=f"{self.since:.9f}", until=f"{until:.9f}", filters={"type": "image"}, decode=True
        )
        self.events = [event for event in stream if self.repository in json.dumps(event.get("Actor", {}))]
        return self.events

    def actions(self) -> list[str]:
        return [str(event.get("Action")) for event in self.events]


def backend_health(host: SystemdHost) -> dict[str, Any]:
    status, body = host.health()
    assert status == 200 and body is not None, f"backend health answered {status}"
    return dict(body["runpod"])


def expected_backend(emulator_endpoint_url: str, endpoint_id: str, api_key: str, *, method: int) -> dict[str, Any]:
    base = f"{emulator_endpoint_url}/{endpoint_id}"
    return {
        "endpointId": endpoint_id,
        "endpointUrl": f"{base}/openai/v1",  # the same for every method
        "apiKeySha256": hashlib.sha256(api_key.encode()).hexdigest(),
    }


def service_pid(host: SystemdHost) -> str:
    code, out = host.exec("systemctl", "show", "-p", "MainPID", "--value", "spring-boot")
    assert code == 0, out
    return out.strip()


def on_host(host: SystemdHost, script: str) -> str:
    code, output = host.exec("sh", "-c", script)
    assert code == 0, output
    return output


# --- failures that say what RunPod saw ------------------------------------------------------


def emulator_log(emulator: Emulator) -> str:
    lines = [
        f"{r.time} {r.method} {r.path} {r.operation or ''} -> {r.status}"
        + (f" {json.dumps(r.body)[:300]}" if r.status >= 400 else "")
        for r in emulator.requests
    ]
    return "\n".join(lines) or "(none)"


@pytest.fixture(name="cli")
def logged_cli(cli: CliRunnerFn, runpod_emulator: Emulator) -> CliRunnerFn:
    """The suite's ``cli``, whose failures also list the requests the emulator received.

    A test module that imports ``logged_cli`` gets it as its ``cli`` fixture.
    """

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return cli(*args, **kwargs)
        except pytest.fail.Exception as exc:
            raise pytest.fail.Exception(
                f"{exc.msg}\n--- requests the emulator at {runpod_emulator.api_url} received\n"
                f"{emulator_log(runpod_emulator)}",
                pytrace=False,
            ) from None

    return run


# --- the --json stream --------------------------------------------------------------------


def parse_events(stdout: str) -> list[dict[str, Any]]:
    """Every line of a `deploy --json` stdout, each one JSON document (NDJSON)."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def statuses(events: list[dict[str, Any]]) -> dict[str, str]:
    """The last status of each stage in an event stream."""
    out: dict[str, str] = {}
    for event in events:
        if event.get("event") == "stage":
            out[event["stage"]] = event["status"]
    return out


# --- a deploy in a subprocess, to be killed -------------------------------------------------


def this_checkout() -> dict[str, str]:
    """PYTHONPATH for a subprocess to import this checkout's rpdeploy, not the one pip installed."""
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(paths)}


class DeployProcess:
    """`python -m rpdeploy deploy --json` in ``project``, its NDJSON events read as they come."""

    def __init__(self, project: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr = project / f"deploy-{time.monotonic_ns()}.stderr"
        self._stderr_handle = open(self._stderr, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpdeploy", "deploy", "--json", *args],
            cwd=project,
            env={**os.environ, **this_checkout(), **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr_handle,
        )
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            if line.strip():
                event = json.loads(line)
                self.events.append(event)
                self._queue.put(event)
        self._queue.put(None)

    def wait_for(self, stage: str, status: str, timeout: float = 120) -> dict[str, Any]:
        """Block until the process reports ``stage`` ``status``; fail if it ends or times out first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                pytest.fail(f"no {stage} {status} within {timeout}s; events: {self.events}\n{self.stderr()}")
            if event is None:
                self.wait()
                pytest.fail(f"deploy ended before {stage} {status}; events: {self.events}\n{self.stderr()}")
            if event.get("event") == "stage" and event.get("stage") == stage:
                if event.get("status") == status:
                    return event
                if event.get("status") == "failed":
                    self.kill()
                    pytest.fail(f"{stage} failed: {event}\n{self.stderr()}")

    def kill(self) -> None:
        """SIGKILL: no handler runs, no finally block, nothing is flushed or released by the process."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.wait()

    def wait(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(10)
        self._stderr_handle.close()
        return code

    def stderr(self) -> str:
        self._stderr_handle.flush()
        return self._stderr.read_text(errors="replace")


# --- a registry that can go down --------------------------------------------------------------

_UPLOAD = re.compile(rb"(?:POST|PATCH|PUT) /v2/[^ ]+/blobs/uploads/")
_MANIFEST_PUT = re.compile(rb"PUT /v2/[^ ]+/manifests/")
_DENIED_BODY = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
_DENIED = (
    b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_DENIED_BODY)).encode() + b"\r\n\r\n" + _DENIED_BODY
)


@dataclass
class RegistryGate:
    """A TCP proxy to the registry on a loopback port of its own.

    ``mode``: ``open`` passes everything; ``deny`` answers the push of a manifest with the
    registry's 403 DENIED (a push that fails for good; reads, logins and layers still work; the
    engine retries a failed layer upload for about a minute, even a denied one, but not a
    manifest); ``stall`` holds a connection that starts a blob upload until :meth:`release` (a
    push in the middle of a layer). ``down()`` closes the port (connection refused) and ``up()``
    opens the same port again.

    Only the thread using a socket closes it, after its last call; other threads only shut it
    down (which wakes a blocked accept or recv). A socket closed under a thread blocked on it
    keeps listening (or reading) in the kernel, and its descriptor number goes to the next
    socket opened (the emulator's, say): that thread would then serve someone else's traffic.
    """

    target: tuple[str, int]
    mode: str = "open"
    port: int = 0
    upload_seen: threading.Event = field(default_factory=threading.Event)
    _released: threading.Event = field(default_factory=threading.Event)
    _server: socket.socket | None = None
    _acceptor: threading.Thread | None = None
    _connections: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(128)
        self.port = int(server.getsockname()[1])
        self._server = server
        self._acceptor = threading.Thread(target=self._accept, args=(server,), daemon=True)
        self._acceptor.start()

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)  # the accepting thread wakes, closes it and ends
            if self._acceptor is not None:
                self._acceptor.join(10)
        with self._lock:
            for sock in self._connections:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def set_mode(self, mode: str) -> None:
        assert mode in ("open", "deny", "stall")
        self.mode = mode
        self.upload_seen.clear()
        self._released.clear()

    def release(self) -> None:
        """Let stalled connections go on (or end: their client may be gone)."""
        self._released.set()

    def _accept(self, server: socket.socket) -> None:
        try:
            while True:
                try:
                    client, _ = server.accept()
                except OSError:
                    return
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()
        finally:
            server.close()

    def _serve(self, client: socket.socket) -> None:
        """One connection: client to registry here, registry to client in a helper thread."""
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        with self._lock:
            self._connections |= {client, upstream}
        back = threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True)
        back.start()
        self._pipe(client, upstream, True)
        back.join()
        with self._lock:
            self._connections -= {client, upstream}
        client.close()
        upstream.close()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        tail = b""
        try:
            while data := source.recv(1 << 16):
                if from_client and self.mode == "deny" and _MANIFEST_PUT.search(tail + data):
                    source.sendall(_DENIED)
                    break
                if from_client and self.mode == "stall" and _UPLOAD.search(tail + data):
                    self.upload_seen.set()
                    self._released.wait()
                tail = data[-64:]
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # Ends the other direction too; the sockets are closed by _serve once both ended.
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def registry_gate(registry: Registry) -> Iterator[RegistryGate]:
    host, port = registry.host.rsplit(":", 1)
    gate = RegistryGate((host, int(port)))
    gate.up()
    try:
        yield gate
    finally:
        gate.release()
        gate.down()


@contextlib.contextmanager
def gated_repository(registry: Registry, docker_client: Any, repository: str) -> Iterator[RegistryGate]:
    """:func:`registry_gate`, then the local images of ``repository`` (pushed through it) removed."""
    with registry_gate(registry) as opened:
        yield opened
        for image in docker_client.images.list(name=f"{opened.host}/{repository}"):
            for ref in image.tags:
                docker_client.images.remove(ref, force=True)
