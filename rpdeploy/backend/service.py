"""The service: restart it, wait until systemd says active and ``health_url`` answers (polled on
the host), and check it without restarting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpdeploy.backend import host as remote
from rpdeploy.backend.envfile import env_values
from rpdeploy.backend.results import CheckResult, RestartResult
from rpdeploy.backend.session import _RESTART, _decode_env, _int, _register_secrets, _Session, _unit_notes, _updates
from rpdeploy.backend.values import BackendValues
from rpdeploy.errors import BackendError
from rpdeploy.output import NullReporter, Reporter
from rpdeploy.secrets import MASK

if TYPE_CHECKING:
    from rpdeploy.config import Config


# --- restart, wait, check -----------------------------------------------------------------------


@dataclass
class _Progress:
    systemd: bool = True
    restart_exit: int | None = None
    state: str | None = None
    health: int | None = None
    not_found: bool = False


def _restart_and_wait(session: _Session, *, command: str | None, timeout: float, title: str) -> RestartResult:
    """Run ``command`` (None: do not restart, just look) and wait for the service; never raises on unhealthy."""
    backend = session.backend
    service = backend.service
    url = backend.health_url or ""
    data = command.encode("utf-8") if command else b""
    progress = _Progress()
    started = time.monotonic()

    with session.reporter.status(title) as status:

        def on_line(line: str) -> None:
            if not line.startswith("@rpdeploy "):
                return
            word, _, rest = line[len("@rpdeploy ") :].partition(" ")
            if word == "systemd":
                progress.systemd = rest.strip() == "1"
            elif word == "note":
                session.reporter.warn(rest)
            elif word == "restart":
                progress.restart_exit = _int(rest)
                if progress.restart_exit == 0:
                    status.update(f"{service} restarted; waiting for it to be healthy")
            elif word == "status":
                state, _, code = rest.partition(" ")
                progress.state = None if state == "-" else state
                progress.not_found = state == "not-found"
                progress.health = None if code in ("-", "none", "") else _int(code)
                shown = [f"{service}: {progress.state or 'running (no systemd)'}"]
                if url and progress.health is not None:
                    shown.append(f"health {progress.health or 'no answer'}")
                status.update(", ".join(shown))

        done = session.host.run(
            _RESTART,
            [service, url, str(int(timeout)), str(len(data))],
            data=data,
            timeout=timeout + remote.DEFAULT_CONNECT_TIMEOUT + 60,
            on_line=on_line,
            what=f"restarting {service}" if command else f"checking {service}",
        )
    for line in done.stderr.splitlines():
        # The restart command's own output (and errors): untrusted text.
        session.reporter.log_line(line) if done.returncode != 0 else session.reporter.debug(line)
    reason = {
        0: "",
        3: f"{service} failed to start (systemd: failed)",
        4: f"{service} was not healthy within {int(timeout)} s",
        5: f"the restart command exited {progress.restart_exit}",
        6: f"no curl, python3 or wget on {session.label} to poll {url}",
        7: f"there is no unit {service}.service on {session.label}",
    }.get(done.returncode, f"the wait script failed (exit {done.returncode}): {done.stderr_tail}")
    if done.returncode == 4:
        reason += f" (state {progress.state or '?'}" + (f", health {progress.health or 'no answer'})" if url else ")")
    return RestartResult(
        host=session.label,
        service=service,
        command=command,
        healthy=done.returncode == 0,
        state=progress.state if progress.systemd else None,
        health_status=progress.health if url else None,
        seconds=round(time.monotonic() - started, 2),
        reason=reason,
        restart_exit=progress.restart_exit,
    )


def restart(config: Config, *, reporter: Reporter | None = None, host: remote.Host | None = None) -> RestartResult:
    """Run the restart command and wait until the service is active and healthy; raise if it does not get there."""
    reporter = reporter or NullReporter()
    session = _Session(config, reporter, host)
    result = _restart(session)
    if not result.healthy:
        session.journal()
        raise BackendError(
            f"{result.reason} on {session.label}",
            hint=f"look at `journalctl -u {session.backend.service}` on the host; "
            "`rpdeploy backend rollback` restores the previous env file",
        )
    return result


def _restart(session: _Session) -> RestartResult:
    backend = session.backend
    if backend.health_url is None:
        session.reporter.debug("no backend.health_url: only systemd's state tells whether the service is up")
    return _restart_and_wait(
        session,
        command=backend.restart_command,
        timeout=backend.health_timeout,
        title=f"restarting {backend.service} on {session.label}",
    )


def check(
    config: Config,
    *,
    reporter: Reporter | None = None,
    expected: BackendValues | None = None,
    host: remote.Host | None = None,
) -> CheckResult:
    """What the env file on the host holds (key masked), whether the service is active and healthy."""
    reporter = reporter or NullReporter()
    session = _Session(config, reporter, host)
    state = session.inspect(write=False)
    text = _decode_env(state, session.label)
    _register_secrets(text, session.secret_keys)
    current = env_values(text or "")
    names = session.backend.env_names
    probe = _restart_and_wait(
        session, command=None, timeout=0, title=f"checking {session.backend.service} on {session.label}"
    )
    drift: list[str] = []
    if expected is not None:
        for name, value in _updates(session, expected).items():
            if current.get(name) != value:
                drift.append(name)
    return CheckResult(
        host=session.label,
        service=session.backend.service,
        mode=session.backend.mode.value,
        env_file=state.path,
        env_file_exists=state.exists,
        endpoint_id=current.get(names.endpoint_id),
        endpoint_url=current.get(names.endpoint_url),
        api_key=MASK if current.get(names.api_key) else None,
        state=probe.state,
        health_status=probe.health_status,
        healthy=probe.healthy,
        backups=tuple(state.backup_stamps()),
        drift=tuple(drift),
        notes=tuple(_unit_notes(session, state)),
    )
