"""The README's shell snippets, run as written by bash in a subprocess, against the emulator.

Each test takes the snippet from README.md itself (the first ```sh block after a heading), so
what a newcomer copies is what is tested: the Quickstart (in a fresh virtualenv, from a copy of
this checkout), the emulator section, and trying a method-2 worker on this machine. Nothing here
sets a RunPod key: the snippets must not need one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, STANDINS

README = ROOT / "README.md"


def snippet(heading: str) -> str:
    """The first ```sh block after ``heading`` (a line of README.md), as written."""
    text = README.read_text(encoding="utf-8")
    at = text.index(f"\n{heading}\n")
    match = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL).search(text, at)
    assert match is not None, f"no sh block after {heading!r}"
    return match.group(1)


def clean_env(bin_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """A newcomer's environment: PATH with the rpdeploy console script, no RunPod or CI variables."""
    rpdeploy = shutil.which("rpdeploy")
    assert rpdeploy, "the rpdeploy console script is installed (pip install -e .)"
    drop = ("RUNPOD_", "RPDEPLOY_EMULATOR", "CI", "GITHUB_ACTIONS", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = os.pathsep.join([str(bin_dir or Path(rpdeploy).parent), env.get("PATH", "")])
    env["NO_COLOR"] = "1"
    env["HF_HUB_OFFLINE"] = "1"  # the fit check's Hub lookup: the built-in table, the same everywhere
    return {**env, **extra}


def shell(
    script: str, cwd: Path, env: dict[str, str], *, timeout: float = 300, isolated_network: bool = False
) -> tuple[int, str, str]:
    """bash running ``script`` in its own session: (exit code, stdout, stderr) once bash has ended.

    Output goes to files, not pipes, so a process the snippet left in the background (holding
    the output open) cannot keep the test waiting; whatever is left in the session is stopped.
    """
    argv = ["bash", "-e", "-c", script]
    if isolated_network:
        # A private loopback: the snippet's fixed port (8000) cannot meet another test's.
        argv = ["unshare", "--net", "bash", "-e", "-c", "ip link set lo up\n" + script]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, text=True, start_new_session=True)
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # the session this test started, and only that
            process.wait(timeout=30)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code is None:
        pytest.fail(f"the snippet did not finish in {timeout}s:\n{script}\n{stdout}\n{stderr}")
    return code, stdout, stderr


def run(script: str, cwd: Path, env: dict[str, str], *, timeout: float = 300, **kwargs: bool) -> tuple[str, str]:
    code, out, err = shell(script, cwd, env, timeout=timeout, **kwargs)
    assert code == 0, f"the README snippet failed ({code}):\n{script}\n{out}\n{err}"
    return out, err


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_the_emulator_section_works_as_written(project: Path) -> None:
    """Item 1: `rpdeploy emulator ... &` then sourcing its output found the file still empty."""
    shutil.copy(ROOT / "deploy.yaml", project / "deploy.yaml")
    script = snippet("## The RunPod emulator")
    code, out, err = shell(script, project, clean_env())
    started = re.search(r"in the background \(pid (\d+)\)", err)
    pid = int(started.group(1)) if started else None
    try:
        assert code == 0, f"the README snippet failed:\n{script}\n{out}\n{err}"
        assert "Deployed 'qwen25-7b-instruct'" in out
        assert "stages run: account, template, gpu, endpoint, smoke-test" in out
        status = out.split("Deployed", 1)[1]
        assert "smoke-test       done" in status and "pending" not in status
        # The snippet's `kill` stops the emulator it started.
        assert pid is not None, err
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)
    finally:
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)  # the emulator this snippet started, should the test fail first


@pytest.mark.slow
def test_the_quickstart_works_as_written_from_a_fresh_install(tmp_path: Path) -> None:
    """`pip install . && rpdeploy deploy --emulator`, then status and smoke-test, in a new virtualenv."""
    checkout = tmp_path / "rpdeploy"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, files):
        source = ROOT / rel
        if source.is_file():
            (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / rel)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = clean_env(venv / "bin", VIRTUAL_ENV=str(venv))
    script = snippet("## Quickstart: a deployment without an account or a GPU")
    assert script.startswith("pip install . && rpdeploy deploy --emulator")
    out, _ = run(script, checkout, env, timeout=600)
    assert "Deployed 'qwen25-7b-instruct'" in out
    # `rpdeploy status` right after shows what the deploy made, not "every stage pending".
    status = out.split("stages run:", 1)[1]
    assert "Emulator sandbox" in status and "no endpoint recorded yet" not in status
    assert re.search(r"^ +11a +smoke-test +done", status, re.MULTILINE)
    assert "Smoke test of" in out and "PASSED" in out


@pytest.mark.slow
def test_trying_a_worker_on_this_machine_works_as_written(project: Path) -> None:
    """Item 10: `smoke-test --url http://localhost:8000` needs no RUNPOD_API_KEY, and waits for the worker."""
    from typer.testing import CliRunner

    from rpdeploy.cli import app

    result = CliRunner().invoke(app, ["init", "--method", "2", "--yes"])
    assert result.exit_code == 0, result.output
    env = clean_env(PYTHONPATH=str(STANDINS), HF_HUB_CACHE=str(project / ".hf-hub-cache"), PYTHONUNBUFFERED="1")
    worker = snippet_after("Methods 2 and 3 give you a `worker/` folder that is yours to edit.")
    assert "rpdeploy smoke-test --url http://localhost:8000" in worker
    out, err = run(worker, project, env, isolated_network=True)
    assert "Smoke test of http://localhost:8000 (custom-handler): PASSED" in out
    assert "RUNPOD_API_KEY" not in err


def snippet_after(sentence: str) -> str:
    """The first ```sh block after the paragraph that starts with ``sentence``."""
    text = README.read_text(encoding="utf-8")
    at = text.index(sentence)
    match = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL).search(text, at)
    assert match is not None
    return match.group(1)
