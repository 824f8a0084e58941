"""The state ledger, ``.rpdeploy/state.json``: what each stage did, so a re-run can resume.

The ledger is a cache and a resume point, never the truth: RunPod is asked what exists on
every run. It holds outputs (image digest, template and endpoint ids, backup paths, smoke
results), timings and an input fingerprint per stage; never a secret. It is versioned and
replaced atomically, so a crash at any instant leaves the previous complete file.

Reading it trusts nothing: the file is read within the limits of :mod:`rpdeploy.limits`
(1 MiB, JSON depth 64) and validated as a whole against :class:`LedgerDocument` (pydantic,
strict types: a stage record that is a string, ``outputs`` that is not an object or a
``history`` that is not a list is refused). The outputs later stages read back are typed too.
Any problem is a ConfigError (exit 3) that names the file, the field, and the fix: move the
file away and deploy again (RunPod is the source of truth, so nothing is duplicated).

The ledger speaks rpdeploy's terms, not an API's: version 2 records the GPU selection as
``gpus: {"pools": [...], "excluded": [...]}`` where version 1 kept GraphQL's ``gpuIds`` text
(``gpu_ids``). A version-1 ledger is migrated when it is read (:func:`migrate`) and written
as version 2 by the next save; its RunPod stages run once more on the next deploy (their
inputs now name the API), find nothing to change and send nothing.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rpdeploy import limits
from rpdeploy.errors import ConfigError
from rpdeploy.fsutil import atomic_write

LEDGER_NAME = "state.json"
LEDGER_VERSION = 2
#: Versions this rpdeploy reads (older ones are migrated on read).
READABLE_VERSIONS = (1, 2)
#: How many earlier deployments `rpdeploy rollback` can go back to.
HISTORY_LIMIT = 20


# --- the document's schema -------------------------------------------------------------------

Status = Literal["done", "failed", "running", "skipped", "rolled-back"]


class _Strict(BaseModel):
    # Unknown keys are kept out of the way (ignored), wrong types refused without coercion.
    model_config = ConfigDict(strict=True, extra="ignore")


class _Outputs(_Strict):
    """Outputs a later stage or command reads back; any other key may be there too."""

    model_config = ConfigDict(strict=True, extra="allow")
    image: str | None = None
    image_id: str | None = None
    name: str | None = None
    tag: str | None = None
    digest: str | None = None
    template_id: str | None = None
    endpoint_id: str | None = None
    gpus: dict[str, list[str]] | None = None
    #: Version 1's name for ``gpus`` (migrated away on read; here only so a damaged one is refused).
    gpu_ids: str | None = None
    registry_auth_id: str | None = None
    urls: dict[str, str | None] | None = None
    host: str | None = None
    mode: str | None = None
    env_file: str | None = None
    backup: str | None = None
    changed: bool | None = None
    files: dict[str, str] | None = None
    #: The release a template made and the endpoint check proved (rpdeploy.runpod.release).
    release: str | None = None
    release_proven_by: str | None = None
    release_report: list[str] | None = None


class _StageDocument(_Strict):
    status: Status
    fingerprint: str = ""
    outputs: _Outputs = Field(default_factory=_Outputs)
    started_at: float | None = None
    finished_at: float | None = None
    seconds: float | None = None
    error: str | None = None


class _HistoryEntry(_Strict):
    model_config = ConfigDict(strict=True, extra="allow")
    at: float | None = None
    image: str | None = None
    template_id: str | None = None
    endpoint_id: str | None = None
    backend_backup: str | None = None


class LedgerDocument(_Strict):
    """``state.json`` as a whole."""

    version: Literal[2]
    updated_at: float | None = None
    stages: dict[str, _StageDocument] = Field(default_factory=dict)
    history: list[_HistoryEntry] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


def _recovery_hint(path: Path) -> str:
    return (
        f"move it away (mv {path} {path}.broken) and run the command again: RunPod is the source of truth, so "
        "nothing is duplicated; only the resume point, the build cache and the rollback history are lost"
    )


def _parse(path: Path, raw: bytes) -> LedgerDocument:
    what = f"the deploy ledger {path}"
    try:
        text = limits.decode_text(raw, what="the deploy ledger", path=path)
        data = limits.loads_json(text, depth=limits.LEDGER_DEPTH, what=what)
    except ConfigError as exc:
        raise ConfigError(exc.message, hint=_recovery_hint(path)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} is not a JSON object", hint=_recovery_hint(path))
    if data.get("version") not in READABLE_VERSIONS:
        raise ConfigError(
            f"{what} has an unknown format (version {limits.shorten(data.get('version'))})",
            hint="it was written by another rpdeploy version; " + _recovery_hint(path),
        )
    data = migrate(data)
    try:
        return LedgerDocument.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False)[:5]:
            where = ".".join(str(part) for part in error["loc"])[:80] or "(top)"
            message = re.sub(r" or instance of \w+", "", str(error["msg"]))
            problems.append(f"{where}: {message}")
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise ConfigError(f"{what} is damaged: {'; '.join(problems)}{more}", hint=_recovery_hint(path)) from None


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A ledger document of any readable version, as the current version (a new dict).

    1 -> 2: stage outputs ``gpu_ids`` (GraphQL's ``gpuIds``: "POOL,-GPU TYPE,...") become
    ``gpus`` (``{"pools": [...], "excluded": [...]}``). Anything not shaped as expected is left
    for validation to refuse.
    """
    from rpdeploy.preflight.gpus import GpuSelection

    data = dict(data)
    if data.get("version") == 1:
        stages = data.get("stages")
        if isinstance(stages, dict):
            migrated: dict[str, Any] = {}
            for name, record in stages.items():
                if isinstance(record, dict) and isinstance(record.get("outputs"), dict):
                    outputs = dict(record["outputs"])
                    legacy = outputs.pop("gpu_ids", None)
                    if isinstance(legacy, str):
                        outputs["gpus"] = GpuSelection.parse(legacy).to_dict()
                    elif legacy is not None:
                        outputs["gpu_ids"] = legacy  # not text: validation says so
                    record = {**record, "outputs": outputs}
                migrated[name] = record
            data["stages"] = migrated
        data["version"] = 2
    return data


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
    def from_document(cls, data: _StageDocument) -> StageRecord:
        return cls(
            status=data.status,
            fingerprint=data.fingerprint,
            outputs=data.outputs.model_dump(exclude_unset=True),
            started_at=data.started_at,
            finished_at=data.finished_at,
            seconds=data.seconds,
            error=data.error,
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
            raw = limits.read_limited(path, limits.LEDGER_BYTES, what="the deploy ledger", regular_only=True)
        except FileNotFoundError:
            return cls(path)
        except ConfigError as exc:
            raise ConfigError(exc.message, hint=_recovery_hint(path)) from None
        document = _parse(path, raw)
        stages = {name: StageRecord.from_document(record) for name, record in document.stages.items()}
        history = [entry.model_dump(exclude_unset=True) for entry in document.history]
        return cls(path, stages, history, dict(document.extra))

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
