"""A normal (non-editable) install finds templates/ and the host scripts in the wheel; start-up stays light."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_wheel_ships_templates_and_init_works_from_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], check=True,
                   capture_output=True)  # fmt: skip
    [wheel] = dist.glob("rpdeploy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rpdeploy/templates/worker/custom-handler/handler.py.j2" in names
    assert "rpdeploy/templates/deploy.yaml.j2" in names
    # The backend's host scripts are files of the package, read at import time.
    host_scripts = sorted((ROOT / "rpdeploy" / "backend" / "scripts").glob("*.sh"))
    shipped = {"inspect.sh", "write.sh", "restore.sh", "restart.sh", "integration.sh"}
    assert {path.name for path in host_scripts} >= shipped
    assert all(f"rpdeploy/backend/scripts/{path.name}" in names for path in host_scripts), names

    venv = tmp_path / "venv"
    # System site-packages provide the dependencies (offline); the wheel itself is installed
    # into the venv, which comes first on sys.path.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    probe = (
        "import rpdeploy.worker.render as r\n"
        "import rpdeploy.backend.session as s\n"
        "print(r.__file__); print(r.templates_dir()); print(s.__file__)\n"
        "assert s._WRITE.startswith('#!/bin/sh')"
    )
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where

    project = tmp_path / "project"
    project.mkdir()
    subprocess.run([str(venv / "bin" / "rpdeploy"), "init", "--method", "2", "--yes"], cwd=project, check=True,
                   capture_output=True)  # fmt: skip
    assert (project / "worker" / "handler.py").read_text().startswith('"""RunPod Serverless worker')
    subprocess.run([str(venv / "bin" / "rpdeploy"), "validate"], cwd=project, check=True, capture_output=True)


def test_startup_imports_nothing_heavy() -> None:
    code = (
        "import sys, rpdeploy.cli\n"
        "heavy = sorted(m for m in ('docker', 'jinja2', 'runpod', 'pydantic', 'yaml', 'httpx', 'graphql') "
        "if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert out == ""


def test_version_and_module_entry_point() -> None:
    from rpdeploy import __version__

    out = subprocess.run([sys.executable, "-m", "rpdeploy", "--version"], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == f"rpdeploy {__version__}"
