"""One deploy of a config at a time: an advisory lock on ``.rpdeploy/deploy.lock``.

The kernel holds the lock (``flock``) for as long as the process lives, so a deploy killed
with SIGKILL, or a machine that rebooted, never leaves a stale lock behind: the next run
simply takes it. The file's content only says who holds it, for the error message.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Any

from rpdeploy.errors import LockError

LOCK_NAME = "deploy.lock"


class DeployLock:
    def __init__(self, state_dir: Path, *, command: str) -> None:
        self.path = state_dir / LOCK_NAME
        self.command = command
        self._handle: IO[str] | None = None

    def __enter__(self) -> DeployLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Held open for as long as the lock is held.
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(handle)
            handle.close()
            raise LockError(
                f"another rpdeploy process is working on this config{holder}",
                hint="wait for it to finish; the lock is released automatically when that process ends, even if it "
                "is killed",
            ) from None
        handle.seek(0)
        handle.truncate()
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command, "since": time.time()}
        handle.write(json.dumps(info))
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _describe(handle: IO[str]) -> str:
    try:
        handle.seek(0)
        info: dict[str, Any] = json.loads(handle.read() or "{}")
    except (OSError, ValueError):
        return ""
    if not info:
        return ""
    since = time.strftime("%H:%M:%S", time.localtime(float(info.get("since", 0))))
    return f" ({info.get('command', 'rpdeploy')}, pid {info.get('pid')} on {info.get('host')}, since {since})"
