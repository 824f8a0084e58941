"""One deploy of a project at a time: an advisory lock held on the project folder itself.

The kernel holds the lock (``flock``) for as long as the process lives, so a deploy killed
with SIGKILL, or a machine that rebooted, never leaves a stale lock behind: the next run
simply takes it.

What is locked is the project folder (the one holding ``.rpdeploy/``, where deploy.yaml
lives), opened as a directory: not a file inside
``.rpdeploy/``. Deleting ``.rpdeploy/`` in the middle of a deploy therefore cannot hand a
second deploy a fresh lock of its own (a lock file would have been unlinked with the folder,
and a new one created next to nothing). The folder is opened by its real path with
``O_DIRECTORY | O_NOFOLLOW``, so a symlink in its place cannot redirect the lock to a file.

``.rpdeploy/deploy.lock`` only says who holds the lock, for the error message. It is
replaced atomically (a temp file renamed over it), which replaces a symlink planted there
instead of writing through it, and it is read with ``O_NOFOLLOW`` and a size limit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from rpdeploy.errors import LockError
from rpdeploy.fsutil import atomic_write
from rpdeploy.limits import LOCK_NOTE_BYTES

LOCK_NAME = "deploy.lock"


class DeployLock:
    def __init__(self, state_dir: Path, *, command: str) -> None:
        self.state_dir = state_dir
        #: Who holds the lock (informational only).
        self.path = state_dir / LOCK_NAME
        #: What is locked: the project folder (the one holding ``.rpdeploy/``, also for the
        #: emulator's ``.rpdeploy/emulator/``: its deploys build and write the same worker files).
        anchor = state_dir.absolute().parent
        while anchor.name == ".rpdeploy" and anchor.parent != anchor:
            anchor = anchor.parent
        self.anchor = anchor
        self.command = command
        self._fd: int | None = None

    def __enter__(self) -> DeployLock:
        anchor = os.path.realpath(self.anchor)
        try:
            # By its real path, and O_NOFOLLOW: a symlink swapped in after realpath() fails the open.
            fd = os.open(anchor, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise LockError(f"cannot lock {anchor}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockError(
                f"another rpdeploy process is working on this config{_describe(self.path)}",
                hint="wait for it to finish; the lock is released automatically when that process ends, even if it "
                "is killed",
            ) from None
        except OSError as exc:
            os.close(fd)
            raise LockError(f"cannot lock {anchor}: {exc.strerror}") from None
        self._fd = fd
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command, "since": time.time()}
        try:
            atomic_write(self.path, json.dumps(info), mode=0o644)
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # unlinks the entry itself (a symlink too), never its target
            self._release()

    def _release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _describe(path: Path) -> str:
    """``(deploy, pid 123 on host, since 12:00:00)`` from the holder's note, or nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        raw = os.read(fd, LOCK_NOTE_BYTES)
        info: Any = json.loads(raw.decode("utf-8") or "{}")
        if not isinstance(info, dict) or not info:
            return ""
        since = time.strftime("%H:%M:%S", time.localtime(float(info.get("since") or 0)))
    except (OSError, ValueError, TypeError, OverflowError):
        return ""
    finally:
        os.close(fd)
    fields = [str(info.get(key, "?"))[:64] for key in ("command", "pid", "host")]
    return f" ({fields[0]}, pid {fields[1]} on {fields[2]}, since {since})"
