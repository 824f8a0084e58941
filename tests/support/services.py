"""Real services for the test suite: the Docker engine, the registry, the test images, a systemd host.

Register in tests/conftest.py with ``pytest_plugins = ["tests.support.services"]`` (scripts/test.sh
also loads it with ``-p``). Fixtures:

    docker_client          session  docker SDK client (``docker.from_env()``), pinged
    registry               session  Registry(host, username, password) from the credentials file
    test_images            session  BaseImages: this checkout's image tags (built by scripts/images.sh)
    ssh_client_key         session  SshClientKey: a fresh ed25519 key pair authorised on every systemd host
    systemd_host           function SystemdHost: a fresh container of the systemd-host image, booted,
                                    sshd reachable by key as root and as deploy, health URL answering
    systemd_host_factory   session  context-manager factory for more hosts, or hosts of a wider scope

A service that is missing fails the test when the environment variable CI is set, and skips it
otherwise, with a message saying how to start it (scripts/services.sh).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NoReturn
from urllib.request import HTTPBasicAuthHandler, HTTPPasswordMgrWithDefaultRealm

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STATE_DIR = Path(os.environ.get("RPDEPLOY_TEST_STATE", "/var/lib/rpdeploy-test"))
REGISTRY_ENV = STATE_DIR / "registry.env"
IMAGES_SCRIPT = REPO_ROOT / "scripts" / "images.sh"
# Containers started here carry this label, and the pid of the test process in FIXTURE_LABEL.pid:
# `scripts/services.sh stop` removes those whose test process is gone (a killed run), not others'.
FIXTURE_LABEL = "org.rpdeploy.test.fixture"
HOW_TO_START = "start the test services with `scripts/services.sh` (as root), then run `scripts/test.sh`"
DEPLOY_UID = 1000  # user `deploy` in rpdeploy-test/systemd-host (scripts/images/systemd-host/provision.sh)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def service_missing(reason: str) -> NoReturn:
    """Fail in CI, skip elsewhere: a missing service must never pass unnoticed in CI."""
    message = f"{reason}; {HOW_TO_START}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def http_get(url: str, timeout: float = 5, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    """GET url; (status, body), or (0, b"") when nothing answers. Plain urllib: no extra dependency."""
    handlers = []
    if auth is not None:
        passwords = HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, url, *auth)
        handlers.append(HTTPBasicAuthHandler(passwords))
    try:
        with urllib.request.build_opener(*handlers).open(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


# --- docker -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        import docker
    except ImportError:
        service_missing("the docker SDK is not installed (pip install -e '.[test]')")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        service_missing(f"no Docker engine answers ({exc})")
    yield client
    client.close()


# --- registry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    """The local registry (plain HTTP on loopback, htpasswd auth) that scripts/services.sh runs."""

    host: str  # "127.0.0.1:5000", as used in image references
    username: str
    password: str = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def auth_config(self) -> dict[str, str]:
        """For docker SDK calls: ``client.images.push(ref, auth_config=registry.auth_config)``."""
        return {"username": self.username, "password": self.password}

    def image(self, repository: str, tag: str = "latest") -> str:
        return f"{self.host}/{repository}:{tag}"


def read_registry_env(path: Path = REGISTRY_ENV) -> Registry:
    """Parse the KEY=VALUE credentials file that scripts/services.sh writes."""
    lines = [line for line in path.read_text().splitlines() if "=" in line and not line.startswith("#")]
    values = dict(line.split("=", 1) for line in lines)
    return Registry(values["REGISTRY_HOST"], values["REGISTRY_USERNAME"], values["REGISTRY_PASSWORD"])


@pytest.fixture(scope="session")
def registry() -> Registry:
    try:
        found = read_registry_env()
    except (OSError, KeyError) as exc:
        service_missing(f"no registry credentials in {REGISTRY_ENV} ({exc})")
    status, _ = http_get(f"{found.url}/v2/")
    if status != 401:
        service_missing(f"no registry with auth answers on {found.host} (GET /v2/ -> {status or 'nothing'})")
    status, _ = http_get(f"{found.url}/v2/", auth=(found.username, found.password))
    if status != 200:
        service_missing(f"the registry on {found.host} refuses the credentials in {REGISTRY_ENV} ({status})")
    return found


# --- images -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseImages:
    """Tags of the local base images (scripts/images.sh); none needs Docker Hub.

    The defaults are the :1 tags of the last build; the ``test_images`` fixture gives the tags keyed
    by this checkout's inputs, which another branch's test session cannot replace under it.
    """

    busybox: str = "rpdeploy-test/busybox:1"
    python: str = "rpdeploy-test/python:1"  # stand-in for vllm/vllm-openai: runpod SDK + tests/standins
    systemd_host: str = "rpdeploy-test/systemd-host:1"


@pytest.fixture(scope="session")
def test_images(docker_client: Any) -> BaseImages:
    """Runs scripts/images.sh, which reuses images whose inputs did not change (about a second)."""
    done = subprocess.run(["bash", str(IMAGES_SCRIPT)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
        service_missing(f"scripts/images.sh failed (exit {done.returncode}):\n{tail}\n")
    # stdout is one NAME=IMAGE line per image: busybox=rpdeploy-test/busybox:<key>, ...
    return BaseImages(**dict(line.split("=", 1) for line in done.stdout.split()))


# --- systemd host -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshClientKey:
    private_key: Path
    public_key: str  # one authorized_keys line


@dataclass(frozen=True)
class SystemdHost:
    """A booted container of the rpdeploy-test/systemd-host image, as an EC2 host would be reached.

    Logins by key only: ``root`` and ``deploy`` (passwordless sudo). The Spring Boot stand-in is
    the unit ``spring-boot`` reading ``/opt/spring-boot/.env``; it serves ``health_url``, and
    ``POST /api/chat`` calls the RunPod endpoint its env names (scripts/images/systemd-host/app.py).
    ``gateway`` is this machine's address on the container's network (the docker bridge): a
    server bound there, and only there, is reachable from inside the host container.
    """

    container_id: str
    host: str
    port: int
    user: str
    identity_file: Path
    known_hosts_line: str
    known_hosts_file: Path
    http_port: int
    health_url: str
    service: str = "spring-boot"
    env_file: str = "/opt/spring-boot/.env"
    gateway: str = ""
    container: Any = field(default=None, repr=False, compare=False)

    def ssh_argv(self, command: str, user: str | None = None) -> list[str]:
        """An ssh command line that trusts only this host's key and offers only the test key."""
        return [
            "ssh", "-F", "/dev/null", "-i", str(self.identity_file), "-p", str(self.port),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts_file}", "-o", "ConnectTimeout=10",
            "-o", "LogLevel=ERROR", f"{user or self.user}@{self.host}", command,
        ]  # fmt: skip

    def ssh(self, command: str, user: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.ssh_argv(command, user), capture_output=True, text=True, timeout=timeout, check=False
        )

    def exec(self, *argv: str) -> tuple[int, str]:
        """Run argv in the container as root, bypassing ssh (for assertions on the host's state)."""
        code, output = self.container.exec_run(list(argv), demux=False)
        return int(code), output.decode(errors="replace")

    def health(self, timeout: float = 5) -> tuple[int, dict[str, Any] | None]:
        status, body = http_get(self.health_url, timeout)
        return status, (json.loads(body) if status == 200 else None)


