"""Writing the backend's settings: configure (merge, back up, install atomically), observe (what the
host has now) and rollback (restore a backup).
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import TYPE_CHECKING

from rpdeploy.backend import host as remote
from rpdeploy.backend.envfile import _diff, dropin_text, env_values, merge_env
from rpdeploy.backend.results import ConfigureResult, HostEnv, RollbackResult, _content_digest
from rpdeploy.backend.service import _restart
from rpdeploy.backend.session import (
    _RESTORE,
    _WRITE,
    FILE_TIMEOUT,
    KEEP_BACKUPS,
    _decode_env,
    _HostState,
    _register_secrets,
    _Session,
    _stamp,
    _unit_notes,
    _updates,
    cksum,
)
from rpdeploy.backend.values import BackendValues
from rpdeploy.errors import BackendError
from rpdeploy.output import NullReporter, Reporter

if TYPE_CHECKING:
    from rpdeploy.config import Config


# --- configure ----------------------------------------------------------------------------------


def configure(
    config: Config,
    values: BackendValues,
    *,
    reporter: Reporter | None = None,
    dry_run: bool = False,
    host: remote.Host | None = None,
) -> ConfigureResult:
    """Merge the values into the backend's env file (and in systemd mode, add the drop-in).

    Nothing is written when nothing changed. ``dry_run`` returns the diff (secrets as ****)
    and touches nothing.
    """
    reporter = reporter or NullReporter()
    session = _Session(config, reporter, host)
    state = session.inspect(write=True)
    label = session.label
    old = _decode_env(state, label)
    _register_secrets(old, session.secret_keys)
    if not state.dir_exists and not session.systemd_mode:
        raise BackendError(
            f"the folder of {state.path} does not exist on {label}",
            hint="is the service installed there? Set backend.env_file to the file its unit reads (EnvironmentFile=)",
        )
    merged = merge_env(old or "", _updates(session, values), secret_keys=session.secret_keys)
    notes = list(merged.notes)
    notes += _unit_notes(session, state)
    new_dropin = dropin_text(session.backend.service, state.path) if session.systemd_mode else None
    dropin_changed = new_dropin is not None and state.dropin_cksum != cksum(new_dropin.encode())
    diff = (
        _diff(old, merged.text, state.path, secret_keys=session.secret_keys, clear_keys=session.clear_keys)
        if merged.changed
        else ""
    )
    if dropin_changed and new_dropin is not None and session.dropin is not None:
        before = "(replaced)\n" if state.dropin_cksum else None
        diff += "".join(
            difflib.unified_diff(
                [before] if before else [],
                new_dropin.splitlines(keepends=True),
                fromfile=session.dropin if before else "/dev/null",
                tofile=session.dropin,
            )
        )
    changed = merged.changed or dropin_changed
    names = session.backend.env_names
    current = env_values(old or "")
    found = HostEnv(
        state.path,
        _content_digest(state.content if state.exists else None),
        state.dropin_cksum if session.systemd_mode else None,
        current.get(names.endpoint_url),
        current.get(names.endpoint_id),
    )
    planned = ConfigureResult(
        host=label,
        mode=session.backend.mode.value,
        env_file=state.path,
        changed=changed,
        dry_run=dry_run,
        keys=merged.changes,
        diff=diff,
        dropin=session.dropin,
        dropin_changed=dropin_changed,
        notes=tuple(notes),
        on_host=found,
    )
    if dry_run or not changed:
        for note in notes:
            reporter.warn(note)
        return planned

    stamp = _stamp()
    payload = merged.text.encode("utf-8")
    dropin_bytes = new_dropin.encode("utf-8") if dropin_changed and new_dropin is not None else b""
    # Prune to KEEP_BACKUPS sets, counting the one this write adds.
    stamps = state.backup_stamps()
    doomed = set(stamps[: max(0, len(stamps) - (KEEP_BACKUPS - 1))])
    prune = [name for name, (backup_stamp, _) in state.backup_files().items() if backup_stamp in doomed]
    events: list[tuple[str, str]] = []

    def on_line(line: str) -> None:
        if line.startswith("@rpdeploy "):
            word, _, rest = line[len("@rpdeploy ") :].partition(" ")
            events.append((word, rest))

    with reporter.status(f"writing {state.path} on {label}"):
        done = session.run(
            _WRITE,
            [
                state.path,
                stamp,
                cksum(state.content) if state.exists and state.content is not None else "absent",
                str(len(payload)),
                session.dropin if dropin_changed and session.dropin else "",
                str(len(dropin_bytes)),
                "create" if session.systemd_mode else "must-exist",
                "root" if session.systemd_mode else "dir",
                *prune,
            ],
            data=payload + dropin_bytes,
            timeout=FILE_TIMEOUT,
            what=f"writing {state.path}",
            on_line=on_line,
        )
    backup = next((rest for word, rest in events if word == "backup"), None)
    if done.returncode != 0:
        installed = any(word == "installed" for word, _ in events)
        message = f"writing {state.path} on {label} failed: {done.stderr_tail or f'exit {done.returncode}'}"
        if installed:
            raise BackendError(
                message + f" (the new env file is in place; the previous one is in {backup})",
                hint="`rpdeploy backend rollback` puts the previous file back",
            )
        raise BackendError(message + " (nothing was changed)")
    for note in notes:
        reporter.warn(note)
    reporter.info(f"wrote {state.path} on {label} (backup: {backup})")
    after = HostEnv(
        state.path,
        _content_digest(payload),
        (cksum(new_dropin.encode("utf-8")) if new_dropin is not None else None) if session.systemd_mode else None,
        values.endpoint_url,
        values.endpoint_id,
    )
    return replace(planned, backup=backup, reloaded=any(word == "reloaded" for word, _ in events), on_host=after)


def observe(config: Config, *, reporter: Reporter | None = None, host: remote.Host | None = None) -> HostEnv:
    """What the env file (and drop-in) on the host hold now: the backend stages' view of the real host."""
    session = _Session(config, reporter or NullReporter(), host)
    state = session.inspect(write=False)
    text = _decode_env(state, session.label)
    _register_secrets(text, session.secret_keys)
    current = env_values(text or "")
    names = session.backend.env_names
    return HostEnv(
        state.path,
        _content_digest(state.content if state.exists else None),
        state.dropin_cksum if session.systemd_mode else None,
        current.get(names.endpoint_url),
        current.get(names.endpoint_id),
    )


