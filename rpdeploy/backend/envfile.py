"""The env file: parsing (keeping every line as it was), merging our keys in, masking for diffs
and confirmations, and the systemd drop-in. Pure text in, text out: nothing here talks to a host.

See :mod:`rpdeploy.backend` for the quoting and masking rules.

Why not python-dotenv's parser (``dotenv.parser.parse_stream``, which does keep each binding's
original text): the file's real reader is systemd's ``EnvironmentFile=`` (and ``sh``'s ``.``), and
rpdeploy must see the values the unit sees. python-dotenv reads a different grammar: it decodes
``\\'`` and ``\\\\`` inside single quotes (systemd and sh take single quotes literally), stops an
unquoted value at `` #`` (systemd keeps it), does not join a line ending in a backslash, accepts
``'quoted'`` keys and takes a ``;`` comment line for a key. Using it would change what ``backend check``
compares and what a diff masks; :func:`parse_env` follows systemd (tested in tests/test_backend.py)
in ~60 lines of the standard library, with nothing more to import.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpdeploy.backend.results import KeyChange
from rpdeploy.errors import ConfigError
from rpdeploy.secrets import MASK, redact

if TYPE_CHECKING:
    pass


# Characters every env-file reader takes literally outside quotes (no space, #, quotes, $, \, `, ;).
_BARE_VALUE = re.compile(r"^[A-Za-z0-9_./:@%+,=-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASSIGNMENT = re.compile(r"^(?P<prefix>[ \t]*(?:export[ \t]+)?)(?P<key>[A-Za-z_][A-Za-z0-9_]*)[ \t]*=(?P<value>.*)$")
# Names whose values are never shown, whatever the value looks like (see the module docstring).
_SECRET_KEY = re.compile(
    r"KEY|TOKEN|SECRET|PASS|PWD|AUTH|CRED|CERT|PRIVATE|SALT|SIGN|JWT|DSN|COOKIE|SESSION", re.IGNORECASE
)
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:[0-9]{1,15}(?:\.[0-9]{0,15})?|\.[0-9]{1,15})$")
_PLAIN_WORD = re.compile(r"^[A-Za-z][A-Za-z_-]{0,11}$")
_UNIT_PATH_UNSAFE = re.compile(r"[\s\"'\\]")


# --- the env file -------------------------------------------------------------------------------


def render_value(name: str, value: str) -> str:
    """``value`` spelled so systemd, sh and dotenv readers all read it back unchanged (see module doc)."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ConfigError(f"the value for {name} contains a line break or NUL byte; an env file cannot hold it")
    if _BARE_VALUE.match(value):
        return value
    if "'" in value or "\\" in value or "${" in value or _CONTROL.search(value):
        raise ConfigError(
            f"the value for {name} contains a single quote, backslash, '${{' or control character; env file "
            "readers disagree on how to read those, so rpdeploy does not write it"
        )
    return f"'{value}'"


@dataclass(frozen=True)
class _Entry:
    """A logical line of an env file: lines[start:end], and for an assignment its key and value."""

    start: int
    end: int
    key: str | None = None
    value: str | None = None
    prefix: str = ""


def _line_body(line: str) -> str:
    return line.rstrip("\r\n")


def parse_env(text: str) -> list[_Entry]:
    """Split an env file into logical lines, reading values the way systemd's EnvironmentFile= does."""
    lines = text.splitlines(keepends=True)
    entries: list[_Entry] = []
    index = 0
    while index < len(lines):
        body = _line_body(lines[index])
        stripped = body.lstrip()
        match = _ASSIGNMENT.match(body)
        if not match or stripped.startswith(("#", ";")):
            entries.append(_Entry(index, index + 1))
            index += 1
            continue
        value, used = _read_value(match.group("value"), lines, index)
        entries.append(_Entry(index, index + used, match.group("key"), value, match.group("prefix")))
        index += used
    return entries


def _read_value(raw: str, lines: list[str], index: int) -> tuple[str, int]:
    """The value starting at ``raw`` (rest of line ``index``) and how many lines it spans."""
    text = raw.lstrip(" \t")
    used = 1
    if text.startswith("'"):
        body = text[1:]
        while "'" not in body and index + used < len(lines):
            body += "\n" + _line_body(lines[index + used])
            used += 1
        end = body.find("'")
        return (body if end < 0 else body[:end]), used
    if text.startswith('"'):
        out: list[str] = []
        body = text[1:]
        position = 0
        while True:
            if position >= len(body):
                if index + used >= len(lines):
                    break
                body += "\n" + _line_body(lines[index + used])
                used += 1
                continue
            char = body[position]
            if char == '"':
                break
            if char == "\\" and position + 1 < len(body) and body[position + 1] in '"\\`$\n':
                if body[position + 1] != "\n":
                    out.append(body[position + 1])
                position += 2
                continue
            out.append(char)
            position += 1
        return "".join(out), used
    value = text.rstrip(" \t")
    while value.endswith("\\") and index + used < len(lines):
        value = value[:-1] + _line_body(lines[index + used]).strip(" \t")
        used += 1
    return re.sub(r"\\(.)", r"\1", value), used


def env_values(text: str) -> dict[str, str]:
    """Key -> value as a reader sees it (the last assignment of a key wins)."""
    return {entry.key: entry.value or "" for entry in parse_env(text) if entry.key is not None}


@dataclass(frozen=True)
class _Merge:
    text: str
    changes: tuple[KeyChange, ...]
    notes: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return any(change.action != "unchanged" for change in self.changes)