def make_ssh_key(directory: Path) -> SshClientKey:
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "id_ed25519"
    try:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rpdeploy-test", "-f", str(private)],
            check=True, capture_output=True,
        )  # fmt: skip
    except FileNotFoundError:
        service_missing("ssh-keygen is not installed (Debian package openssh-client)")
    return SshClientKey(private, private.with_suffix(".pub").read_text().strip())


def _authorized_keys_tar(public_key: str) -> bytes:
    buffer = io.BytesIO()
    data = (public_key + "\n").encode()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, uid in (("root/.ssh/authorized_keys", 0), ("home/deploy/.ssh/authorized_keys", DEPLOY_UID)):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.uid, info.gid = len(data), 0o600, uid, uid
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _wait(what: str, check: Callable[[], bool], deadline: float, details: Callable[[], str]) -> None:
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"systemd host: {what} not ready in time\n{details()}", pytrace=False)
        time.sleep(0.25)


def _booted(container: Any) -> bool:
    _, out = container.exec_run(["systemctl", "is-system-running"])
    return bytes(out).decode().strip() in ("running", "degraded")


def _ssh_works(host: SystemdHost, user: str) -> bool:
    return host.ssh("true", user, timeout=15).returncode == 0


def _boot_details(container: Any) -> str:
    script = "systemctl --failed --no-pager; journalctl -b --no-pager | tail -n 40"
    code, out = container.exec_run(["sh", "-c", script])
    return f"container {container.short_id} (exit {code}):\n{bytes(out).decode(errors='replace')}"


