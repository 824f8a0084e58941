"""What each backend operation returns (frozen results) and the error raised after a rollback."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rpdeploy.errors import BackendError

if TYPE_CHECKING:
    pass


_BACKUP_NAME = re.compile(
    r"\.rpdeploy-(?P<stamp>\d{8}T\d{6}\.\d{6}Z)\.(?P<kind>bak|absent|dropin\.bak|dropin\.absent)$"
)


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyChange:
    """One of our keys in the env file: ``added``, ``changed`` or ``unchanged``; the API key shown as ****."""

    name: str
    action: str
    old: str | None
    new: str


@dataclass(frozen=True)
class HostEnv:
    """What the env file on the host holds, as the backend stages fingerprint it (nothing secret in it).

    ``digest`` is a truncated sha256 of the file's bytes (``absent`` when there is none), so any
    change on the host, ours or someone else's, changes it; ``dropin`` is the cksum of our
    systemd drop-in (systemd mode). The URL and id are there to say what the file points at.
    """

    env_file: str
    digest: str
    dropin: str | None
    endpoint_url: str | None
    endpoint_id: str | None

    def fingerprint(self) -> dict[str, str | None]:
        return {
            "env_file": self.env_file,
            "digest": self.digest,
            "dropin": self.dropin,
            "endpoint_url": self.endpoint_url,
            "endpoint_id": self.endpoint_id,
        }


def _content_digest(content: bytes | None) -> str:
    return "absent" if content is None else hashlib.sha256(content).hexdigest()[:16]


@dataclass(frozen=True)
class ConfigureResult:
    host: str
    mode: str
    env_file: str
    changed: bool
    dry_run: bool
    keys: tuple[KeyChange, ...]
    diff: str
    backup: str | None = None
    dropin: str | None = None
    dropin_changed: bool = False
    reloaded: bool = False
    notes: tuple[str, ...] = ()
    #: The env file as it is on the host after this (before it, for a dry run or no change).
    on_host: HostEnv | None = None

    @property
    def backup_stamp(self) -> str | None:
        match = _BACKUP_NAME.search(self.backup or "")
        return match.group("stamp") if match else None


@dataclass(frozen=True)
class RestartResult:
    host: str
    service: str
    command: str | None
    healthy: bool
    state: str | None  # systemd's word (active, failed...), None when the host has no systemd
    health_status: int | None  # HTTP status of health_url (0: no answer), None without health_url
    seconds: float
    reason: str = ""  # why it is not healthy
    restart_exit: int | None = None


@dataclass(frozen=True)
class RollbackResult:
    host: str
    env_file: str
    backup: str  # the backup restored (its path; the .absent marker when the file was removed)
    action: str  # "restored" or "removed"
    dry_run: bool = False
    dropin: str | None = None
    restart: RestartResult | None = None


@dataclass(frozen=True)
class CheckResult:
    host: str
    service: str
    mode: str
    env_file: str
    env_file_exists: bool
    endpoint_id: str | None
    endpoint_url: str | None
    api_key: str | None  # "****" when set
    state: str | None
    health_status: int | None
    healthy: bool
    backups: tuple[str, ...] = ()
    drift: tuple[str, ...] = ()  # keys whose value differs from the expected values, when given
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApplyResult:
    configure: ConfigureResult
    restart: RestartResult | None  # None when nothing changed and no restart was asked for


class BackendRolledBackError(BackendError):
    """The new settings did not come up; the backup was restored. ``recovered`` says if that worked."""

    def __init__(self, message: str, *, hint: str | None, rollback: RollbackResult | None, recovered: bool) -> None:
        super().__init__(message, hint=hint)
        self.rollback = rollback
        self.recovered = recovered

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["rolled_back"] = self.rollback is not None
        data["recovered"] = self.recovered
        return data
