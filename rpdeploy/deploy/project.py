"""Where the project is, and which endpoint it deployed.

deploy.yaml is found the way git finds ``.git``: in the current folder, else in the nearest
parent folder that has one, so every command works from ``worker/`` or any other folder of
the project. The search stays on one file system and never goes up into a folder listed in
``RPDEPLOY_CEILING_DIRECTORIES`` (colon-separated absolute paths, git's
``GIT_CEILING_DIRECTORIES`` rule). ``--config PATH`` (or ``RPDEPLOY_CONFIG``) names the file
itself and turns the search off.

Commands that act on the endpoint take it from the project when no id is given: the one the
last deploy recorded in the ledger, else the endpoint named in deploy.yaml, found on RunPod.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rpdeploy.config import Config

CEILING_ENV = "RPDEPLOY_CEILING_DIRECTORIES"


def _ceilings(environ: Mapping[str, str]) -> set[Path]:
    out = set()
    for part in environ.get(CEILING_ENV, "").split(os.pathsep):
        if part and os.path.isabs(part):
            out.add(Path(os.path.normpath(part)))
    return out


def find_config(start: Path, name: str = "deploy.yaml", environ: Mapping[str, str] | None = None) -> Path | None:
    """The nearest ``name`` in ``start`` or its parents (absolute), or None.

    Stops at the file system's root, at a mount point (like git without
    ``GIT_DISCOVERY_ACROSS_FILESYSTEM``), and below a ceiling directory.
    """
    environ = os.environ if environ is None else environ
    ceilings = _ceilings(environ)
    folder = Path(os.path.normpath(start.absolute()))
    try:
        device = folder.stat().st_dev
    except OSError:
        return None
    while True:
        candidate = folder / name
        if candidate.is_file():
            return candidate
        parent = folder.parent
        if parent == folder or parent in ceilings:
            return None
        try:
            if parent.stat().st_dev != device:
                return None
        except OSError:
            return None
        folder = parent


def display_path(path: Path) -> str:
    """``path`` as a person would type it from here: relative when it is above or below the current folder."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return relative if len(relative) <= len(str(path)) else str(path)


@dataclass(frozen=True)
class ProjectEndpoint:
    """The endpoint this project deployed, and how it was found ("ledger" or "name")."""

    endpoint_id: str
    source: str

    def describe(self) -> str:
        how = "recorded by the last deploy" if self.source == "ledger" else "found on RunPod by its name"
        return f"endpoint {self.endpoint_id} ({how})"


def deployed_endpoint(
    config: Config, *, state_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> ProjectEndpoint:
    """The endpoint this project deployed: the ledger's, else the one named in deploy.yaml on RunPod.

    Raises ConfigError when there is none (deploy first, or pass an id).
    """
    from rpdeploy.deploy.ledger import Ledger
    from rpdeploy.errors import ConfigError

    recorded = Ledger.load(state_dir or config.state_dir).output("endpoint", "endpoint_id")
    if recorded:
        return ProjectEndpoint(str(recorded), "ledger")
    from rpdeploy.runpod.deployment import connect, find_endpoint

    with connect(config, environ) as cp:
        found = find_endpoint(cp.list_endpoints(), config.endpoint.name)
    if found is None:
        raise ConfigError(
            f"this project has not deployed an endpoint yet (none recorded in {display_path(config.state_dir)}, "
            f"and RunPod has no endpoint named {config.endpoint.name!r})",
            hint="run `rpdeploy deploy` first, or pass --endpoint-id ID",
        )
    return ProjectEndpoint(found.id, "name")
