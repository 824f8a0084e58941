"""The safe sequence deploy stages 9-10 use: configure, restart, wait; when the service does not
come back, restore the backup, restart again, and raise an error that says both what failed and
whether the rollback brought the service back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from rpdeploy.backend import host as remote
from rpdeploy.backend.results import ApplyResult, BackendRolledBackError, ConfigureResult, RestartResult
from rpdeploy.backend.service import _restart
from rpdeploy.backend.session import _Session
from rpdeploy.backend.values import BackendValues
from rpdeploy.backend.writes import _restore, configure
from rpdeploy.errors import BackendError
from rpdeploy.output import NullReporter, Reporter

if TYPE_CHECKING:
    from rpdeploy.config import Config


# --- the safe sequence --------------------------------------------------------------------------


def restart_or_rollback(
    config: Config,
    configured: ConfigureResult,
    *,
    reporter: Reporter | None = None,
    host: remote.Host | None = None,
) -> RestartResult:
    """Restart after :func:`configure`; if the service does not come back healthy, restore its backup.

    Raises :class:`BackendRolledBackError` saying what failed and whether the rollback
    brought the service back (``recovered``).
    """
    reporter = reporter or NullReporter()
    session = _Session(config, reporter, host)
    first = _restart(session)
    if first.healthy:
        reporter.success(f"{first.service} is healthy on {first.host} ({first.seconds:.1f} s)")
        return first
    session.journal()
    stamp = configured.backup_stamp
    if stamp is None:
        raise BackendRolledBackError(
            f"{first.reason} on {first.host}; the env file was not changed by this run, so there is nothing "
            "to roll back",
            hint=f"look at `journalctl -u {first.service}` on the host",
            rollback=None,
            recovered=False,
        )
    reporter.warn(f"{first.reason}: rolling back to the previous env file")
    try:
        state = session.inspect(write=True, content=False)
        restored = _restore(session, state, stamp)
    except BackendError as exc:
        raise BackendRolledBackError(
            f"{first.reason} on {first.host}, and the rollback failed too: {exc.message}",
            hint=f"restore {configured.env_file} by hand from {configured.backup}; the service needs attention",
            rollback=None,
            recovered=False,
        ) from None
    second = _restart(session)
    result = replace(restored, restart=second)
    if second.healthy:
        raise BackendRolledBackError(
            f"{first.reason} with the new settings on {first.host}. Rolled back: {configured.env_file} is its "
            f"previous version again and {first.service} is healthy on the previous endpoint",
            hint=f"nothing is down; find out why the new settings failed (`journalctl -u {first.service}` on the "
            "host), then run the deploy again",
            rollback=result,
            recovered=True,
        )
    session.journal()
    raise BackendRolledBackError(
        f"{first.reason} with the new settings on {first.host}. Rolled back {configured.env_file} to its previous "
        f"version, but then {second.reason}: check the service now, it may be down",
        hint=f"look at `journalctl -u {first.service}` and `systemctl status {first.service}` on the host",
        rollback=result,
        recovered=False,
    )


def apply(
    config: Config,
    values: BackendValues,
    *,
    reporter: Reporter | None = None,
    restart_unchanged: bool = False,
    host: remote.Host | None = None,
) -> ApplyResult:
    """Configure, restart, verify; roll back when the service does not come back (deploy stages 9-10)."""
    reporter = reporter or NullReporter()
    configured = configure(config, values, reporter=reporter, host=host)
    if not configured.changed and not restart_unchanged:
        reporter.info(f"{configured.env_file} already points at {values.endpoint_id}: no restart needed")
        return ApplyResult(configured, None)
    return ApplyResult(configured, restart_or_rollback(config, configured, reporter=reporter, host=host))
