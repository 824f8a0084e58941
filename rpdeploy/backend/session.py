"""One backend operation's session with the host: what the host has (the inspect script's
facts), the scripts in ``scripts/*.sh`` that read and write there, and the checksum that makes a
write a compare-and-swap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from typing import TYPE_CHECKING, Any

from rpdeploy.backend import host as remote
from rpdeploy.backend.envfile import _PLAIN_NUMBER, _PLAIN_WORD, _is_secret, dropin_path, parse_env
from rpdeploy.backend.results import _BACKUP_NAME
from rpdeploy.backend.values import BackendValues
from rpdeploy.errors import BackendError, ConfigError
from rpdeploy.limits import shorten
from rpdeploy.output import Reporter
from rpdeploy.secrets import redact, register

if TYPE_CHECKING:
    from rpdeploy.config import BackendConfig, Config


#: Backups of the env file kept on the host (the newest; older ones are deleted after a write).
KEEP_BACKUPS = 5
#: Seconds a file operation on the host may take (connecting included).
FILE_TIMEOUT = 60.0
#: The most of the env file rpdeploy reads back from the host.
MAX_ENV_FILE = 1024 * 1024


# --- the scripts run on the host --------------------------------------------------------------
# POSIX sh in rpdeploy/backend/scripts/*.sh (shipped in the wheel, checked by shellcheck), run by
# rpdeploy.backend.host (arguments in "$@", data on stdin after the script). They print
# "key=value" facts or "@rpdeploy ..." progress lines on stdout; errors on stderr with an exit
# code of their own (never 255, which means "ssh failed").


def _script(name: str) -> str:
    return (resources.files("rpdeploy.backend") / "scripts" / name).read_text(encoding="utf-8")


_INSPECT = _script("inspect.sh")
_WRITE = _script("write.sh")
_RESTORE = _script("restore.sh")
_RESTART = _script("restart.sh")
_JOURNAL = _script("journal.sh")


# --- POSIX cksum (to notice a file that changed between our read and our write) ------------------


def _cksum_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CKSUM_TABLE = _cksum_table()


def cksum(data: bytes) -> str:
    """What ``cksum < file`` prints: the POSIX CRC and the length."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CKSUM_TABLE[(crc >> 24) ^ byte]
    length = len(data)
    while length:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CKSUM_TABLE[(crc >> 24) ^ (length & 0xFF)]
        length >>= 8
    return f"{~crc & 0xFFFFFFFF} {len(data)}"


# --- talking to the host ------------------------------------------------------------------------


@dataclass(frozen=True)
class _HostState:
    """What the inspect script found on the host."""

    path: str
    uid: int
    user: str
    dir_exists: bool
    dir_writable: bool
    file: str  # "0" absent, "1" regular file, "other"
    owner: str | None
    readable: bool
    systemd: bool
    unit: str | None
    active: str | None
    env_files: tuple[str, ...]
    backups: tuple[str, ...]
    backups_listed: bool
    symlink: str | None
    dropin_cksum: str | None
    content: bytes | None = field(default=None, repr=False)
    too_large: int | None = None

    @property
    def exists(self) -> bool:
        return self.file == "1"

    @property
    def owned(self) -> bool:
        return self.owner is not None and self.owner.split(":")[0] == str(self.uid)

    def backup_stamps(self) -> list[str]:
        """Complete backup sets, oldest first."""
        return sorted({stamp for stamp, kind in self.backup_files().values() if kind in ("bak", "absent")})

    def backup_files(self) -> dict[str, tuple[str, str]]:
        """Backup file name -> (stamp, kind), for names that are exactly ours (``<env file>.rpdeploy-...``)."""
        base = self.path.rsplit("/", 1)[-1]
        found = {}
        for name in self.backups:
            match = _BACKUP_NAME.search(name)
            if match and name == f"{base}.rpdeploy-{match.group('stamp')}.{match.group('kind')}":
                found[name] = (match.group("stamp"), match.group("kind"))
        return found