def merge_env(text: str, updates: dict[str, str], *, secret_keys: frozenset[str]) -> _Merge:
    """``text`` with ``updates`` set: other lines, comments and order kept; a repeated key: the last one updated."""
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if "\r\n" in text else "\n"
    entries = parse_env(text)
    replace: dict[int, str] = {}  # entry index -> new line
    changes: list[KeyChange] = []
    notes: list[str] = []
    append: list[str] = []
    for key, new in updates.items():
        rendered = render_value(key, new)
        found = [i for i, entry in enumerate(entries) if entry.key == key]
        masked_new = MASK if key in secret_keys else new
        if not found:
            append.append(f"{key}={rendered}{newline}")
            changes.append(KeyChange(key, "added", None, masked_new))
            continue
        if len(found) > 1:
            where = ", ".join(str(entries[i].start + 1) for i in found)
            notes.append(
                f"{key} is set {len(found)} times in the env file (lines {where}); rpdeploy updated the last one, "
                "which is the one readers use. Remove the others."
            )
        entry = entries[found[-1]]
        old = entry.value or ""
        masked_old = MASK if key in secret_keys else old
        if old == new:
            changes.append(KeyChange(key, "unchanged", masked_old, masked_new))
            continue
        ending = newline if lines[entry.end - 1].endswith(("\n", "\r")) else ""
        replace[found[-1]] = f"{entry.prefix}{key}={rendered}{ending}"
        changes.append(KeyChange(key, "changed", masked_old, masked_new))
    out: list[str] = []
    for i, entry in enumerate(entries):
        if i in replace:
            out.append(replace[i])
        else:
            out.extend(lines[entry.start : entry.end])
    if append:
        if out and not out[-1].endswith(("\n", "\r")):
            out.append(newline)
        out.append(f"# RunPod endpoint for this service, written by rpdeploy{newline}")
        out.extend(append)
    return _Merge("".join(out), tuple(changes), tuple(notes))


def _is_secret(key: str, secret_keys: frozenset[str]) -> bool:
    return key in secret_keys or bool(_SECRET_KEY.search(key))


def shown_in_clear(key: str, value: str, *, clear_keys: frozenset[str] = frozenset()) -> bool:
    """Whether a diff may show ``key``'s value: one of ``clear_keys``, or plainly not a secret (module doc)."""
    if key in clear_keys:
        return True
    if _SECRET_KEY.search(key):
        return False
    return value == "" or bool(_PLAIN_NUMBER.match(value) or _PLAIN_WORD.match(value))


def mask_env(
    text: str,
    *,
    secret_keys: frozenset[str] = frozenset(),
    clear_keys: frozenset[str] = frozenset(),
    tags: dict[str, int] | None = None,
) -> list[str]:
    """The file's lines with every value masked as ``****`` unless :func:`shown_in_clear` allows it.

    ``secret_keys`` are masked even when they are also in ``clear_keys``. With ``tags``, each
    distinct masked value also gets a private tag (stripped again by :func:`_diff`), so a
    changed value still shows up as a changed line.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []

    def masked(prefix: str, key: str, value: str) -> str:
        tag = f"\0{tags.setdefault(value, len(tags))}\0" if tags is not None else ""
        return f"{prefix}{key}={MASK}{tag}\n"

    for entry in parse_env(text):
        body = "".join(lines[entry.start : entry.end])
        if entry.key is not None:
            value = entry.value or ""
            if entry.key not in secret_keys and shown_in_clear(entry.key, value, clear_keys=clear_keys):
                out.extend(line if line.endswith("\n") else line + "\n" for line in lines[entry.start : entry.end])
            else:
                out.append(masked(entry.prefix, entry.key, value))
            continue
        stripped = body.strip()
        if not stripped:
            out.append("\n")
        elif stripped.startswith(("#", ";")):
            # A commented-out assignment is a value like any other (an old password, often).
            lead = body[: len(body) - len(body.lstrip())] + stripped[0]
            match = _ASSIGNMENT.match(stripped[1:])
            if match and not shown_in_clear(match.group("key"), match.group("value").strip(), clear_keys=clear_keys):
                out.append(masked(lead + match.group("prefix"), match.group("key"), match.group("value")))
            else:
                out.append(_line_body(body) + "\n")
        else:
            tag = f"\0{tags.setdefault(body, len(tags))}\0" if tags is not None else ""
            out.append(f"{MASK}{tag}\n")
    return [redact(line) for line in out]


def _diff(
    old: str | None,
    new: str,
    path: str,
    *,
    secret_keys: frozenset[str],
    clear_keys: frozenset[str] = frozenset(),
) -> str:
    """Unified diff of the env file, values masked as **** (see :func:`mask_env`)."""
    tags: dict[str, int] = {}
    before = mask_env(old, secret_keys=secret_keys, clear_keys=clear_keys, tags=tags) if old is not None else []
    after = mask_env(new, secret_keys=secret_keys, clear_keys=clear_keys, tags=tags)
    fromfile = path if old is not None else "/dev/null"
    text = "".join(difflib.unified_diff(before, after, fromfile=fromfile, tofile=path))
    return re.sub(r"\0\d+\0", "", text)


def dropin_path(service: str) -> str:
    return f"/etc/systemd/system/{service}.service.d/rpdeploy.conf"


def dropin_text(service: str, env_file: str) -> str:
    """The systemd drop-in that adds our env file to the unit (read after the unit's own files, so it wins)."""
    if _UNIT_PATH_UNSAFE.search(env_file):
        raise ConfigError(
            f"backend.env_file {env_file!r}: a path with spaces, quotes or backslashes cannot go in a systemd unit"
        )
    return (
        f"# Written by rpdeploy: the RunPod endpoint settings of {service}.service.\n"
        "# `rpdeploy backend rollback` undoes it; so does deleting this file and `systemctl daemon-reload`.\n"
        "[Service]\n"
        f"EnvironmentFile={env_file.replace('%', '%%')}\n"
    )
