"""One test command (item 13): what CI runs is what the README gives people, and it installs what is missing."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

TEST_SH = ROOT / "scripts" / "test.sh"


def test_ci_and_the_readme_run_the_same_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    development = readme.split("\n## Development\n", 1)[1]
    first = re.search(r"^```sh\n(.*?)^```$", development, re.MULTILINE | re.DOTALL)
    assert first is not None
    assert first.group(1).strip() == "scripts/test.sh"  # the first thing the section shows, on its own
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == 'exec scripts/test.sh "$@"'
    assert not any("apt-get" in line or "pip install" in line for line in commands)  # all of it is in test.sh


def test_the_package_list_has_what_the_tests_use() -> None:
    text = TEST_SH.read_text(encoding="utf-8")
    listed = re.search(r"^PACKAGES=\((.*?)\)", text, re.MULTILINE | re.DOTALL)
    assert listed is not None
    packages = set(shlex.split(listed.group(1)))
    assert {"docker.io", "docker-registry", "apache2-utils", "openssh-client", "debootstrap", "tmux"} <= packages
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(package in readme.split("\n## Development\n", 1)[1] for package in packages)


def _fake_tools(bin_dir: Path, installed: set[str], log: Path) -> None:
    """dpkg-query that knows only ``installed``, and apt-get that records what it was asked."""
    bin_dir.mkdir()
    known = " ".join(sorted(installed))
    (bin_dir / "dpkg-query").write_text(
        "#!/bin/sh\nfor wanted; do :; done\nfor p in "
        + known
        + '; do [ "$p" = "$wanted" ] && { printf installed; exit 0; }; done\nexit 1\n'
    )
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "apt-get $*" >> {shlex.quote(str(log))}\n')
    for tool in ("dpkg-query", "apt-get"):
        (bin_dir / tool).chmod(0o755)


@pytest.mark.skipif(os.geteuid() != 0, reason="scripts/test.sh installs packages as root")
def test_it_installs_only_what_is_missing_then_sets_up_the_rest(tmp_path: Path) -> None:
    listed = re.search(r"^PACKAGES=\((.*?)\)", TEST_SH.read_text(), re.MULTILINE | re.DOTALL)
    assert listed is not None
    packages = shlex.split(listed.group(1))
    log = tmp_path / "apt.log"
    _fake_tools(tmp_path / "bin", set(packages) - {"tmux", "zstd"}, log)
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHON": sys.executable,
        "RPDEPLOY_TEST_CONTRACTS": "0",
    }
    done = subprocess.run(
        [str(TEST_SH), "--setup-only"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert log.read_text().splitlines() == ["apt-get update -q", "apt-get install -y -q zstd tmux"]
    for phase in ("apt", "pip", "services", "images"):
        assert re.search(rf"^  {phase} +\d+ s  ok$", done.stdout, re.MULTILINE), done.stdout
    assert "rpdeploy (this checkout) and its test extras are installed" in done.stdout
    # Nothing missing: nothing installed.
    log.unlink()
    _fake_tools(tmp_path / "bin2", set(packages), log)
    env["PATH"] = f"{tmp_path / 'bin2'}{os.pathsep}{os.environ['PATH']}"
    done = subprocess.run(
        [str(TEST_SH), "--setup-only"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not log.exists() and f"all {len(packages)} packages are installed" in done.stdout


def _system_python_refuses_pip() -> bool:
    """Debian's /usr/bin/python3: externally managed (PEP 668), with the venv module."""
    probe = subprocess.run(
        ["/usr/bin/python3", "-c", "import os, sysconfig, venv, ensurepip; "
         "print(os.path.exists(os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))"],
        capture_output=True, text=True,
    ) if Path("/usr/bin/python3").exists() else None  # fmt: skip
    return probe is not None and probe.stdout.strip() == "True"


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="scripts/test.sh installs packages as root")
@pytest.mark.skipif(not _system_python_refuses_pip(), reason="needs Debian's externally managed python3 (and venv)")
def test_on_debians_own_python_it_makes_a_virtualenv_and_keeps_using_it(tmp_path: Path) -> None:
    """A fresh Debian's python3 refuses `pip install` (PEP 668): the command must not stop there."""
    checkout = tmp_path / "rpdeploy"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, checkout / rel)
    listed = re.search(r"^PACKAGES=\((.*?)\)", TEST_SH.read_text(), re.MULTILINE | re.DOTALL)
    assert listed is not None
    _fake_tools(tmp_path / "bin", set(shlex.split(listed.group(1))), tmp_path / "apt.log")
    (tmp_path / "bin" / "python3").symlink_to("/usr/bin/python3")  # python3 is the system's
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VIRTUAL_ENV", "PYTHONPATH")}
    env |= {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "RPDEPLOY_TEST_CONTRACTS": "0"}
    script = str(checkout / "scripts" / "test.sh")
    venv_python = checkout / ".venv" / "bin" / "python"

    first = subprocess.run([script, "--setup-only"], env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"(PEP 668): a virtualenv in {checkout / '.venv'}" in first.stdout
    where = subprocess.run(
        [str(venv_python), "-c", "import rpdeploy, pytest; print(rpdeploy.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip() == str(checkout / "rpdeploy" / "__init__.py")
    # The next run finds it, installs nothing, and runs the tests with it.
    again = subprocess.run(
        [script, "tests/test_test_command.py::test_ci_and_the_readme_run_the_same_command"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert "virtualenv" not in again.stdout
    assert f"installed for {venv_python}" in again.stdout
    assert f"=== tests: {venv_python} -m pytest" in again.stdout and "1 passed" in again.stdout