def _parse_inspect(output: bytes) -> _HostState:
    head, marker, content = output.partition(b"\n@content\n")
    if not marker and output.startswith(b"@content\n"):
        head, content, marker = b"", output[len(b"@content\n") :], b"x"
    facts: dict[str, list[str]] = {}
    for line in head.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts.setdefault(key, []).append(value)

    def one(key: str) -> str | None:
        values = facts.get(key)
        return values[-1] if values else None

    if len(facts.get("path", [])) != 1 or len(facts.get("uid", [])) != 1:
        # A path with a line break in it (a symlink's target) would also end up here: refuse it.
        raise BackendError("the host answered something rpdeploy does not understand (is its shell POSIX sh?)")
    uid = _int(one("uid") or "")
    if uid is None or uid < 0:
        raise BackendError(
            f"the host's `id -u` answered {shorten(one('uid') or '', 40)}, not a user id (is its shell POSIX sh?)"
        )
    too_large = _int(one("too_large") or "")
    return _HostState(
        path=one("path") or "",
        uid=uid,
        user=one("user") or "",
        dir_exists=one("dir") == "1",
        dir_writable=one("dir_writable") == "1",
        file=one("file") or "0",
        owner=one("owner"),
        readable=one("readable") == "1",
        systemd=one("systemd") == "1",
        unit=one("unit"),
        active=one("active"),
        env_files=tuple(re.sub(r"\s*\(ignore_errors=\w+\)$", "", v) for v in facts.get("envfile", [])),
        backups=tuple(facts.get("backup", [])),
        backups_listed=one("backups_listed") == "1",
        symlink=one("symlink"),
        dropin_cksum=one("dropin_cksum"),
        content=content if marker else None,
        too_large=too_large,
    )


class _Session:
    """One host, one backend section, and whether file operations need root there."""

    def __init__(self, config: Config, reporter: Reporter, host: remote.Host | None = None) -> None:
        if config.backend is None:
            raise ConfigError(
                f"{config.path} has no backend: section",
                hint="add one (host, mode, service, health_url...); `rpdeploy init --backend-host user@host` writes it",
            )
        self.config = config
        self.backend: BackendConfig = config.backend
        self.reporter = reporter
        self.host = host if host is not None else remote.host_for(self.backend)
        self.root = False
        self.systemd_mode = self.backend.mode.value == "systemd"

    @property
    def label(self) -> str:
        return self.host.label

    @property
    def secret_keys(self) -> frozenset[str]:
        return frozenset({self.backend.env_names.api_key})

    @property
    def clear_keys(self) -> frozenset[str]:
        """The keys rpdeploy writes whose values are not secret: shown in diffs."""
        names = self.backend.env_names
        return frozenset({names.endpoint_url, names.endpoint_id})

    @property
    def dropin(self) -> str | None:
        return dropin_path(self.backend.service) if self.systemd_mode else None

    def inspect(self, *, write: bool, content: bool = True) -> _HostState:
        """Look at the env file; switch to root (sudo) when the login cannot do what is needed."""
        env_file = self.backend.resolved_env_file
        if self.systemd_mode and not env_file.startswith("/"):
            raise ConfigError(f"backend.env_file {env_file!r}: systemd mode needs an absolute path")
        args = [env_file, self.backend.service, self.dropin or "", "1" if content else "0", str(MAX_ENV_FILE)]
        state = self._inspect(args, root=False)
        if isinstance(self.host, remote.SshHost):
            self.host.remember_uid(state.uid)
        if state.uid != 0 and self._needs_root(state, write=write):
            self.reporter.debug(f"{state.user or 'the login'} on {self.label} cannot do this alone: using sudo -n")
            self.root = True
            state = self._inspect([state.path, *args[1:]], root=True)
        if state.symlink:
            self.reporter.info(f"{env_file} is a symlink: editing its target {state.path}")
        if state.file == "other":
            raise BackendError(f"{state.path} on {self.label} exists but is not a regular file")
        if state.too_large is not None:
            raise BackendError(
                f"{state.path} on {self.label} is {state.too_large} bytes; rpdeploy edits env files of at most "
                f"{MAX_ENV_FILE} bytes",
                hint="is backend.env_file really the service's env file?",
            )
        if state.exists and content and state.content is None:
            raise BackendError(f"cannot read {state.path} on {self.label}", hint=self.host.sudo_hint())
        return state

    def _needs_root(self, state: _HostState, *, write: bool) -> bool:
        if write and self.systemd_mode:
            return True  # the drop-in and daemon-reload
        if state.exists and not state.readable:
            return True
        if not state.backups_listed and state.dir_exists:
            return True
        if write:
            return not (state.dir_writable and (not state.exists or state.owned))
        return False

    def _inspect(self, args: list[str], *, root: bool) -> _HostState:
        done = self.host.run(_INSPECT, args, root=root, timeout=FILE_TIMEOUT, what=f"reading {args[0]}")
        if done.returncode != 0:
            raise BackendError(f"reading {args[0]} on {self.label} failed: {done.stderr_tail or done.returncode}")
        return _parse_inspect(done.stdout)

    def run(self, script: str, args: Sequence[str], *, what: str, **kwargs: Any) -> remote.Completed:
        return self.host.run(script, args, root=self.root, what=what, **kwargs)

    def journal(self, lines: int = 20) -> None:
        """Show the end of the service's journal (untrusted text, redacted) to help say why."""
        try:
            done = self.host.run(
                _JOURNAL,
                [self.backend.service, str(lines)],
                root=self.root or not self.host.is_root(),
                timeout=30,
                what="reading the journal",
            )
        except BackendError as exc:
            self.reporter.debug(f"could not read the journal: {exc}")
            return
        text = redact(done.stdout.decode("utf-8", "replace")).strip()
        if text:
            self.reporter.info(f"last lines of {self.backend.service}'s journal on {self.label}:")
            for line in text.splitlines():
                self.reporter.log_line(line)


