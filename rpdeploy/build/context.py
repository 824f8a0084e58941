"""The build context and its hash: the files docker sends (``.dockerignore`` honoured), the
Dockerfile, the build args (a secret's presence, never its value), the platform and the base
image's id. The hash picks the tag and decides whether a build can be skipped.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from rpdeploy.errors import ConfigError

if TYPE_CHECKING:
    pass


#: Bumped whenever what goes into the context hash changes, so old hashes never match.
CONTEXT_HASH_VERSION = "rpdeploy-context-v1"


# --- build context ------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildContext:
    """The files docker sends for a build of ``root`` (as the SDK selects them)."""

    root: Path
    dockerfile: str
    paths: tuple[str, ...]  # relative, sorted: files, folders and links
    patterns: tuple[str, ...]  # .dockerignore lines
    size: int  # bytes of the regular files

    @property
    def files(self) -> tuple[str, ...]:
        """Regular files and links (no folders)."""
        return tuple(p for p in self.paths if not (self.root / p).is_dir() or (self.root / p).is_symlink())


def read_dockerignore(root: Path) -> list[str]:
    """The patterns of ``root/.dockerignore``, read exactly as the SDK reads them."""
    from rpdeploy.limits import DOCKERIGNORE_BYTES, decode_text, read_limited

    path = root / ".dockerignore"
    if not path.exists():
        return []
    text = decode_text(read_limited(path, DOCKERIGNORE_BYTES, what=".dockerignore"), what=".dockerignore", path=path)
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def build_context(root: Path, dockerfile: str = "Dockerfile") -> BuildContext:
    """List what ``docker build root`` would send, with the SDK's own .dockerignore matcher."""
    from docker.utils.build import exclude_paths

    if not root.is_dir():
        raise ConfigError(
            f"the worker folder {root} does not exist",
            hint="run `rpdeploy render` to write it, or fix image.worker_dir in deploy.yaml",
        )
    if not (root / dockerfile).is_file():
        raise ConfigError(
            f"{root / dockerfile} does not exist",
            hint="run `rpdeploy render` to write the worker files",
        )
    patterns = read_dockerignore(root)
    paths = tuple(sorted(exclude_paths(str(root), list(patterns), dockerfile=dockerfile)))
    size = 0
    for rel in paths:
        info = (root / rel).lstat()
        if stat.S_ISREG(info.st_mode):
            size += info.st_size
    return BuildContext(root=root, dockerfile=dockerfile, paths=paths, patterns=tuple(patterns), size=size)


def context_hash(
    context: BuildContext,
    *,
    buildargs: Mapping[str, str],
    secret_args: Iterable[str] = (),
    platform: str,
    base_image_id: str | None = None,
) -> str:
    """sha256 over everything that decides the image: files (path, mode, bytes), build args,
    the *names* of secret build args (a secret's value never enters the hash), platform and base.
    """
    digest = hashlib.sha256()

    def put(*parts: str) -> None:
        for part in parts:
            digest.update(part.encode("utf-8", "surrogateescape"))
            digest.update(b"\0")

    put(CONTEXT_HASH_VERSION, "dockerfile", context.dockerfile)
    for rel in context.paths:
        path = context.root / rel
        info = path.lstat()
        mode = oct(stat.S_IMODE(info.st_mode))
        name = PurePosixPath(*Path(rel).parts).as_posix()
        if stat.S_ISLNK(info.st_mode):
            put("link", name, os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            put("dir", name, mode)
        elif stat.S_ISREG(info.st_mode):
            file_digest = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    file_digest.update(chunk)
            put("file", name, mode, file_digest.hexdigest())
        # sockets and fifos are not sent by docker
    for key in sorted(buildargs):
        put("arg", key, buildargs[key])
    for key in sorted(set(secret_args)):
        put("secret-arg", key, "set")
    put("platform", platform, "base", base_image_id or "")
    return digest.hexdigest()
