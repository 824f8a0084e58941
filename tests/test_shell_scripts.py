"""Every shell script rpdeploy ships (rpdeploy/backend/scripts/*.sh, run on the backend host) or runs
itself (scripts/, .ci/run) passes shellcheck. .ci/run installs shellcheck (Debian package)."""

from __future__ import annotations

import shutil
import subprocess

from tests.conftest import ROOT
from tests.support.services import service_missing


def shell_scripts() -> list[str]:
    tracked = subprocess.run(
        ["git", "ls-files", "--", "*.sh", ".ci/run"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    shipped = [str(path.relative_to(ROOT)) for path in (ROOT / "rpdeploy").rglob("*.sh")]
    return sorted(set(tracked) | set(shipped))


def test_the_shell_scripts_pass_shellcheck() -> None:
    scripts = shell_scripts()
    assert {"rpdeploy/backend/scripts/write.sh", "scripts/test.sh", ".ci/run"} <= set(scripts)
    if shutil.which("shellcheck") is None:
        service_missing("shellcheck is not installed (apt-get install shellcheck)")
    done = subprocess.run(["shellcheck", "--format=gcc", *scripts], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_host_scripts_say_which_shell_they_are_for() -> None:
    # shellcheck checks POSIX sh only when told: the host may have no bash.
    for path in (ROOT / "rpdeploy" / "backend" / "scripts").glob("*.sh"):
        assert path.read_text().startswith("#!/bin/sh\n"), path
