"""How rpdeploy talks to people and to machines.

The core never prints: it is handed a :class:`Reporter` and tells it what happened. The
console reporter writes progress, warnings and logs to **stderr** (rich on a terminal, plain
lines in CI) and keeps **stdout** for results: one JSON document with ``--json``, or NDJSON
events for long commands that ask for them. Every string goes through
:func:`rpdeploy.secrets.redact` on its way out, and nothing untrusted is read as rich markup.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, Protocol

from rpdeploy.secrets import redact, redact_data

if TYPE_CHECKING:
    from rich.console import Console

#: How often a non-terminal wait prints "still waiting" so CI logs show the job is alive.
HEARTBEAT_SECONDS = 30.0


# Anything but printable ASCII, tab and newline: the fast test before the careful one.
_NOT_PLAIN = re.compile(r"[^\t\n\x20-\x7e]")
# Shown as escapes on a terminal: control characters (ESC starts terminal commands, CR
# overwrites a line, BEL rings), invisible format characters (bidi overrides and isolates,
# zero-width ones), surrogates, private-use and unassigned code points, line/paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def printable(text: str, *, newlines: bool = True) -> str:
    """``text`` safe for a terminal or a log: hidden and control characters as ``\\x1b``/``\\u202e`` escapes.

    Tabs stay; newlines stay unless ``newlines`` is False. Every line rpdeploy writes for
    people goes through this, because much of it is text we did not write (API messages,
    remote stderr, a model's answer, names from deploy.yaml).
    """
    if not _NOT_PLAIN.search(text):
        return text
    out = []
    for char in text:
        if char == "\t" or (char == "\n" and newlines) or "\x20" <= char <= "\x7e":
            out.append(char)
        elif char < "\x80" or unicodedata.category(char) in _HIDDEN:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(char)
    return "".join(out)


def is_ci() -> bool:
    """True when a CI system says so (``CI`` set to anything but empty/0/false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def can_prompt() -> bool:
    """Prompts are allowed only for a person at a terminal: stdin is a TTY and CI is unset."""
    try:
        tty = sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        tty = False
    return tty and not is_ci()


def _format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def format_bytes(count: float) -> str:
    """Human-readable bytes: 1.2 GB, 340.0 kB (decimal units, as docker and registries show)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


class Status(Protocol):
    """A long wait in progress (spinner on a terminal, change lines plus heartbeats in CI)."""

    def update(self, message: str) -> None: ...


class Transfer(Protocol):
    """Progress of several byte transfers at once, e.g. the layers of a push."""

    def update(self, key: str, *, description: str, completed: int | None = None, total: int | None = None) -> None: ...

    def finish(self, key: str, *, description: str) -> None: ...


class StageBoard(Protocol):
    """The list of deploy stages and their states."""

    def set(self, name: str, status: str, *, detail: str = "", seconds: float | None = None) -> None: ...


class Reporter(Protocol):
    """What the core may tell the user. Implementations decide how (or whether) to show it."""

    verbose: bool

    def info(self, message: str) -> None: ...

    def success(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def debug(self, message: str) -> None: ...

    def log_line(self, line: str) -> None:
        """A line of output from another program (docker build, remote command): untrusted text."""
        ...

    def event(self, name: str, /, **data: Any) -> None:
        """A machine-readable event (NDJSON on stdout when the command streams events)."""
        ...

    def status(self, message: str) -> Any:
        """Context manager yielding a :class:`Status`."""
        ...

    def transfer(self, title: str) -> Any:
        """Context manager yielding a :class:`Transfer`."""
        ...

    def stage_board(self, names: Sequence[str], steps: Mapping[str, str] | None = None) -> Any:
        """Context manager yielding a :class:`StageBoard`. ``steps`` labels each stage (the
        manual procedure's step numbers, ``11a`` ...); without it they are numbered in order."""
        ...


class _NullStatus:
    def update(self, message: str) -> None:
        pass


class _NullTransfer:
    def update(self, key: str, *, description: str, completed: int | None = None, total: int | None = None) -> None:
        pass

    def finish(self, key: str, *, description: str) -> None:
        pass


class _NullBoard:
    def set(self, name: str, status: str, *, detail: str = "", seconds: float | None = None) -> None:
        pass


class NullReporter:
    """Says nothing: the default for library use."""

    verbose = False

    def info(self, message: str) -> None:
        pass

    def success(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def debug(self, message: str) -> None:
        pass

    def log_line(self, line: str) -> None:
        pass

    def event(self, name: str, /, **data: Any) -> None:
        pass

    @contextmanager
    def status(self, message: str) -> Iterator[Status]:
        yield _NullStatus()

    @contextmanager
    def transfer(self, title: str) -> Iterator[Transfer]:
        yield _NullTransfer()

    @contextmanager
    def stage_board(self, names: Sequence[str], steps: Mapping[str, str] | None = None) -> Iterator[StageBoard]:
        yield _NullBoard()


class RecordingReporter(NullReporter):
    """Keeps everything it is told, redacted, for tests to assert on."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _keep(self, level: str, message: str) -> None:
        self.messages.append((level, redact(message)))

    def info(self, message: str) -> None:
        self._keep("info", message)

    def success(self, message: str) -> None:
        self._keep("success", message)

    def warn(self, message: str) -> None:
        self._keep("warn", message)

    def debug(self, message: str) -> None:
        self._keep("debug", message)

    def log_line(self, line: str) -> None:
        self._keep("log", line)

    def event(self, name: str, /, **data: Any) -> None:
        self.events.append((name, redact_data(data)))

    @contextmanager
    def status(self, message: str) -> Iterator[Status]:
        recorder = self

        class _Status:
            def update(self, message: str) -> None:
                recorder._keep("status", message)

        recorder._keep("status", message)
        yield _Status()

    @contextmanager
    def stage_board(self, names: Sequence[str], steps: Mapping[str, str] | None = None) -> Iterator[StageBoard]:
        recorder = self

        class _Board:
            def set(self, name: str, status: str, *, detail: str = "", seconds: float | None = None) -> None:
                recorder.events.append(("stage", {"stage": name, "status": status, "detail": detail}))

        yield _Board()

    def text(self) -> str:
        """Everything said, one message per line."""
        return "\n".join(message for _, message in self.messages)


class ConsoleReporter:
    """Rich on stderr for people; NDJSON events on stdout when ``events_to_stdout``."""

    def __init__(
        self,
        *,
        verbose: bool = False,
        events_to_stdout: bool = False,
        stderr: IO[str] | None = None,
        stdout: IO[str] | None = None,
    ) -> None:
        self.verbose = verbose
        self.events_to_stdout = events_to_stdout
        self._stdout = stdout
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            # markup/emoji/highlight off: messages and logs carry text we did not write
            # ("[error]" in a docker log must print as itself, not vanish as a style tag).
            stream = self._stderr if self._stderr is not None else sys.stderr
            try:
                terminal = stream.isatty()
            except (AttributeError, ValueError, OSError):
                terminal = False
            # On a terminal rich wraps long messages between words (the terminal itself would cut
            # them mid-word); in logs and pipes a message stays on one line.
            self._console = Console(
                file=stream,
                markup=False,
                emoji=False,
                highlight=False,
                soft_wrap=not terminal,
            )
        return self._console

    @property
    def live(self) -> bool:
        """Whether spinners and progress bars may redraw (a terminal, not CI)."""
        return self.console.is_terminal and not is_ci()

    def _print(self, text: str, style: str | None = None) -> None:
        self.console.print(printable(redact(text)), style=style)

    def info(self, message: str) -> None:
        self._print(message)

    def success(self, message: str) -> None:
        self._print(message, "green")

    def warn(self, message: str) -> None:
        self._print(f"Warning: {message}", "yellow")

    def debug(self, message: str) -> None:
        if self.verbose:
            self._print(message, "dim")

    def log_line(self, line: str) -> None:
        line = line.rstrip("\r\n")  # a CRLF ending is not worth an escape; any other CR is shown
        if line:
            self._print(f"  | {line}", "dim")

    def event(self, name: str, /, **data: Any) -> None:
        if not self.events_to_stdout:
            return
        record = {"event": name, "time": round(time.time(), 3), **data}
        out = self._stdout if self._stdout is not None else sys.stdout
        out.write(json.dumps(redact_data(record), default=str, separators=(",", ":")) + "\n")
        out.flush()

    @contextmanager
    def status(self, message: str) -> Iterator[Status]:
        if self.live:
            started = time.monotonic()
            with self.console.status(printable(redact(message), newlines=False)) as spinner:

                class _LiveStatus:
                    def update(self, message: str) -> None:
                        elapsed = _format_seconds(time.monotonic() - started)
                        spinner.update(f"{printable(redact(message), newlines=False)} ({elapsed})")

                yield _LiveStatus()
            return
        reporter = self

        class _PlainStatus:
            def __init__(self) -> None:
                self.started = time.monotonic()
                self.last_message = message
                self.last_print = self.started

            def update(self, message: str) -> None:
                now = time.monotonic()
                if message != self.last_message:
                    reporter._print(message)
                elif now - self.last_print >= HEARTBEAT_SECONDS:
                    reporter._print(f"still waiting: {message} ({_format_seconds(now - self.started)})")
                else:
                    return
                self.last_message = message
                self.last_print = now

        self._print(message)
        yield _PlainStatus()

    @contextmanager
    def transfer(self, title: str) -> Iterator[Transfer]:
        if self.live:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=self.console,
                transient=False,
            )
            tasks: dict[str, Any] = {}
            self._print(title)
            with progress:

                class _LiveTransfer:
                    def update(
                        self, key: str, *, description: str, completed: int | None = None, total: int | None = None
                    ) -> None:
                        label = printable(redact(f"{key[:12]} {description}"), newlines=False)
                        if key not in tasks:
                            tasks[key] = progress.add_task(label, total=total)
                        progress.update(tasks[key], description=label, completed=completed, total=total)

                    def finish(self, key: str, *, description: str) -> None:
                        label = printable(redact(f"{key[:12]} {description}"), newlines=False)
                        if key not in tasks:
                            tasks[key] = progress.add_task(label, total=1)
                        task = progress.tasks[tasks[key]]
                        done = task.total if task.total is not None else task.completed
                        progress.update(tasks[key], description=label, completed=done, total=done)

                yield _LiveTransfer()
            return
        reporter = self

        class _PlainTransfer:
            """One line per item per state: CI logs stay short and readable."""

            def __init__(self) -> None:
                self.seen: dict[str, str] = {}

            def update(
                self, key: str, *, description: str, completed: int | None = None, total: int | None = None
            ) -> None:
                if self.seen.get(key) == description:
                    return
                self.seen[key] = description
                size = f" ({format_bytes(total)})" if total else ""
                reporter._print(f"  {key[:12]}: {description}{size}")

            def finish(self, key: str, *, description: str) -> None:
                if self.seen.get(key) == description:
                    return
                self.seen[key] = description
                reporter._print(f"  {key[:12]}: {description}")

        self._print(title)
        yield _PlainTransfer()

    @contextmanager
    def stage_board(self, names: Sequence[str], steps: Mapping[str, str] | None = None) -> Iterator[StageBoard]:
        if self.live:
            from rich.live import Live
            from rich.table import Table
            from rich.text import Text

            rows: dict[str, tuple[str, str, float | None]] = {n: ("pending", "", None) for n in names}
            styles = {
                "pending": "dim",
                "running": "cyan",
                "done": "green",
                "skipped": "dim",
                "failed": "red",
                "interrupted": "yellow",
            }

            def render() -> Table:
                table = Table(show_header=False, box=None, pad_edge=False)
                for index, (stage, (state, detail, seconds)) in enumerate(rows.items(), start=1):
                    took = _format_seconds(seconds) if seconds is not None else ""
                    label = (steps or {}).get(stage, str(index))
                    table.add_row(
                        Text(f"{label:>3}"),
                        Text(stage),
                        Text(state, style=styles.get(state, "")),
                        Text(took, style="dim"),
                        Text(printable(redact(detail), newlines=False), style="dim"),
                    )
                return table

            with Live(render(), console=self.console, refresh_per_second=8, transient=False) as live:

                class _LiveBoard:
                    def set(self, name: str, status: str, *, detail: str = "", seconds: float | None = None) -> None:
                        rows[name] = (status, detail, seconds)
                        live.update(render())

                yield _LiveBoard()
            return
        reporter = self

        class _PlainBoard:
            def set(self, name: str, status: str, *, detail: str = "", seconds: float | None = None) -> None:
                took = f" in {_format_seconds(seconds)}" if seconds is not None else ""
                extra = f": {detail}" if detail else ""
                reporter._print(f"[{name}] {status}{took}{extra}")

        yield _PlainBoard()


#: ANSI colours for the few words that should stand out on a terminal (FAIL, Error:).
_ANSI = {"red": "\x1b[31m", "green": "\x1b[32m", "yellow": "\x1b[33m", "bold red": "\x1b[1;31m"}
_RESET = "\x1b[0m"


def colour_on(stream: IO[str]) -> bool:
    """Colours for ``stream``: a terminal, and neither NO_COLOR nor TERM=dumb (https://no-color.org)."""
    if "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def paint(text: str, colour: str) -> str:
    """``text`` in ``colour`` (a key of ``_ANSI``); for text already made printable."""
    return f"{_ANSI[colour]}{text}{_RESET}"


def fit_to_terminal(text: str, stream: IO[str]) -> str:
    """On a terminal, long lines broken between words at its width (continuations indented);
    elsewhere (CI logs, pipes) unchanged, one line per message."""
    try:
        if not stream.isatty():
            return text
    except (AttributeError, ValueError, OSError):
        return text
    import shutil
    import textwrap

    width = max(shutil.get_terminal_size((100, 24)).columns - 1, 40)
    out = []
    for line in text.split("\n"):
        if len(line) <= width:
            out.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip(" "))]
        out.append(
            textwrap.fill(
                line.strip(),
                width=width,
                initial_indent=lead,
                subsequent_indent=lead + "  ",
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    return "\n".join(out)


def print_json(document: Any, *, stream: IO[str] | None = None, compact: bool = False) -> None:
    """Write one JSON document (redacted) to stdout: the ``--json`` result of a command."""
    out = stream if stream is not None else sys.stdout
    if compact:
        text = json.dumps(redact_data(document), default=str, separators=(",", ":"))
    else:
        text = json.dumps(redact_data(document), indent=2, default=str)
    out.write(text + "\n")
    out.flush()


def print_result(text: str, *, stream: IO[str] | None = None, styles: dict[str, str] | None = None) -> None:
    """Write a human-readable result to stdout (redacted). On a colour terminal, a line that
    starts with a key of ``styles`` has that word in its colour (e.g. {"FAIL": "red"})."""
    out = stream if stream is not None else sys.stdout
    safe = fit_to_terminal(printable(redact(text)).rstrip("\n"), out)
    if styles and colour_on(out):
        lines = []
        for line in safe.split("\n"):
            word = next((w for w in styles if line.startswith(w)), None)
            lines.append(paint(word, styles[word]) + line[len(word) :] if word else line)
        safe = "\n".join(lines)
    out.write(safe + "\n")
    out.flush()
