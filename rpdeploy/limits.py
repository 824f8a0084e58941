"""Limits on everything rpdeploy reads, so hostile input fails fast with exit 3 instead of a crash.

deploy.yaml, the files it points at (secrets, a model's config.json), the ledger and the
files rpdeploy writes for itself all come from places an attacker may control (a pull
request's deploy.yaml, a checked-in ``.rpdeploy/``, a symlink). Each is read through one of
the functions below, which enforce these limits before any parser allocates much:

    what                              size       structure
    deploy.yaml                       1 MiB      YAML: depth 32, 20,000 nodes after aliases,
                                                 50 aliases, none recursive; integers and
                                                 floats at most 64 characters; UTF-8 only
    a secret file ({file: PATH})      64 KiB     UTF-8, no NUL; a regular file or a pipe
    .rpdeploy/state.json (ledger)     1 MiB      JSON: depth 64; then the whole document is
                                                 validated by a pydantic model (ledger.py)
    .rpdeploy/generated.json          1 MiB      JSON: depth 16
    model.config_file (config.json)   4 MiB      JSON: depth 64
    worker/.dockerignore              1 MiB      UTF-8
    the deploy lock's holder note     4 KiB      JSON (only for the "who holds it" message)

Why these numbers: the reference deploy.yaml is 300 bytes and the largest one we have seen a
few kilobytes, so 1 MiB and 20,000 nodes leave two orders of magnitude of room while keeping
the worst case (parse, validate, locate errors) well under a second and 100 MB. A billion
laughs is refused by the expanded node count; a recursive alias (``&a [*a]``) as soon as it
is seen; a 5,000-digit integer before Python's int() (which refuses more than 4,300 digits
with a ValueError) could see it. Python's recursion limit is far above depth 32, so deep
nesting never reaches a RecursionError.

Values echoed in error messages are shortened by :func:`shorten`, so an error about a 50 MB
field prints 80 characters of it, not 50 MB.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rpdeploy.errors import ConfigError

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class YamlLimits:
    size: int = 1 * MIB
    depth: int = 32
    nodes: int = 20_000
    aliases: int = 50
    number_chars: int = 64


DEPLOY_YAML = YamlLimits()
SECRET_FILE_BYTES = 64 * KIB
LEDGER_BYTES = 1 * MIB
LEDGER_DEPTH = 64
MANIFEST_BYTES = 1 * MIB
MANIFEST_DEPTH = 16
MODEL_CONFIG_BYTES = 4 * MIB
MODEL_CONFIG_DEPTH = 64
DOCKERIGNORE_BYTES = 1 * MIB
LOCK_NOTE_BYTES = 4 * KIB
#: How much of a value an error message shows.
ECHO_CHARS = 80


def shorten(value: object, limit: int = ECHO_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, with the full length named: safe to echo."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    if len(text) > limit:
        return f"{text[:limit]}... ({len(text)} characters)"
    return text


def read_limited(path: Path, limit: int, *, what: str, regular_only: bool = False) -> bytes:
    """At most ``limit`` bytes of ``path``; ConfigError (exit 3) when it is longer or unreadable.

    Reads one byte past the limit instead of trusting ``st_size`` (pipes and ``/proc`` files
    report 0), so ``/dev/zero`` or an endless FIFO costs at most ``limit`` bytes. Devices,
    sockets and folders are refused before reading; ``regular_only`` also refuses pipes.
    """
    prefix = f"{what}: " if what else ""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise ConfigError(f"{prefix}{path} is a folder, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{prefix}cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"{prefix}{path} is a folder, not a file")
        kinds = (stat.S_ISREG,) if regular_only else (stat.S_ISREG, stat.S_ISFIFO)
        if not any(kind(info.st_mode) for kind in kinds):
            raise ConfigError(
                f"{prefix}{path} is not a regular file" + ("" if regular_only else " or a pipe"),
                hint="point it at a file holding the value",
            )
        if stat.S_ISFIFO(info.st_mode):
            os.set_blocking(fd, True)  # opened non-blocking only so that open() itself cannot hang
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            raise ConfigError(
                f"{prefix}{path} is larger than {limit} bytes ({info.st_size}), the most rpdeploy reads of it"
            )
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(64 * KIB, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"{prefix}cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise ConfigError(f"{prefix}{path} is larger than {limit} bytes, the most rpdeploy reads of it")
    return b"".join(chunks)


def decode_text(raw: bytes, *, what: str, path: Path | str) -> str:
    """Strict UTF-8 without NUL bytes (a leading BOM is dropped), else ConfigError."""
    prefix = f"{what}: " if what else ""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{prefix}{path} is not UTF-8 text (byte {exc.start})") from None
    if "\0" in text:
        raise ConfigError(f"{prefix}{path} contains a NUL byte; is it a binary file?")
    return text.removeprefix("\ufeff")


def read_secret_file(path: Path, *, label: str) -> str:
    """The secret in ``path``: at most 64 KiB of UTF-8, surrounding whitespace stripped."""
    try:
        raw = read_limited(path, SECRET_FILE_BYTES, what=label)
    except FileNotFoundError:
        raise ConfigError(f"{label}: cannot read {path}: No such file or directory") from None
    value = decode_text(raw, what=label, path=path).strip()
    if not value:
        raise ConfigError(f"{label}: {path} is empty")
    return value


def json_depth(data: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value, walking iteratively; stops counting past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, (dict, list)):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def loads_json(text: str | bytes, *, depth: int, what: str) -> Any:
    """``json.loads`` that turns bad JSON, too-deep JSON and recursion into a ConfigError."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply (more than {depth} levels)") from None
    except ValueError as exc:
        raise ConfigError(f"{what} is not valid JSON ({exc})") from None
    if json_depth(data, depth) > depth:
        raise ConfigError(f"{what} is nested too deeply (more than {depth} levels)")
    return data


