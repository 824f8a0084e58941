"""Backend wiring over SSH against a real systemd host (a container booted with /sbin/init).

The host runs sshd (keys only; users root and deploy, deploy with passwordless sudo) and a
stand-in ``spring-boot.service`` that reads /opt/spring-boot/.env through EnvironmentFile=
and reports, on /actuator/health, the endpoint URL and id it got and the SHA-256 of its API
key. Everything below is checked on the host itself: the files, their modes and owners, the
service, its health URL (fetched from here through the published port), and that the API
key never appears in any process's argv on either side while rpdeploy runs.

Without docker these tests skip, and fail when CI is set (the fixtures see to that).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets as pysecrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpdeploy import backend
from rpdeploy.backend import BackendRolledBackError, BackendValues
from rpdeploy.backend import host as remote
from rpdeploy.config import Config, parse_config
from rpdeploy.errors import BackendError
from rpdeploy.output import RecordingReporter
from rpdeploy.secrets import Secret
from tests.conftest import CliRunnerFn
from tests.support.services import SystemdHost, SystemdHostFactory, make_ssh_key

pytestmark = [pytest.mark.docker, pytest.mark.ssh, pytest.mark.slow]

ENV_FILE = "/opt/spring-boot/.env"
LOCAL_HEALTH = "http://127.0.0.1:8080/actuator/health"  # as the host itself sees it


def new_key() -> str:
    return "rpa_" + pysecrets.token_hex(20).upper()


def ssh_config_for(known_hosts: Path, folder: Path) -> Path:
    path = folder / "ssh_config"
    path.write_text(f"Host *\n  UserKnownHostsFile {known_hosts}\n  GlobalKnownHostsFile /dev/null\n")
    return path


@pytest.fixture
def host(
    systemd_host: SystemdHost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> SystemdHost:
    """A fresh host, and an ssh_config (RPDEPLOY_SSH_CONFIG) that knows only its key."""
    monkeypatch.setenv(remote.SSH_CONFIG_ENV, str(ssh_config_for(systemd_host.known_hosts_file, tmp_path)))
    return systemd_host


@pytest.fixture(scope="module")
def shared_host(
    systemd_host_factory: SystemdHostFactory,
) -> Iterator[SystemdHost]:
    """One host for the tests that only fail to connect or only read."""
    with systemd_host_factory() as started:
        yield started


def host_config(
    project: Path, host: SystemdHost, *, user: str = "root", identity: Path | None = None, **backend_fields: Any
) -> Config:
    fields: dict[str, Any] = {
        "host": f"{user}@127.0.0.1:{host.port}",
        "identity_file": str(identity or host.identity_file),
        "health_url": LOCAL_HEALTH,
        "health_timeout": 20,
        **backend_fields,
    }
    fields = {name: value for name, value in fields.items() if value is not None}
    text = (
        "method: 1\nmodel: {name: Qwen/Qwen2.5-7B-Instruct}\nendpoint: {name: qwen-test}\n"
        f"backend: {json.dumps(fields)}\n"
    )
    (project / "deploy.yaml").write_text(text)
    return parse_config(text, path=project / "deploy.yaml")


def values(config: Config, endpoint_id: str, key: str) -> BackendValues:
    return BackendValues.for_endpoint(config, endpoint_id, Secret(key, "test"))


def on_host(host: SystemdHost, script: str) -> str:
    code, output = host.exec("sh", "-c", script)
    assert code == 0, output
    return output


def stat(host: SystemdHost, path: str) -> str:
    """'mode owner:group' of a file on the host, e.g. '600 root:root'."""
    return on_host(host, f"stat -c '%a %U:%G' {path}").strip()


def runpod_health(host: SystemdHost) -> dict[str, Any]:
    status, body = host.health()
    assert status == 200 and body is not None, status
    return dict(body["runpod"])


def expected_health(config: Config, endpoint_id: str, key: str) -> dict[str, Any]:
    return {
        "endpointUrl": backend.endpoint_url(config, endpoint_id),
        "endpointId": endpoint_id,
        "apiKeySha256": hashlib.sha256(key.encode()).hexdigest(),
    }


class ArgvWatch:
    """Samples /proc/*/cmdline of every process on this machine (containers' included) in a thread."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.leaks: list[str] = []
        self.local_ssh = 0
        self.remote_sh = 0
        self.sweeps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = str(os.getpid())
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == me:
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        argv = handle.read()
                except OSError:
                    continue
                if self.secret in argv:
                    self.leaks.append(argv.replace(self.secret, b"<KEY>").decode(errors="replace"))
                words = argv.split(b"\0")
                if words[0].endswith(b"ssh") and b"dd bs=1" in argv:
                    self.local_ssh += 1
                if words[:2] == [b"sh", b"-c"] and len(words) > 2 and words[2].startswith(b"S=$(dd bs=1"):
                    self.remote_sh += 1
            self.sweeps += 1

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- the happy paths ------------------------------------------------------------------------------


def test_dotenv_configure_restart_health_and_no_leaks(
    host: SystemdHost, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()
    monkeypatch.setenv("RUNPOD_API_KEY", key)
    config = host_config(project, host)
    resolved = config.runpod.api_key.resolve(base_dir=project)
    reporter = RecordingReporter()
    with ArgvWatch(key) as watch:
        applied = backend.apply(config, BackendValues.for_endpoint(config, "ep1", resolved), reporter=reporter)
        checked = backend.check(config, reporter=reporter)
    assert watch.leaks == []
    assert watch.local_ssh > 0 and watch.remote_sh > 0, "the sampler saw neither side: it proves nothing"

    assert applied.restart is not None and applied.restart.healthy
    assert (applied.restart.state, applied.restart.health_status) == ("active", 200)
    assert runpod_health(host) == expected_health(config, "ep1", key)
    assert stat(host, ENV_FILE) == "600 root:root"
    assert applied.configure.backup == f"{ENV_FILE}.rpdeploy-{applied.configure.backup_stamp}.absent"
    assert stat(host, applied.configure.backup) == "600 root:root"
    assert (checked.endpoint_id, checked.api_key, checked.healthy) == ("ep1", "****", True)

    # The same values again: nothing written, no backup, no restart.
    pid = on_host(host, "systemctl show -p MainPID --value spring-boot")
    again = backend.apply(config, BackendValues.for_endpoint(config, "ep1", resolved), reporter=reporter)
    assert not again.configure.changed and again.restart is None
    assert on_host(host, "systemctl show -p MainPID --value spring-boot") == pid
    assert on_host(host, "ls -a /opt/spring-boot | grep -c rpdeploy").strip() == "1"

    # Nowhere on the host either: journal, shell histories, sudo logs.
    traces = on_host(host, "journalctl --no-pager; cat /root/.*history /home/deploy/.*history 2>/dev/null; true")
    assert key not in traces
    everything = [reporter.text(), repr(applied), repr(checked), repr(again), json.dumps(str(applied))]
    assert all(key not in text for text in everything)


def test_existing_file_keeps_its_lines_and_owner(host: SystemdHost, project: Path) -> None:
    key = new_key()
    original = "# Spring settings\nSERVER_PORT=8080\nRUNPOD_ENDPOINT_ID=old\n\nSPRING_PROFILES_ACTIVE=prod\n"
    on_host(host, f"printf '%s' '{original}' > {ENV_FILE} && chown spring:spring {ENV_FILE} && chmod 640 {ENV_FILE}")
    config = host_config(project, host)
    result = backend.configure(config, values(config, "ep2", key))
    assert on_host(host, f"cat {ENV_FILE}") == (
        "# Spring settings\nSERVER_PORT=8080\nRUNPOD_ENDPOINT_ID=ep2\n\nSPRING_PROFILES_ACTIVE=prod\n"
        "# RunPod endpoint for this service, written by rpdeploy\n"
        f"RUNPOD_ENDPOINT_URL={backend.endpoint_url(config, 'ep2')}\nRUNPOD_API_KEY={key}\n"
    )
    assert stat(host, ENV_FILE) == "600 spring:spring"
    assert result.backup is not None and result.backup.endswith(".bak")
    assert stat(host, result.backup) == "600 spring:spring"
    assert on_host(host, f"cat {result.backup}") == original


def test_deploy_user_works_through_sudo(host: SystemdHost, project: Path) -> None:
    key = new_key()
    on_host(host, f"echo 'SERVER_PORT=8080' > {ENV_FILE} && chmod 600 {ENV_FILE}")  # root's, unreadable to deploy
    config = host_config(project, host, user="deploy")
    applied = backend.apply(config, values(config, "ep3", key))
    assert applied.restart is not None and applied.restart.healthy
    assert runpod_health(host) == expected_health(config, "ep3", key)
    assert stat(host, ENV_FILE) == "600 root:root"
    # sudo logs what it ran to the journal: the key must not be there.
    journal = on_host(host, "journalctl --no-pager _COMM=sudo")
    assert "COMMAND=" in journal and key not in journal


def test_sudo_without_nopasswd_is_a_clear_error(host: SystemdHost, project: Path) -> None:
    on_host(host, f"rm /etc/sudoers.d/deploy && echo 'A=1' > {ENV_FILE} && chmod 600 {ENV_FILE}")
    config = host_config(project, host, user="deploy")
    with pytest.raises(BackendError, match="needs root") as caught:
        backend.configure(config, values(config, "ep1", new_key()))
    assert "NOPASSWD" in (caught.value.hint or "")


def test_systemd_mode_drop_in_and_rollback(host: SystemdHost, project: Path) -> None:
    key = new_key()
    config = host_config(project, host, mode="systemd")
    env_file = "/etc/rpdeploy/spring-boot.env"
    dropin = "/etc/systemd/system/spring-boot.service.d/rpdeploy.conf"
    applied = backend.apply(config, values(config, "ep4", key))
    assert applied.configure.dropin == dropin and applied.configure.dropin_changed and applied.configure.reloaded
    assert applied.restart is not None and applied.restart.healthy
    assert runpod_health(host) == expected_health(config, "ep4", key)
    assert stat(host, env_file) == "600 root:root"
    assert stat(host, "/etc/rpdeploy") == "700 root:root"
    assert f"EnvironmentFile={env_file}\n" in on_host(host, f"cat {dropin}")
    assert env_file in on_host(host, "systemctl show -p EnvironmentFiles --value spring-boot")

    again = backend.configure(config, values(config, "ep4", key))
    assert not again.changed and not again.dropin_changed

    newer = backend.apply(config, values(config, "ep5", key))
    assert newer.configure.changed and not newer.configure.dropin_changed
    assert runpod_health(host)["endpointId"] == "ep5"

    assert backend.rollback(config).action == "restored"
    assert runpod_health(host)["endpointId"] == "ep4"
    removed = backend.rollback(config)
    assert removed.action == "removed" and removed.dropin == dropin
    assert on_host(host, f"ls {dropin} {env_file} 2>&1 || true").count("No such file") == 2
    assert env_file not in on_host(host, "systemctl show -p EnvironmentFiles --value spring-boot")
    assert runpod_health(host) == {"endpointUrl": None, "endpointId": None, "apiKeySha256": None}


def test_systemd_reads_our_quoting_the_way_we_do(host: SystemdHost, project: Path) -> None:
    """systemd's own EnvironmentFile= parser, in a oneshot unit, gets back exactly what we wrote."""
    from tests.test_backend import TRICKY

    updates = {f"V{i}": value for i, value in enumerate(TRICKY)}
    text = backend.merge_env("", updates, secret_keys=frozenset()).text
    host.container.put_archive("/", _tar({"opt/tricky.env": text, "etc/systemd/system/envprobe.service": ENVPROBE}))
    on_host(host, "systemctl daemon-reload && systemctl start envprobe")
    seen = json.loads(on_host(host, "cat /opt/envprobe.json"))
    assert {name: seen.get(name) for name in updates} == updates


ENVPROBE = """\
[Service]
Type=oneshot
EnvironmentFile=/opt/tricky.env
ExecStart=/usr/bin/python3 -c "import json, os; json.dump(dict(os.environ), open('/opt/envprobe.json', 'w'))"
"""


def _tar(files: dict[str, str]) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# --- failures and rollbacks -----------------------------------------------------------------------


def _good_then(host: SystemdHost, project: Path, key: str, **fields: Any) -> tuple[Config, str]:
    """Apply good values (so there is a previous env to go back to); return the config with ``fields``."""
    good = host_config(project, host)
    backend.apply(good, values(good, "good", key))
    assert runpod_health(host)["endpointId"] == "good"
    return host_config(project, host, **fields), on_host(host, f"cat {ENV_FILE}")


def test_service_refusing_the_new_env_is_rolled_back(host: SystemdHost, project: Path) -> None:
    key = new_key()
    config, before = _good_then(host, project, key)
    reporter = RecordingReporter()
    with pytest.raises(BackendRolledBackError) as caught:
        backend.apply(config, BackendValues("bad", "not-a-url", Secret(key, "test")), reporter=reporter)
    error = caught.value
    assert error.recovered, error.message
    assert "restart command exited 1" in error.message and "healthy on the previous endpoint" in error.message
    assert on_host(host, f"cat {ENV_FILE}") == before
    assert runpod_health(host) == expected_health(config, "good", key)
    assert any("not an http(s) URL" in message for level, message in reporter.messages if level == "log")
    assert key not in reporter.text() + error.message


def test_unit_that_dies_after_a_good_restart_is_rolled_back(host: SystemdHost, project: Path) -> None:
    """Type=simple: `systemctl restart` succeeds, then the app exits; the wait must notice."""
    on_host(
        host,
        "mkdir -p /etc/systemd/system/spring-boot.service.d && "
        "printf '[Service]\\nType=simple\\n' > /etc/systemd/system/spring-boot.service.d/00-simple.conf && "
        "systemctl daemon-reload && systemctl restart spring-boot",
    )
    key = new_key()
    config, before = _good_then(host, project, key)
    with pytest.raises(BackendRolledBackError) as caught:
        backend.apply(config, BackendValues("bad", "not-a-url", Secret(key, "test")))
    assert caught.value.recovered
    assert "failed to start" in caught.value.message
    assert on_host(host, f"cat {ENV_FILE}") == before
    assert runpod_health(host)["endpointId"] == "good"


def test_broken_restart_command_rolls_back_the_file(host: SystemdHost, project: Path) -> None:
    key = new_key()
    config, before = _good_then(host, project, key, restart="sudo systemctl restart spring-boot-typo")
    with pytest.raises(BackendRolledBackError) as caught:
        backend.apply(config, values(config, "next", key))
    error = caught.value
    assert not error.recovered and error.rollback is not None
    assert "restart command exited" in error.message and "check the service now" in error.message
    assert on_host(host, f"cat {ENV_FILE}") == before
    assert runpod_health(host)["endpointId"] == "good"  # never restarted: still the old process


def test_health_url_that_never_answers_rolls_back(host: SystemdHost, project: Path) -> None:
    key = new_key()
    config, before = _good_then(host, project, key, health_url="http://127.0.0.1:9/health", health_timeout=3)
    started = time.monotonic()
    with pytest.raises(BackendRolledBackError) as caught:
        backend.apply(config, values(config, "next", key))
    assert time.monotonic() - started < 30
    assert not caught.value.recovered
    assert "not healthy within 3 s (state active, health no answer)" in caught.value.message
    assert on_host(host, f"cat {ENV_FILE}") == before
    assert runpod_health(host)["endpointId"] == "good"  # restarted on the previous env


# --- connection errors ------------------------------------------------------------------------------


def _expect(config: Config, match: str, *, host: remote.Host | None = None) -> BackendError:
    with pytest.raises(BackendError, match=match) as caught:
        backend.check(config, host=host)
    return caught.value


def test_unknown_host_key_then_accept_new(
    shared_host: SystemdHost, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    monkeypatch.setenv(remote.SSH_CONFIG_ENV, str(ssh_config_for(known, tmp_path)))
    error = _expect(host_config(project, shared_host), "host key is not in known_hosts")
    assert "accept_new_host_key" in (error.hint or "") and f"-p {shared_host.port}" in (error.hint or "")
    assert backend.check(host_config(project, shared_host, accept_new_host_key=True)).healthy
    assert shared_host.known_hosts_line.split()[2] in known.read_text()


def test_check_reads_as_deploy_without_a_health_url(
    shared_host: SystemdHost, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(remote.SSH_CONFIG_ENV, str(ssh_config_for(shared_host.known_hosts_file, tmp_path)))
    config = host_config(project, shared_host, user="deploy", health_url=None)
    checked = backend.check(config)
    assert (checked.state, checked.health_status, checked.healthy) == ("active", None, True)
    assert checked.env_file == ENV_FILE and checked.endpoint_id is None


def test_changed_host_key_is_refused(
    shared_host: SystemdHost, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_ssh_key(tmp_path / "other").public_key.split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{shared_host.port} {other[0]} {other[1]}\n")
    monkeypatch.setenv(remote.SSH_CONFIG_ENV, str(ssh_config_for(known, tmp_path)))
    # accept-new must not accept a *changed* key either.
    error = _expect(host_config(project, shared_host, accept_new_host_key=True), "host key has CHANGED")
    assert "ssh-keygen -R" in (error.hint or "")


def test_wrong_user_and_wrong_key_are_refused(
    shared_host: SystemdHost, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(remote.SSH_CONFIG_ENV, str(ssh_config_for(shared_host.known_hosts_file, tmp_path)))
    error = _expect(host_config(project, shared_host, user="nobody-here"), "login refused for user nobody-here")
    assert "authorized_keys" in (error.hint or "")
    stranger = make_ssh_key(tmp_path / "stranger").private_key
    error = _expect(host_config(project, shared_host, identity=stranger), "login refused for user root")
    assert str(stranger) in (error.hint or "")


def test_closed_and_silent_ports(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    monkeypatch.setenv(remote.SSH_CONFIG_ENV, str(ssh_config_for(known, tmp_path)))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    config = parse_config(
        "method: 1\nmodel: {name: Qwen/Qwen2.5-7B-Instruct}\nendpoint: {name: qwen-test}\n"
        f"backend: {{host: 'root@127.0.0.1:{closed}'}}\n"
    )
    error = _expect(config, f"connection refused on port {closed}")
    assert "sshd running" in (error.hint or "")

    with socket.socket() as silent:  # accepts TCP connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        config = parse_config(
            "method: 1\nmodel: {name: Qwen/Qwen2.5-7B-Instruct}\nendpoint: {name: qwen-test}\n"
            f"backend: {{host: 'root@127.0.0.1:{port}'}}\n"
        )
        assert config.backend is not None
        started = time.monotonic()
        error = _expect(config, "no answer within 2 s", host=remote.host_for(config.backend, connect_timeout=2))
        assert time.monotonic() - started < 10
        assert "firewall" in (error.hint or "")


# --- the commands -----------------------------------------------------------------------------------


def test_cli_over_ssh(host: SystemdHost, project: Path, monkeypatch: pytest.MonkeyPatch, cli: CliRunnerFn) -> None:
    key = new_key()
    monkeypatch.setenv("RUNPOD_API_KEY", key)
    host_config(project, host)
    done = cli("backend", "configure", "--endpoint-id", "ep9", "--restart", "--json")
    checked = cli("backend", "check", "--json")
    document = json.loads(checked.stdout)["check"]
    assert (document["endpoint_id"], document["api_key"], document["state"], document["health_status"]) == (
        "ep9",
        "****",
        "active",
        200,
    )
    for text in (done.stdout, done.stderr, checked.stdout, checked.stderr):
        assert key not in text