def _describe(container: Any, key: SshClientKey, workdir: Path, ssh_port: int, http_port: int) -> SystemdHost:
    _, pub = container.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
    key_type, key_data = bytes(pub).decode().split()[:2]
    known_hosts_line = f"[127.0.0.1]:{ssh_port} {key_type} {key_data}"
    workdir.mkdir(parents=True, exist_ok=True)
    known_hosts_file = workdir / "known_hosts"
    known_hosts_file.write_text(known_hosts_line + "\n")
    return SystemdHost(
        container_id=container.id,
        host="127.0.0.1",
        port=ssh_port,
        user="root",
        identity_file=key.private_key,
        known_hosts_line=known_hosts_line,
        known_hosts_file=known_hosts_file,
        http_port=http_port,
        health_url=f"http://127.0.0.1:{http_port}/actuator/health",
        gateway=str(container.attrs["NetworkSettings"].get("Gateway") or ""),
        container=container,
    )


@contextmanager
def run_systemd_host(
    client: Any, key: SshClientKey, workdir: Path, image: str = BaseImages.systemd_host, timeout: float = 90
) -> Iterator[SystemdHost]:
    """Start a fresh systemd host container and yield it once sshd and the health URL answer.

    The container runs as DESIGN.md says works on these machines (--privileged does not):
    SYS_ADMIN, tmpfs on /run, /run/lock and /tmp, the host's cgroups read-only; its ports are
    published on free loopback ports. It is removed afterwards, whatever happened.
    """
    container = client.containers.create(
        image,
        ["/sbin/init"],
        cap_add=["SYS_ADMIN"],
        tmpfs={"/run": "", "/run/lock": "", "/tmp": ""},
        volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "ro"}},
        ports={"22/tcp": ("127.0.0.1", None), "8080/tcp": ("127.0.0.1", None)},
        labels={FIXTURE_LABEL: "systemd-host", f"{FIXTURE_LABEL}.pid": str(os.getpid())},
        stop_signal="SIGRTMIN+3",
    )
    try:
        # Keys go in before boot, so sshd never runs without them.
        container.put_archive("/", _authorized_keys_tar(key.public_key))
        container.start()
        container.reload()
        ports = container.attrs["NetworkSettings"]["Ports"]
        ssh_port, http_port = (int(ports[p][0]["HostPort"]) for p in ("22/tcp", "8080/tcp"))

        deadline = time.monotonic() + timeout
        details = partial(_boot_details, container)
        _wait("systemd boot", partial(_booted, container), deadline, details)
        host = _describe(container, key, workdir, ssh_port, http_port)
        for user in ("root", "deploy"):
            _wait(f"ssh as {user}", partial(_ssh_works, host, user), deadline, details)
        _wait("health URL", lambda: host.health()[0] == 200, deadline, details)
        yield host
    finally:
        container.remove(force=True)


@pytest.fixture(scope="session")
def ssh_client_key(tmp_path_factory: pytest.TempPathFactory) -> SshClientKey:
    return make_ssh_key(tmp_path_factory.mktemp("ssh-client"))


SystemdHostFactory = Callable[[], AbstractContextManager[SystemdHost]]


@pytest.fixture(scope="session")
def systemd_host_factory(
    docker_client: Any,
    test_images: BaseImages,
    ssh_client_key: SshClientKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> SystemdHostFactory:
    """``with systemd_host_factory() as host:`` starts one more fresh host."""

    def start() -> AbstractContextManager[SystemdHost]:
        workdir = tmp_path_factory.mktemp("systemd-host")
        return run_systemd_host(docker_client, ssh_client_key, workdir, test_images.systemd_host)

    return start


@pytest.fixture
def systemd_host(systemd_host_factory: SystemdHostFactory) -> Iterator[SystemdHost]:
    """A fresh host per test: tests change its env file and restart its service."""
    with systemd_host_factory() as host:
        yield host
