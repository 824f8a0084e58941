"""The systemd host container: sshd by key only, the spring-boot unit, its health URL and failed restarts."""

from __future__ import annotations

import hashlib
import shlex
import subprocess

import pytest

from tests.support.services import SystemdHost

pytestmark = [pytest.mark.docker, pytest.mark.ssh]

ENV_FILE = """\
RUNPOD_ENDPOINT_URL=https://api.runpod.ai/v2/abc123
RUNPOD_ENDPOINT_ID=abc123
RUNPOD_API_KEY=rpa_TESTKEY_never_logged
"""


def write_env(host: SystemdHost, text: str) -> None:
    done = host.ssh(f"umask 077 && printf %s {shlex.quote(text)} > {host.env_file}")
    assert done.returncode == 0, done.stderr


def test_service_is_active_for_root_and_deploy(systemd_host: SystemdHost) -> None:
    assert systemd_host.ssh("systemctl is-active spring-boot").stdout.strip() == "active"
    as_deploy = systemd_host.ssh("id -un && sudo -n systemctl is-active spring-boot", user="deploy")
    assert as_deploy.stdout.split() == ["deploy", "active"], as_deploy.stderr
    assert systemd_host.health() == (
        200,
        {"status": "UP", "runpod": {"endpointUrl": None, "endpointId": None, "apiKeySha256": None}},
    )


def test_password_logins_are_refused(systemd_host: SystemdHost) -> None:
    argv = systemd_host.ssh_argv("true")
    argv[1:1] = ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 255
    assert "Permission denied (publickey)" in done.stderr


def test_restart_applies_env_file(systemd_host: SystemdHost) -> None:
    before = systemd_host.exec("systemctl", "show", "-p", "MainPID", "--value", "spring-boot")[1]
    write_env(systemd_host, ENV_FILE)
    done = systemd_host.ssh("sudo -n systemctl restart spring-boot", user="deploy")
    assert done.returncode == 0, done.stderr
    after = systemd_host.exec("systemctl", "show", "-p", "MainPID", "--value", "spring-boot")[1]
    assert after != before
    assert systemd_host.health() == (
        200,
        {
            "status": "UP",
            "runpod": {
                "endpointUrl": "https://api.runpod.ai/v2/abc123",
                "endpointId": "abc123",
                "apiKeySha256": hashlib.sha256(b"rpa_TESTKEY_never_logged").hexdigest(),
            },
        },
    )


def test_systemd_drop_in_is_applied(systemd_host: SystemdHost) -> None:
    drop_in = "[Service]\nEnvironment=RUNPOD_ENDPOINT_ID=from-drop-in\n"
    done = systemd_host.ssh(
        "mkdir -p /etc/systemd/system/spring-boot.service.d && "
        f"printf %s {shlex.quote(drop_in)} > /etc/systemd/system/spring-boot.service.d/rpdeploy.conf && "
        "systemctl daemon-reload && systemctl restart spring-boot"
    )
    assert done.returncode == 0, done.stderr
    status, body = systemd_host.health()
    assert status == 200 and body is not None
    assert body["runpod"]["endpointId"] == "from-drop-in"


def test_bad_endpoint_url_fails_the_restart(systemd_host: SystemdHost) -> None:
    write_env(systemd_host, "RUNPOD_ENDPOINT_URL=not-a-url\nRUNPOD_API_KEY=rpa_TESTKEY_never_logged\n")
    done = systemd_host.ssh("systemctl restart spring-boot")
    assert done.returncode != 0
    assert systemd_host.ssh("systemctl is-active spring-boot").stdout.strip() == "failed"
    assert systemd_host.health()[0] == 0  # nothing listens any more
    code, journal = systemd_host.exec("journalctl", "-u", "spring-boot", "--no-pager")
    assert "not an http(s) URL" in journal
    assert "rpa_TESTKEY" not in journal