def _decode_env(state: _HostState, label: str) -> str | None:
    if state.content is None:
        return None
    if b"\0" in state.content:
        raise BackendError(f"{state.path} on {label} contains a NUL byte; not editing it")
    try:
        return state.content.decode("utf-8")
    except UnicodeDecodeError:
        raise BackendError(f"{state.path} on {label} is not UTF-8 text; not editing it") from None


def _register_secrets(text: str | None, secret_keys: frozenset[str]) -> None:
    """Values of secret-looking keys already on the host are masked in all output from now on."""
    if text is None:
        return
    for entry in parse_env(text):
        value = entry.value or ""
        if entry.key is None or not value or not _is_secret(entry.key, secret_keys):
            continue
        # A short plain word ("true", "admin") would mask that word in every message from now on.
        if entry.key in secret_keys or len(value) >= 8 or not (_PLAIN_NUMBER.match(value) or _PLAIN_WORD.match(value)):
            register(value)


def _updates(session: _Session, values: BackendValues) -> dict[str, str]:
    names = session.backend.env_names
    return {
        names.endpoint_url: values.endpoint_url,
        names.endpoint_id: values.endpoint_id,
        names.api_key: values.api_key.reveal(),
    }


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def _unit_notes(session: _Session, state: _HostState) -> list[str]:
    """Warn when the service will not see the file we write."""
    service = session.backend.service
    if not state.systemd:
        return []
    if state.unit == "not-found":
        return [f"{service}.service is not a systemd unit on {session.label}; check backend.service"]
    if session.systemd_mode or not state.unit:
        return []
    if state.path not in state.env_files:
        listed = ", ".join(state.env_files) or "none"
        return [
            f"{service}.service does not read {state.path} (its EnvironmentFile= entries: {listed}); "
            "the new values reach it only if the application reads that file itself. "
            "Use mode: systemd, or set backend.env_file to the unit's file"
        ]
    return []


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None