# --- YAML ----------------------------------------------------------------------------------


class YamlLimitError(yaml.MarkedYAMLError):
    """A YAML document went past one of :class:`YamlLimits`; marked at the node that did."""


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class LimitedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader with a composer that counts as it builds the node graph.

    Every node counts once, and every alias counts as many nodes as the subtree it points at
    (so the total is the size of the document as a consumer sees it, with aliases expanded).
    The composer is recursive, so depth is checked before each descent.
    """

    def __init__(self, stream: str, limits: YamlLimits = DEPLOY_YAML) -> None:
        super().__init__(stream)
        self.limits = limits
        self._depth = 0
        self._nodes = 0
        self._aliases = 0
        self._open_anchors: set[str] = set()
        self._anchor_sizes: dict[str, int] = {}

    def _refuse(self, problem: str, mark: Any) -> None:
        raise YamlLimitError(problem=problem, problem_mark=mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        limits = self.limits
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            anchor = event.anchor
            if anchor in self._open_anchors:
                self._refuse(f"alias *{anchor} refers to a node that contains it (a recursive alias)", event.start_mark)
            if anchor in self._anchor_sizes:
                self._aliases += 1
                if self._aliases > limits.aliases:
                    self._refuse(f"more than {limits.aliases} aliases", event.start_mark)
                self._nodes += self._anchor_sizes[anchor]
                if self._nodes > limits.nodes:
                    self._refuse(f"more than {limits.nodes} nodes once aliases are expanded", event.start_mark)
            return super().compose_node(parent, index)
        event = self.peek_event()  # type: ignore[no-untyped-call]
        self._depth += 1
        if self._depth > limits.depth:
            self._refuse(f"nested more than {limits.depth} levels deep", event.start_mark)
        self._nodes += 1
        if self._nodes > limits.nodes:
            self._refuse(f"more than {limits.nodes} nodes", event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.add(anchor)
        before = self._nodes
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)
        if anchor is not None:
            self._anchor_sizes[anchor] = self._nodes - before + 1
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag in (_INT_TAG, _FLOAT_TAG)
            and len(node.value) > limits.number_chars
        ):
            self._refuse(f"a number of {len(node.value)} characters (at most {limits.number_chars})", node.start_mark)
        return node


def compose_yaml(text: str, limits: YamlLimits = DEPLOY_YAML) -> tuple[yaml.Node | None, Any]:
    """The node graph and the constructed data of one YAML document, within ``limits``.

    Raises yaml.YAMLError (``YamlLimitError`` for a limit, marked at the node).
    """
    if len(text) > limits.size:
        raise YamlLimitError(problem=f"the document is {len(text)} characters; at most {limits.size}")
    loader = LimitedLoader(text, limits)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data
