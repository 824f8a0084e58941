"""One test command (item 13): what CI runs is what the README gives people, and it installs what is missing."""

from __future__ import annotations

import os
import re
import shlex
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
