"""What a build and a push show while they run: the build's log (steps, the last lines for an
error) and the push's per-layer progress.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpdeploy.errors import DockerError
from rpdeploy.output import Reporter, Transfer

if TYPE_CHECKING:
    pass


#: Lines of build output repeated in a build error.
LOG_TAIL = 15
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def _event_error(event: Mapping[str, Any]) -> str | None:
    """The message of an ``error``/``errorDetail`` event, or None."""
    detail = event.get("errorDetail")
    if isinstance(detail, Mapping) and detail.get("message"):
        return str(detail["message"]).strip()
    if event.get("error"):
        return str(event["error"]).strip()
    return None


class BuildLog:
    """Reads the build's event stream: lines to the reporter, steps counted, errors raised."""

    def __init__(self, reporter: Reporter, dockerfile: Path) -> None:
        self.reporter = reporter
        self.dockerfile = dockerfile
        self.step: str | None = None  # "Step 7/12 : RUN ..."
        self.steps = 0
        self.cached = 0
        self.image_id: str | None = None
        self.tail: deque[str] = deque(maxlen=LOG_TAIL)
        self._partial = ""
        self._seen_from = False

    def _line(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line.strip():
            return
        self.reporter.log_line(line)
        self.tail.append(line)
        match = _STEP.match(line)
        if match:
            self.step = line
            instruction = (match.group(3).split() or [""])[0].upper()
            # FROM and the ARGs before the first FROM are never cached or run: they do not count.
            if instruction == "FROM":
                self._seen_from = True
            elif self._seen_from or instruction != "ARG":
                self.steps += 1
        elif line.strip() == "---> Using cache":
            self.cached += 1

    def feed(self, event: Mapping[str, Any]) -> None:
        error = _event_error(event)
        if error is not None:
            self.flush()
            raise self.failure(error)
        chunk = event.get("stream")
        if isinstance(chunk, str):
            lines = (self._partial + chunk).split("\n")
            self._partial = lines.pop()
            for line in lines:
                self._line(line)
        status = event.get("status")
        if isinstance(status, str) and status.strip():
            self.reporter.log_line(status if not event.get("id") else f"{event['id']}: {status}")
        aux = event.get("aux")
        if isinstance(aux, Mapping) and isinstance(aux.get("ID"), str):
            self.image_id = aux["ID"]

    def flush(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""

    def failure(self, message: str) -> DockerError:
        where = "before the first step"
        if self.step:
            match = _STEP.match(self.step)
            assert match is not None
            where = f"at step {match.group(1)}/{match.group(2)} ({match.group(3).strip()})"
        lines = [f"the image build failed {where}: {message}"]
        tail = [line for line in self.tail if line != self.step]
        if tail:
            lines.append("last lines of output:")
            lines += [f"  | {line}" for line in tail]
        return DockerError(
            "\n".join(lines),
            hint=f"fix that step in {self.dockerfile} (or what it runs) and run `rpdeploy build` again; "
            "the whole build log is above",
        )


@dataclass
class _Layer:
    state: str = ""
    current: int = 0
    total: int = 0
    sent: bool = False  # reached "Pushed" in some attempt
    present: bool = False  # already in the registry / mounted


@dataclass
class _PushProgress:
    layers: dict[str, _Layer] = field(default_factory=dict)
    aux: dict[str, Any] | None = None

    def feed(self, event: Mapping[str, Any], transfer: Transfer, reporter: Reporter) -> None:
        aux = event.get("aux")
        if isinstance(aux, Mapping) and aux.get("Digest"):
            self.aux = dict(aux)
            return
        layer_id, status = event.get("id"), event.get("status")
        if not isinstance(status, str):
            return
        if not layer_id:
            reporter.debug(status)
            return
        layer = self.layers.setdefault(str(layer_id), _Layer())
        layer.state = status
        detail = event.get("progressDetail") or {}
        if status == "Pushing":
            layer.current = int(detail.get("current") or layer.current)
            layer.total = int(detail.get("total") or layer.total)
            # The engine counts tar bytes against the layer's size: clamp so a bar never passes 100 %.
            shown = min(layer.current, layer.total) if layer.total else layer.current
            transfer.update(str(layer_id), description="Pushing", completed=shown, total=layer.total or None)
        elif status == "Pushed":
            layer.sent = True
            transfer.finish(str(layer_id), description="Pushed")
        elif status == "Layer already exists" or status.startswith("Mounted from"):
            if not layer.sent:
                layer.present = True
            transfer.finish(str(layer_id), description=status)
        else:  # Preparing, Waiting, Retrying in N seconds
            transfer.update(str(layer_id), description=status)

    @property
    def bytes_pushed(self) -> int:
        return sum(layer.total or layer.current for layer in self.layers.values() if layer.sent)
