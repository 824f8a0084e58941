"""What a no-change re-run of `rpdeploy deploy` reads: the build stage's stat cache of the worker folder.

Listing the build context takes the docker SDK's .dockerignore matcher, and importing the SDK
costs about 0.3 s, most of a no-change re-run. So the build stage's input fingerprint reuses
the last context hash while no entry of the worker folder changed by its stat (path, mode,
size, mtime, inode), and never trusts entries modified within two seconds of being cached.
No engine is needed: these tests compute the stage's inputs the way `deploy` does.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from rpdeploy.config import load_config
from rpdeploy.deploy.ledger import Ledger
from rpdeploy.deploy.stages import STAGES, Context, DeployOptions
from rpdeploy.output import NullReporter
from tests.support.deploy_fixtures import write_deploy_project

BUILD = next(stage for stage in STAGES if stage.name == "build")


def build_inputs(project: Path, ledger: Ledger) -> dict[str, Any]:
    config = load_config(project / "deploy.yaml")
    return BUILD.inputs(Context(config, NullReporter(), ledger, DeployOptions(), os.environ))


def age(folder: Path, seconds: float = 60) -> None:
    """Make every entry of ``folder`` look modified ``seconds`` ago."""
    then = time.time() - seconds
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (then, then), follow_symlinks=False)
    os.utime(folder, (then, then))


@pytest.fixture
def worker(project: Path) -> Path:
    write_deploy_project(project, method=2)
    return project / "worker"


def test_an_unchanged_folder_reuses_the_hash_and_any_change_is_seen(project: Path, worker: Path) -> None:
    ledger = Ledger(project / ".rpdeploy" / "state.json")
    # Just written: too fresh to be cached.
    first = build_inputs(project, ledger)
    assert "build_context" not in ledger.extra
    age(worker)
    assert build_inputs(project, ledger) == first
    cached = ledger.extra["build_context"]
    assert cached["files"] == first["files"]
    # The cache is used: a wrong hash planted in it comes back while nothing changed ...
    ledger.extra["build_context"] = {**cached, "files": "planted"}
    assert build_inputs(project, ledger)["files"] == "planted"
    ledger.extra["build_context"] = cached

    # ... and each kind of change is a new hash.
    handler = worker / "handler.py"
    text = handler.read_text()
    handler.write_text(text.replace("import", "IMPORT", 1))  # same size, new content
    edited = build_inputs(project, ledger)
    assert edited["files"] != first["files"]
    handler.write_text(text)
    age(worker)
    assert build_inputs(project, ledger)["files"] == first["files"]
    handler.chmod(0o755)
    assert build_inputs(project, ledger)["files"] != first["files"]
    handler.chmod(0o644)
    (worker / "extra.txt").write_text("sent to the engine\n")
    assert build_inputs(project, ledger)["files"] != first["files"]
    (worker / "extra.txt").unlink()
    age(worker)
    assert build_inputs(project, ledger)["files"] == first["files"]


def test_an_ignored_file_changes_the_stat_not_the_hash(project: Path, worker: Path) -> None:
    ledger = Ledger(project / ".rpdeploy" / "state.json")
    age(worker)
    first = build_inputs(project, ledger)
    key = ledger.extra["build_context"]["key"]
    (worker / ".dockerignore").write_text((worker / ".dockerignore").read_text() + "notes.md\n")
    ignoring = build_inputs(project, ledger)
    assert ignoring["files"] != first["files"]  # .dockerignore itself is sent
    age(worker)
    ignoring = build_inputs(project, ledger)
    (worker / "notes.md").write_text("not sent\n")
    age(worker)
    again = build_inputs(project, ledger)
    assert again["files"] == ignoring["files"]  # the full listing ran: notes.md is ignored
    assert ledger.extra["build_context"]["key"] != key


def test_settings_outside_the_folder_are_part_of_the_key(project: Path, worker: Path) -> None:
    ledger = Ledger(project / ".rpdeploy" / "state.json")
    age(worker)
    first = build_inputs(project, ledger)
    config = project / "deploy.yaml"
    config.write_text(config.read_text().replace("rpdeploy-test/python:1", "rpdeploy-test/python:2"))
    assert build_inputs(project, ledger)["files"] != first["files"]