# --- rollback -----------------------------------------------------------------------------------


def _restore(session: _Session, state: _HostState, stamp: str) -> RollbackResult:
    prefix = f"{state.path}.rpdeploy-{stamp}"
    events: list[str] = []
    done = session.run(
        _RESTORE,
        [state.path, stamp, session.dropin or ""],
        timeout=FILE_TIMEOUT,
        on_line=lambda line: events.append(line),
        what=f"restoring {state.path}",
    )
    if done.returncode != 0:
        raise BackendError(f"restoring {state.path} on {session.label} failed: {done.stderr_tail}")
    removed = any(line == f"@rpdeploy removed {state.path}" for line in events)
    dropin = next(
        (line.split(" ", 2)[2] for line in events if line.startswith("@rpdeploy ") and "rpdeploy.conf" in line), None
    )
    backup = f"{prefix}.absent" if removed else f"{prefix}.bak"
    session.reporter.info(
        f"{'removed' if removed else 'restored'} {state.path} on {session.label} (from {backup.rsplit('/', 1)[-1]})"
    )
    return RollbackResult(
        host=session.label,
        env_file=state.path,
        backup=backup,
        action="removed" if removed else "restored",
        dropin=dropin,
    )


def rollback(
    config: Config,
    *,
    reporter: Reporter | None = None,
    stamp: str | None = None,
    dry_run: bool = False,
    host: remote.Host | None = None,
) -> RollbackResult:
    """Put back the newest backup (or the one of ``stamp``), then restart and wait for the service.

    The backup is used up: a second rollback goes one step further back. Raises when there is
    no backup, or when the service is not healthy afterwards.
    """
    reporter = reporter or NullReporter()
    session = _Session(config, reporter, host)
    state = session.inspect(write=True, content=False)
    stamps = state.backup_stamps()
    if not stamps:
        raise BackendError(
            f"there is no rpdeploy backup of {state.path} on {session.label}: nothing to roll back",
            hint="backups are made by `rpdeploy backend configure` (it keeps the last "
            f"{KEEP_BACKUPS}) next to the env file",
        )
    chosen = stamp or stamps[-1]
    if chosen not in stamps:
        raise BackendError(f"no backup {chosen} of {state.path} on {session.label}; there are: {', '.join(stamps)}")
    if dry_run:
        prefix = f"{state.path}.rpdeploy-{chosen}"
        absent = (chosen, "absent") in state.backup_files().values()
        return RollbackResult(
            host=session.label,
            env_file=state.path,
            backup=f"{prefix}.absent" if absent else f"{prefix}.bak",
            action="removed" if absent else "restored",
            dry_run=True,
            dropin=session.dropin,
        )
    restored = _restore(session, state, chosen)
    outcome = _restart(session)
    result = replace(restored, restart=outcome)
    if not outcome.healthy:
        session.journal()
        raise BackendError(
            f"{state.path} is back to its previous version on {session.label}, but {outcome.reason}",
            hint=f"the service needs attention: look at `journalctl -u {session.backend.service}` on the host",
        )
    return result
