"""The image tag a build gets, and the checks on ``--tag`` and ``--platform``.

Tag rule (never ``latest``): ``--tag``, else ``image.tag``, else with ``tag_policy: git`` the
short sha of HEAD when every file of the build context is committed unchanged (and
deploy.yaml too, and the platform is the configured one); with uncommitted changes
``<sha>-dirty-<8 hex of the context hash>``; outside git (or ``tag_policy: content``)
``c-<12 hex of the context hash>``.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from rpdeploy.build.context import BuildContext
from rpdeploy.errors import ConfigError

if TYPE_CHECKING:
    from rpdeploy.config import ImageConfig


_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$")


# --- options ------------------------------------------------------------------------------


def tag_problem(tag: str) -> str | None:
    """Why ``tag`` is not an acceptable image tag, or None."""
    if tag == "latest":
        return "'latest' is mutable: give an immutable tag (or leave it out: rpdeploy picks one)"
    if not _TAG.match(tag):
        return f"{tag!r} is not a valid tag (letters, digits, _ . -; at most 128; not starting with . or -)"
    return None


def platform_problem(platform: str) -> str | None:
    """Why ``platform`` is not an os/arch[/variant] string, or None."""
    if not _PLATFORM.match(platform):
        return f"{platform!r} is not a platform like linux/amd64"
    return None


# --- tags ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagChoice:
    tag: str
    source: str  # --tag | image.tag | git | git-dirty | content
    reason: str = ""  # why git was not used as is


def _git(args: list[str], cwd: Path) -> str | None:
    from rpdeploy.secrets import child_environment

    env = child_environment(os.environ, extra={"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _porcelain_paths(output: str) -> list[str]:
    """Paths from ``git status --porcelain -z`` (both sides of a rename)."""
    entries = output.split("\0")
    paths: list[str] = []
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":  # a rename/copy is followed by its source path
            if index < len(entries) and entries[index]:
                paths.append(entries[index])
            index += 1
    return paths


def git_tag(context: BuildContext, *, config_path: Path | None = None) -> tuple[str, str] | None:
    """(short sha of HEAD, "" if clean else why not) for the repository holding the context; None outside git."""
    from docker.utils.build import PatternMatcher

    top_text = _git(["rev-parse", "--show-toplevel"], context.root)
    sha = _git(["rev-parse", "--short", "HEAD"], context.root)
    if not top_text or not sha:
        return None
    top = Path(top_text.strip()).resolve()
    sha = sha.strip()
    try:
        rel_root = context.root.resolve().relative_to(top)
    except ValueError:
        return None
    prefix = "" if rel_root == Path(".") else rel_root.as_posix().rstrip("/") + "/"
    tracked_text = _git(["ls-files", "-z", "--", prefix or "."], top)
    if tracked_text is None:
        return None
    tracked = set(filter(None, tracked_text.split("\0")))
    for rel in context.files:
        if prefix + PurePosixPath(*Path(rel).parts).as_posix() not in tracked:
            return sha, f"{rel} is not committed"
    watched = [prefix or "."]
    config_rel: str | None = None
    if config_path is not None:
        try:
            config_rel = config_path.resolve().relative_to(top).as_posix()
            watched.append(config_rel)
        except ValueError:
            config_rel = None
    status = _git(["status", "--porcelain", "-z", "--untracked-files=all", "--", *watched], top)
    if status is None:
        return None
    matcher = PatternMatcher(list(context.patterns))
    for changed in _porcelain_paths(status):
        if changed == config_rel:
            return sha, f"{config_rel} has uncommitted changes"
        if changed.startswith(prefix) or not prefix:
            inside = changed[len(prefix) :]
            # Changes docker would not send (e.g. __pycache__, test_input.json) do not count.
            if inside == context.dockerfile or not matcher.matches(inside):
                return sha, f"{inside} has uncommitted changes"
    return sha, ""


def choose_tag(
    image: ImageConfig,
    context: BuildContext,
    digest: str,
    *,
    explicit: str | None = None,
    platform: str | None = None,
    config_path: Path | None = None,
) -> TagChoice:
    """The tag for this build; see the module docstring for the rule. Never ``latest``."""
    from rpdeploy.config import TagPolicy

    if explicit:
        problem = tag_problem(explicit)
        if problem:
            raise ConfigError(f"--tag: {problem}")
        return TagChoice(explicit, "--tag")
    if image.tag:
        return TagChoice(image.tag, "image.tag")
    content = TagChoice(f"c-{digest[:12]}", "content")
    if image.tag_policy is TagPolicy.CONTENT:
        return content
    found = git_tag(context, config_path=config_path)
    if found is None:
        return TagChoice(content.tag, "content", "the worker folder is not in a git work tree with a commit")
    sha, dirty = found
    if not dirty and platform is not None and platform != image.platform:
        dirty = f"--platform {platform} differs from image.platform"
    if dirty:
        return TagChoice(f"{sha}-dirty-{digest[:8]}", "git-dirty", dirty)
    return TagChoice(sha, "git")
