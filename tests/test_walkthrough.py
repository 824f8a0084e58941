"""docs/first-deploy.md: the recorded first deploy against the emulator, in a terminal under tmux.

The test records it again (scripts/walkthrough.py) and holds the committed recording to it, word
for word once ids, ports, times and dates are set aside, so the doc cannot drift from what rpdeploy
prints; and it checks that none of issue 16's problems shows in it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOC = ROOT / "docs" / "first-deploy.md"

#: What a newcomer ran into (issue 16), as it would show in the terminal.
PROBLEMS = (
    "fits: fits:",  # said twice
    "no endpoint recorded yet",  # status after the Quickstart
    "RUNPOD_API_KEY is not set",
    "has not run yet",
    "Aborted",  # exit codes: a declined question or Ctrl-C
    "Traceback",
    "pass --method",  # a wrong answer ended the session, naming a flag nobody typed
)


def _volatile(text: str) -> list[str]:
    """The recording's words, with what changes from run to run (ids, ports, times) set aside."""
    text = re.sub(r"\brel-[0-9a-z]+-[0-9a-f]{12}\b", "<release>", text)  # its content holds the deployment id
    text = re.sub(r"\b[a-z0-9]{14}\b", "<id>", text)  # endpoint ids
    text = re.sub(r"\b[0-9a-f]{16}\b", "<hex>", text)  # deployment ids
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<when>", text)
    text = re.sub(r"\d+(\.\d+)?", "<n>", text)
    return text.split()


def _record(out: Path) -> str:
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is missing: scripts/test.sh installs it (Debian package tmux)")
        pytest.skip("tmux is not installed (apt-get install tmux)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "walkthrough.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out.read_text(encoding="utf-8")


def test_the_recorded_walkthrough_is_what_rpdeploy_prints(tmp_path: Path) -> None:
    fresh = _record(tmp_path / "first-deploy.md")
    committed = DOC.read_text(encoding="utf-8")
    assert _volatile(fresh) == _volatile(committed), "docs/first-deploy.md is stale: run scripts/walkthrough.py"


def test_the_walkthrough_shows_none_of_the_problems() -> None:
    text = DOC.read_text(encoding="utf-8")
    session = text.split("```text\n", 1)[1]
    for problem in PROBLEMS:
        assert problem not in session, problem
    # A wrong answer is explained and asked again; the session goes on.
    assert session.count("Method: 1 worker-vllm, 2 custom-handler, 3 fastapi [1]:") == 2
    # status right after the first deploy shows it; no stage of it pending.
    status = session.split("$ rpdeploy status\n", 1)[1].split("\n$ ", 1)[0]
    assert "pending" not in status and re.search(r"smoke-test +done", status)
    # The second deploy has nothing to do, and says only that (no old answer shown again).
    second = session.split("$ rpdeploy deploy --emulator\n")[2].split("\n$ ", 1)[0]
    assert "stages run: none (everything was up to date)" in second and "answer" not in second
    assert "running" not in second
    # rpdeploy broke its long lines between words itself: none filled the terminal's 100 columns,
    # which is where the terminal would have cut one mid-word.
    assert all(len(line) < 100 for line in session.splitlines())
