"""Run rpdeploy on a real pseudo-terminal, answering prompts as they appear."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_in_terminal(
    args: Sequence[str],
    cwd: Path,
    *,
    answers: Sequence[tuple[str, str]] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, str]:
    """``python -m rpdeploy ARGS`` with a TTY on stdin/stdout/stderr: (exit code, everything it wrote).

    ``answers`` are (text, reply) pairs: when ``text`` shows up on the last line written, ``reply``
    is typed, followed by Enter. ``env`` defaults to this process's environment without CI.
    """
    environ = dict(env) if env is not None else {k: v for k, v in os.environ.items() if k != "CI"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes rpdeploy
        os.chdir(cwd)
        os.execvpe(sys.executable, [sys.executable, "-m", "rpdeploy", *args], environ)
    output, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the child closed the terminal: it has exited
                    break
                if not chunk:
                    break
                output += chunk
            if pending and pending[0][0].encode() in output.rsplit(b"\n", 1)[-1]:
                os.write(fd, pending.pop(0)[1].encode() + b"\r")
        else:  # the time ran out, still waiting for input nobody will type: a failure to see, not a hang
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
