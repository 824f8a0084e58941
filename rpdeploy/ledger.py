"""The state ledger, ``.rpdeploy/state.json``: what each stage did, so a re-run can resume.

The ledger is a cache and a resume point, never the truth: RunPod is asked what exists on
every run. It holds outputs (image digest, template and endpoint ids, backup paths, smoke
results), timings and an input fingerprint per stage; never a secret. It is versioned and
replaced atomically, so a crash at any instant leaves the previous complete file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpdeploy.errors import ConfigError
from rpdeploy.fsutil import atomic_write

LEDGER_NAME = "state.json"
LEDGER_VERSION = 1
#: How many earlier deployments `rpdeploy rollback` can go back to.
HISTORY_LIMIT = 20


@dataclass
class StageRecord:
    status: str  # "done" | "failed" | "running" | "skipped" | "rolled-back" (only "done" is skipped on re-runs)
    fingerprint: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    seconds: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "fingerprint": self.fingerprint,
            "outputs": self.outputs,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": self.seconds,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageRecord:
        return cls(
            status=str(data.get("status", "")),
            fingerprint=str(data.get("fingerprint", "")),
            outputs=dict(data.get("outputs") or {}),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            seconds=data.get("seconds"),
            error=data.get("error"),
        )


@dataclass
class Ledger:
    path: Path
    stages: dict[str, StageRecord] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> Ledger:
        path = state_dir / LEDGER_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"the deploy ledger {path} is unreadable ({exc})",
                hint="move it away and re-run: RunPod is the source of truth, so nothing is duplicated",
            ) from None
        if not isinstance(data, dict) or data.get("version") != LEDGER_VERSION:
            raise ConfigError(
                f"the deploy ledger {path} has an unknown format (version {data.get('version')!r})",
                hint="it was written by another rpdeploy version; move it away and re-run",
            )
        stages = {name: StageRecord.from_json(rec) for name, rec in (data.get("stages") or {}).items()}
        return cls(path, stages, list(data.get("history") or []), dict(data.get("extra") or {}))

    def save(self) -> None:
        document = {
            "version": LEDGER_VERSION,
            "updated_at": round(time.time(), 3),
            "stages": {name: rec.to_json() for name, rec in self.stages.items()},
            "history": self.history[-HISTORY_LIMIT:],
            "extra": self.extra,
        }
        atomic_write(self.path, json.dumps(document, indent=2, sort_keys=False) + "\n", mode=0o600)

    def output(self, stage: str, key: str) -> Any:
        record = self.stages.get(stage)
        if record is None or record.status != "done":
            return None
        return record.outputs.get(key)

    def record(
        self, stage: str, outputs: dict[str, Any], *, fingerprint: str = "", seconds: float | None = None
    ) -> None:
        """Mark ``stage`` done with ``outputs`` (used by single commands such as build and endpoint)."""
        now = time.time()
        self.stages[stage] = StageRecord(
            status="done",
            fingerprint=fingerprint,
            outputs=outputs,
            started_at=now - (seconds or 0.0),
            finished_at=now,
            seconds=seconds,
        )
