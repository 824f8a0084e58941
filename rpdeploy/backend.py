"""Point the backend (a Spring Boot service on a host) at the endpoint: env file, restart, check, rollback.

Two ways to hand the service its settings, chosen by ``backend.mode``:

* ``dotenv``: merge three keys (endpoint URL, API key, endpoint id) into the env file the
  service's unit already reads (``EnvironmentFile=``), keeping every other line as it was.
* ``systemd``: write the keys to a file of our own (``/etc/rpdeploy/<service>.env``) and a
  drop-in ``/etc/systemd/system/<service>.service.d/rpdeploy.conf`` that points the unit at
  it, then ``systemctl daemon-reload``.

Every write is atomic (a temp file in the same folder, then ``mv``), mode 0600, keeps the
owner of the file it replaces, and first keeps a timestamped backup of it (0600; or an
``.absent`` marker when there was none, so a rollback removes the file again). The write is
a compare-and-swap: if the file changed after we read it, nothing is written.

The safe sequence deploy stages 9-10 use, :func:`apply`: configure, restart, wait for the
service (systemd says active, ``health_url`` answers 2xx, polled *on the host*), and when it
does not come back: restore the backup, restart again, and raise an error that says both
what failed and whether the rollback brought the service back.

Secrets: the API key reaches the host only inside the env file's bytes on stdin (see
:mod:`rpdeploy.remote`); results carry it masked as ``****``; the previous key read from the
host's file is registered for redaction too.

What a diff or a confirmation shows of the env file (:func:`shown_in_clear`): the env file
holds the service's other settings too, a datasource URL with its password or a JWT signing
key among them, so every value is masked as ``****`` except

1. the endpoint URL and endpoint id rpdeploy writes (the API key, which it also writes, is
   always masked);
2. values that are plainly not secret, under a name that does not look like a credential
   (one containing KEY, TOKEN, SECRET, PASS, PWD, AUTH, CRED, CERT, PRIVATE, SALT, SIGN,
   JWT, DSN, COOKIE or SESSION, in any case): the empty value, a decimal number (at most 15
   digits before and after the point, optional sign), and a short word of 1 to 12 ASCII
   letters, ``_`` or ``-`` starting with a letter (``true``, ``off``, ``INFO``, ``prod``,
   ``en_US``). Anything with a digit next to letters, a ``/``, ``:``, ``@`` or ``=`` in it is
   masked, which covers URLs, paths, keys and passwords.

Comment lines are shown, except that the value of a commented-out assignment (``#KEY=...``)
follows the same rule; a line that is neither is masked whole. A changed masked value still
shows up as a changed line (its ``****`` lines differ), so a diff says *that* it changed.

Env file values are written so that systemd's ``EnvironmentFile=``, ``sh``'s ``.``, and the
common dotenv readers (python-dotenv, docker compose, dotenv-java) all read the same value:
unquoted when the value only has characters none of them treats specially
(``A-Za-z0-9_./:@%+,=-``: every URL, id and key RunPod hands out), otherwise in single quotes,
which all of them read literally; values with a single quote, a backslash, ``${`` (which
python-dotenv expands even inside single quotes) or a control character have no spelling
they all agree on and are refused, as are newlines and NUL.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rpdeploy import remote
from rpdeploy.errors import BackendError, ConfigError
from rpdeploy.limits import shorten
from rpdeploy.output import NullReporter, Reporter
from rpdeploy.secrets import MASK, Secret, redact, register

if TYPE_CHECKING:
    from rpdeploy.config import BackendConfig, Config

#: Backups of the env file kept on the host (the newest; older ones are deleted after a write).
KEEP_BACKUPS = 5
#: Seconds a file operation on the host may take (connecting included).
FILE_TIMEOUT = 60.0

_ENDPOINT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
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
#: The most of the env file rpdeploy reads back from the host.
MAX_ENV_FILE = 1024 * 1024
_BACKUP_NAME = re.compile(
    r"\.rpdeploy-(?P<stamp>\d{8}T\d{6}\.\d{6}Z)\.(?P<kind>bak|absent|dropin\.bak|dropin\.absent)$"
)
_UNIT_PATH_UNSAFE = re.compile(r"[\s\"'\\]")


# --- the scripts run on the host --------------------------------------------------------------
# POSIX sh, run by rpdeploy.remote (arguments in "$@", data on stdin after the script). They
# print "key=value" facts or "@rpdeploy ..." progress lines on stdout; errors on stderr with
# an exit code of their own (never 255, which means "ssh failed").

_INSPECT = r"""
set -u
export LC_ALL=C
f=$1 svc=$2 dropin=$3 want_content=$4 max_content=$5
case $f in "~/"*) f="$HOME/${f#"~/"}" ;; esac
if [ -L "$f" ]; then
  target=$(readlink -f -- "$f" 2>/dev/null || true)
  echo "symlink=$target"
  if [ -n "$target" ]; then f=$target; fi
fi
dir=$(dirname -- "$f")
base=$(basename -- "$f")
echo "path=$f"
echo "uid=$(id -u)"
echo "user=$(id -un 2>/dev/null || true)"
if [ -d "$dir" ]; then echo "dir=1"; else echo "dir=0"; fi
if [ -d "$dir" ] && [ -w "$dir" ] && [ -x "$dir" ]; then echo "dir_writable=1"; else echo "dir_writable=0"; fi
if [ -e "$f" ]; then
  if [ -f "$f" ]; then echo "file=1"; else echo "file=other"; fi
  echo "owner=$(ls -lnd -- "$f" | awk '{print $3":"$4}')"
  echo "mode=$(ls -ld -- "$f" | awk '{print $1}')"
  if [ -r "$f" ]; then echo "readable=1"; else echo "readable=0"; fi
else
  echo "file=0"
fi
if [ -n "$dropin" ] && [ -f "$dropin" ]; then echo "dropin_cksum=$(cksum < "$dropin")"; fi
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  echo "systemd=1"
  echo "unit=$(systemctl show -p LoadState --value -- "$svc" 2>/dev/null)"
  echo "active=$(systemctl is-active -- "$svc" 2>/dev/null)"
  systemctl show -p EnvironmentFiles --value -- "$svc" 2>/dev/null | while IFS= read -r line; do
    if [ -n "$line" ]; then echo "envfile=$line"; fi
  done
else
  echo "systemd=0"
fi
if [ -d "$dir" ] && [ -r "$dir" ] && [ -x "$dir" ]; then
  echo "backups_listed=1"
  for b in "$dir/$base".rpdeploy-*; do
    if [ -f "$b" ]; then echo "backup=${b##*/}"; fi
  done
fi
if [ "$want_content" = 1 ] && [ -f "$f" ] && [ -r "$f" ]; then
  size=$(wc -c < "$f" | tr -d ' ')
  if [ "${size:-0}" -gt "$max_content" ]; then
    echo "too_large=$size"
  else
    echo "@content"
    cat -- "$f" || exit 3
  fi
fi
exit 0
"""

_WRITE = r"""
set -eu
export LC_ALL=C
umask 077
f=$1 stamp=$2 expect=$3 envlen=$4 dropin=$5 droplen=$6 newdir=$7 newowner=$8
shift 8
dir=$(dirname -- "$f")
base=$(basename -- "$f")
fail() { code=$1; shift; echo "rpdeploy: $*" >&2; exit "$code"; }
if [ ! -d "$dir" ]; then
  if [ "$newdir" = create ]; then mkdir -p -- "$dir"; else fail 71 "folder $dir does not exist"; fi
fi
if [ -f "$f" ]; then now=$(cksum < "$f"); else now=absent; fi
if [ "$now" != "$expect" ]; then fail 72 "$f changed after it was read (by someone else?); nothing written"; fi
tmp= dtmp= btmp=
trap 'rm -f -- ${tmp:+"$tmp"} ${dtmp:+"$dtmp"} ${btmp:+"$btmp"}' EXIT
tmp=$(mktemp "$dir/.$base.rpdeploy-new.XXXXXX")
dd bs=1 count="$envlen" of="$tmp" 2>/dev/null
got=$(wc -c < "$tmp" | tr -d ' ')
if [ "$got" != "$envlen" ]; then fail 73 "received $got of $envlen bytes of the new env file; nothing written"; fi
if [ -f "$f" ]; then
  owner=$(ls -lnd -- "$f" | awk '{print $3":"$4}')
elif [ "$newowner" = dir ]; then
  owner=$(ls -lnd -- "$dir" | awk '{print $3":"$4}')
else
  owner=0:0
fi
chmod 600 "$tmp"
if [ "$(id -u)" = 0 ]; then chown "$owner" "$tmp"; fi
if [ -n "$dropin" ]; then
  ddir=$(dirname -- "$dropin")
  if [ ! -d "$ddir" ]; then mkdir -p -- "$ddir"; chmod 755 "$ddir"; fi
  dtmp=$(mktemp "$ddir/.rpdeploy.conf.XXXXXX")
  dd bs=1 count="$droplen" of="$dtmp" 2>/dev/null
  got=$(wc -c < "$dtmp" | tr -d ' ')
  if [ "$got" != "$droplen" ]; then fail 73 "received $got of $droplen bytes of the drop-in; nothing written"; fi
  chmod 644 "$dtmp"
fi
bak="$f.rpdeploy-$stamp"
if [ -e "$bak.bak" ] || [ -e "$bak.absent" ]; then fail 74 "backup $bak exists already"; fi
if [ -f "$f" ]; then
  btmp="$bak.tmp"
  cp -- "$f" "$btmp"
  chmod 600 "$btmp"
  if [ "$(id -u)" = 0 ]; then chown "$owner" "$btmp"; fi
  mv -f -- "$btmp" "$bak.bak"
  btmp=
  echo "@rpdeploy backup $bak.bak"
else
  : > "$bak.absent"
  echo "@rpdeploy backup $bak.absent"
fi
if [ -n "$dropin" ]; then
  if [ -f "$dropin" ]; then
    btmp="$bak.dropin.tmp"
    cp -- "$dropin" "$btmp"
    mv -f -- "$btmp" "$bak.dropin.bak"
    btmp=
  else
    : > "$bak.dropin.absent"
  fi
fi
sync -- "$tmp" 2>/dev/null || sync
mv -f -- "$tmp" "$f"
tmp=
echo "@rpdeploy installed $f"
if [ -n "$dropin" ]; then
  mv -f -- "$dtmp" "$dropin"
  dtmp=
  echo "@rpdeploy installed $dropin"
  systemctl daemon-reload || fail 75 "systemctl daemon-reload failed"
  echo "@rpdeploy reloaded"
fi
for old in "$@"; do rm -f -- "$dir/$old"; done
exit 0
"""

_RESTORE = r"""
set -eu
export LC_ALL=C
umask 077
f=$1 stamp=$2 dropin=$3
bak="$f.rpdeploy-$stamp"
fail() { code=$1; shift; echo "rpdeploy: $*" >&2; exit "$code"; }
tmp=
trap 'rm -f -- ${tmp:+"$tmp"}' EXIT
reload=0
if [ -n "$dropin" ]; then
  if [ -f "$bak.dropin.bak" ]; then
    tmp=$(mktemp "$(dirname -- "$dropin")/.rpdeploy.conf.XXXXXX")
    cat -- "$bak.dropin.bak" > "$tmp"
    chmod 644 "$tmp"
    mv -f -- "$tmp" "$dropin"
    tmp=
    rm -f -- "$bak.dropin.bak"
    echo "@rpdeploy restored $dropin"
    reload=1
  elif [ -f "$bak.dropin.absent" ]; then
    rm -f -- "$dropin" "$bak.dropin.absent"
    rmdir -- "$(dirname -- "$dropin")" 2>/dev/null || true
    echo "@rpdeploy removed $dropin"
    reload=1
  fi
fi
if [ -f "$bak.bak" ]; then
  owner=$(ls -lnd -- "$bak.bak" | awk '{print $3":"$4}')
  tmp=$(mktemp "$(dirname -- "$f")/.$(basename -- "$f").rpdeploy-restore.XXXXXX")
  cat -- "$bak.bak" > "$tmp"
  chmod 600 "$tmp"
  if [ "$(id -u)" = 0 ]; then chown "$owner" "$tmp"; fi
  sync -- "$tmp" 2>/dev/null || sync
  mv -f -- "$tmp" "$f"
  tmp=
  rm -f -- "$bak.bak"
  echo "@rpdeploy restored $f"
elif [ -f "$bak.absent" ]; then
  rm -f -- "$f" "$bak.absent"
  echo "@rpdeploy removed $f"
else
  fail 76 "no backup $bak.bak on this host"
fi
if [ "$reload" = 1 ]; then
  systemctl daemon-reload || fail 75 "systemctl daemon-reload failed"
  echo "@rpdeploy reloaded"
fi
exit 0
"""

# Runs the restart command (read from stdin after the script; none for a plain check), then
# polls until the service is active and the health URL answers 2xx, or until the deadline.
# Exit: 0 healthy, 3 the unit failed, 4 deadline passed, 5 restart command failed,
# 6 nothing to poll the health URL with, 7 no such unit.
_RESTART = r"""
set -u
export LC_ALL=C
svc=$1 url=$2 timeout=$3 cmdlen=$4
start=$(date +%s)
systemd=0
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then systemd=1; fi
echo "@rpdeploy systemd $systemd"
if [ "$cmdlen" -gt 0 ]; then
  cmd=$(dd bs=1 count="$cmdlen" 2>/dev/null)
  sh -c "$cmd" </dev/null >&2
  rc=$?
  echo "@rpdeploy restart $rc"
else
  rc=0
fi
probe() {
  if command -v curl >/dev/null 2>&1; then
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --noproxy '*' "$url" 2>/dev/null)
    echo "${code:-000}"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import sys, urllib.request as r, urllib.error as e
try:
    print(r.build_opener(r.ProxyHandler({})).open(sys.argv[1], timeout=5).status)
except e.HTTPError as x:
    print(x.code)
except Exception:
    print("000")' "$url" 2>/dev/null || echo 000
  elif command -v wget >/dev/null 2>&1; then
    if wget -q -O /dev/null -T 5 "$url" 2>/dev/null; then echo 200; else echo 000; fi
  else
    echo none
  fi
}
# Without D-Bus, systemctl answers only root; use sudo for the read-only queries if we may.
sc=systemctl
if [ "$systemd" = 1 ]; then
  load=$(systemctl show -p LoadState --value -- "$svc" 2>/dev/null)
  if [ -z "$load" ] && [ "$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then
    sc="sudo -n systemctl"
    load=$($sc show -p LoadState --value -- "$svc" 2>/dev/null)
  fi
  if [ -z "$load" ]; then
    echo "@rpdeploy note systemctl does not answer this user: relying on the health URL only"
    systemd=0
    echo "@rpdeploy systemd 0"
  elif [ "$load" = not-found ]; then
    echo "@rpdeploy status not-found -"
    exit 7
  fi
fi
last= good=0 failed=0
while :; do
  state=-
  if [ "$systemd" = 1 ]; then state=$($sc is-active -- "$svc" 2>/dev/null); state=${state:-unknown}; fi
  code=-
  if [ -n "$url" ] && { [ "$state" = active ] || [ "$state" = - ]; }; then code=$(probe); fi
  if [ "$state $code" != "$last" ]; then echo "@rpdeploy status $state $code"; last="$state $code"; fi
  if [ "$rc" != 0 ]; then exit 5; fi
  if [ "$code" = none ]; then exit 6; fi
  ok=1
  if [ "$state" != active ] && [ "$state" != - ]; then ok=0; fi
  case $code in 2??|-) ;; *) ok=0 ;; esac
  if [ "$ok" = 1 ]; then
    good=$((good + 1))
    # Without a health URL, "active" must hold for a second: a unit that dies at start
    # is briefly active first.
    # (A single look, timeout 0, takes "active" as it is.)
    if [ -n "$url" ] || [ "$systemd" = 0 ] || [ "$good" -ge 2 ] || [ "$timeout" = 0 ]; then exit 0; fi
  else
    good=0
  fi
  if [ "$state" = failed ]; then failed=$((failed + 1)); else failed=0; fi
  if [ "$failed" -ge 2 ]; then exit 3; fi
  if [ $(( $(date +%s) - start )) -ge "$timeout" ]; then exit 4; fi
  sleep 1
done
"""

_JOURNAL = r"""
export LC_ALL=C
if [ -d /run/systemd/system ] && command -v journalctl >/dev/null 2>&1; then
  journalctl -u "$1" -n "$2" --no-pager -o short-iso 2>/dev/null || true
fi
exit 0
"""


# --- values -------------------------------------------------------------------------------------


def check_endpoint_id(value: str) -> str:
    """A RunPod endpoint id (letters, digits, - and _), else ValueError."""
    value = value.strip()
    if not _ENDPOINT_ID.match(value):
        raise ValueError(f"{value!r} is not a RunPod endpoint id (letters and digits, like abc123xyz456)")
    return value


def endpoint_url(config: Config, endpoint_id: str) -> str:
    """What the backend calls: the endpoint's OpenAI base URL (``.../openai/v1``), whatever the method.

    Every method answers RunPod's OpenAI route (worker-vllm, and our handlers the way worker-vllm
    does), so one backend configuration serves all three and switching methods leaves it alone.
    """
    return f"{config.runpod.resolved_endpoint_url()}/{check_endpoint_id(endpoint_id)}/openai/v1"


@dataclass(frozen=True)
class BackendValues:
    """The three settings the backend gets. ``repr`` shows where the key came from, never the key."""

    endpoint_id: str
    endpoint_url: str
    api_key: Secret

    @classmethod
    def for_endpoint(cls, config: Config, endpoint_id: str, api_key: Secret) -> BackendValues:
        return cls(check_endpoint_id(endpoint_id), endpoint_url(config, endpoint_id), api_key)


def backend_key(config: Config, environ: Mapping[str, str] | None = None) -> Secret:
    """The RunPod key the backend gets: ``backend.api_key``, else the deploy key (``runpod.api_key``)."""
    if config.backend is not None and config.backend.api_key is not None:
        return config.backend.api_key.resolve(base_dir=config.base_dir, environ=environ, field="backend.api_key")
    return config.runpod.api_key.resolve(base_dir=config.base_dir, environ=environ, field="runpod.api_key")


def properties(config: Config, endpoint_id: str) -> str:
    """The ``application.properties`` lines: the URL as a value, the key as a reference to the env var."""
    from rpdeploy.config import BackendEnvNames

    names = config.backend.env_names if config.backend is not None else BackendEnvNames()
    return f"runpod.endpoint.url={endpoint_url(config, endpoint_id)}\nrunpod.api.key=${{{names.api_key}}}\n"


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyChange:
    """One of our keys in the env file: ``added``, ``changed`` or ``unchanged``; the API key shown as ****."""

    name: str
    action: str
    old: str | None
    new: str


@dataclass(frozen=True)
class HostEnv:
    """What the env file on the host holds, as the backend stages fingerprint it (nothing secret in it).

    ``digest`` is a truncated sha256 of the file's bytes (``absent`` when there is none), so any
    change on the host, ours or someone else's, changes it; ``dropin`` is the cksum of our
    systemd drop-in (systemd mode). The URL and id are there to say what the file points at.
    """

    env_file: str
    digest: str
    dropin: str | None
    endpoint_url: str | None
    endpoint_id: str | None

    def fingerprint(self) -> dict[str, str | None]:
        return {
            "env_file": self.env_file,
            "digest": self.digest,
            "dropin": self.dropin,
            "endpoint_url": self.endpoint_url,
            "endpoint_id": self.endpoint_id,
        }


def _content_digest(content: bytes | None) -> str:
    return "absent" if content is None else hashlib.sha256(content).hexdigest()[:16]


@dataclass(frozen=True)
class ConfigureResult:
    host: str
    mode: str
    env_file: str
    changed: bool
    dry_run: bool
    keys: tuple[KeyChange, ...]
    diff: str
    backup: str | None = None
    dropin: str | None = None
    dropin_changed: bool = False
    reloaded: bool = False
    notes: tuple[str, ...] = ()
    #: The env file as it is on the host after this (before it, for a dry run or no change).
    on_host: HostEnv | None = None

    @property
    def backup_stamp(self) -> str | None:
        match = _BACKUP_NAME.search(self.backup or "")
        return match.group("stamp") if match else None


@dataclass(frozen=True)
class RestartResult:
    host: str
    service: str
    command: str | None
    healthy: bool
    state: str | None  # systemd's word (active, failed...), None when the host has no systemd
    health_status: int | None  # HTTP status of health_url (0: no answer), None without health_url
    seconds: float
    reason: str = ""  # why it is not healthy
    restart_exit: int | None = None


@dataclass(frozen=True)
class RollbackResult:
    host: str
    env_file: str
    backup: str  # the backup restored (its path; the .absent marker when the file was removed)
    action: str  # "restored" or "removed"
    dry_run: bool = False
    dropin: str | None = None
    restart: RestartResult | None = None


@dataclass(frozen=True)
class CheckResult:
    host: str
    service: str
    mode: str
    env_file: str
    env_file_exists: bool
    endpoint_id: str | None
    endpoint_url: str | None
    api_key: str | None  # "****" when set
    state: str | None
    health_status: int | None
    healthy: bool
    backups: tuple[str, ...] = ()
    drift: tuple[str, ...] = ()  # keys whose value differs from the expected values, when given
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApplyResult:
    configure: ConfigureResult
    restart: RestartResult | None  # None when nothing changed and no restart was asked for


class BackendRolledBackError(BackendError):
    """The new settings did not come up; the backup was restored. ``recovered`` says if that worked."""

    def __init__(self, message: str, *, hint: str | None, rollback: RollbackResult | None, recovered: bool) -> None:
        super().__init__(message, hint=hint)
        self.rollback = rollback
        self.recovered = recovered

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["rolled_back"] = self.rollback is not None
        data["recovered"] = self.recovered
        return data


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


# --- POSIX cksum (to notice a file that changed between our read and our write) ------------------


def _cksum_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CKSUM_TABLE = _cksum_table()


def cksum(data: bytes) -> str:
    """What ``cksum < file`` prints: the POSIX CRC and the length."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CKSUM_TABLE[(crc >> 24) ^ byte]
    length = len(data)
    while length:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CKSUM_TABLE[(crc >> 24) ^ (length & 0xFF)]
        length >>= 8
    return f"{~crc & 0xFFFFFFFF} {len(data)}"


# --- talking to the host ------------------------------------------------------------------------


@dataclass(frozen=True)
class _HostState:
    """What the inspect script found on the host."""

    path: str
    uid: int
    user: str
    dir_exists: bool
    dir_writable: bool
    file: str  # "0" absent, "1" regular file, "other"
    owner: str | None
    readable: bool
    systemd: bool
    unit: str | None
    active: str | None
    env_files: tuple[str, ...]
    backups: tuple[str, ...]
    backups_listed: bool
    symlink: str | None
    dropin_cksum: str | None
    content: bytes | None = field(default=None, repr=False)
    too_large: int | None = None

    @property
    def exists(self) -> bool:
        return self.file == "1"

    @property
    def owned(self) -> bool:
        return self.owner is not None and self.owner.split(":")[0] == str(self.uid)

    def backup_stamps(self) -> list[str]:
        """Complete backup sets, oldest first."""
        return sorted({stamp for stamp, kind in self.backup_files().values() if kind in ("bak", "absent")})

    def backup_files(self) -> dict[str, tuple[str, str]]:
        """Backup file name -> (stamp, kind), for names that are exactly ours (``<env file>.rpdeploy-...``)."""
        base = self.path.rsplit("/", 1)[-1]
        found = {}
        for name in self.backups:
            match = _BACKUP_NAME.search(name)
            if match and name == f"{base}.rpdeploy-{match.group('stamp')}.{match.group('kind')}":
                found[name] = (match.group("stamp"), match.group("kind"))
        return found


def _parse_inspect(output: bytes) -> _HostState:
    head, marker, content = output.partition(b"\n@content\n")
    if not marker and output.startswith(b"@content\n"):
        head, content, marker = b"", output[len(b"@content\n") :], b"x"
    facts: dict[str, list[str]] = {}
    for line in head.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts.setdefault(key, []).append(value)

    def one(key: str) -> str | None:
        values = facts.get(key)
        return values[-1] if values else None

    if len(facts.get("path", [])) != 1 or len(facts.get("uid", [])) != 1:
        # A path with a line break in it (a symlink's target) would also end up here: refuse it.
        raise BackendError("the host answered something rpdeploy does not understand (is its shell POSIX sh?)")
    uid = _int(one("uid") or "")
    if uid is None or uid < 0:
        raise BackendError(
            f"the host's `id -u` answered {shorten(one('uid') or '', 40)}, not a user id (is its shell POSIX sh?)"
        )
    too_large = _int(one("too_large") or "")
    return _HostState(
        path=one("path") or "",
        uid=uid,
        user=one("user") or "",
        dir_exists=one("dir") == "1",
        dir_writable=one("dir_writable") == "1",
        file=one("file") or "0",
        owner=one("owner"),
        readable=one("readable") == "1",
        systemd=one("systemd") == "1",
        unit=one("unit"),
        active=one("active"),
        env_files=tuple(re.sub(r"\s*\(ignore_errors=\w+\)$", "", v) for v in facts.get("envfile", [])),
        backups=tuple(facts.get("backup", [])),
        backups_listed=one("backups_listed") == "1",
        symlink=one("symlink"),
        dropin_cksum=one("dropin_cksum"),
        content=content if marker else None,
        too_large=too_large,
    )


class _Session:
    """One host, one backend section, and whether file operations need root there."""

    def __init__(self, config: Config, reporter: Reporter, host: remote.Host | None = None) -> None:
        if config.backend is None:
            raise ConfigError(
                f"{config.path} has no backend: section",
                hint="add one (host, mode, service, health_url...); `rpdeploy init --backend-host user@host` writes it",
            )
        self.config = config
        self.backend: BackendConfig = config.backend
        self.reporter = reporter
        self.host = host if host is not None else remote.host_for(self.backend)
        self.root = False
        self.systemd_mode = self.backend.mode.value == "systemd"

    @property
    def label(self) -> str:
        return self.host.label

    @property
    def secret_keys(self) -> frozenset[str]:
        return frozenset({self.backend.env_names.api_key})

    @property
    def clear_keys(self) -> frozenset[str]:
        """The keys rpdeploy writes whose values are not secret: shown in diffs."""
        names = self.backend.env_names
        return frozenset({names.endpoint_url, names.endpoint_id})

    @property
    def dropin(self) -> str | None:
        return dropin_path(self.backend.service) if self.systemd_mode else None

    def inspect(self, *, write: bool, content: bool = True) -> _HostState:
        """Look at the env file; switch to root (sudo) when the login cannot do what is needed."""
        env_file = self.backend.resolved_env_file
        if self.systemd_mode and not env_file.startswith("/"):
            raise ConfigError(f"backend.env_file {env_file!r}: systemd mode needs an absolute path")
        args = [env_file, self.backend.service, self.dropin or "", "1" if content else "0", str(MAX_ENV_FILE)]
        state = self._inspect(args, root=False)
        if isinstance(self.host, remote.SshHost):
            self.host.remember_uid(state.uid)
        if state.uid != 0 and self._needs_root(state, write=write):
            self.reporter.debug(f"{state.user or 'the login'} on {self.label} cannot do this alone: using sudo -n")
            self.root = True
            state = self._inspect([state.path, *args[1:]], root=True)
        if state.symlink:
            self.reporter.info(f"{env_file} is a symlink: editing its target {state.path}")
        if state.file == "other":
            raise BackendError(f"{state.path} on {self.label} exists but is not a regular file")
        if state.too_large is not None:
            raise BackendError(
                f"{state.path} on {self.label} is {state.too_large} bytes; rpdeploy edits env files of at most "
                f"{MAX_ENV_FILE} bytes",
                hint="is backend.env_file really the service's env file?",
            )
        if state.exists and content and state.content is None:
            raise BackendError(f"cannot read {state.path} on {self.label}", hint=self.host.sudo_hint())
        return state

    def _needs_root(self, state: _HostState, *, write: bool) -> bool:
        if write and self.systemd_mode:
            return True  # the drop-in and daemon-reload
        if state.exists and not state.readable:
            return True
        if not state.backups_listed and state.dir_exists:
            return True
        if write:
            return not (state.dir_writable and (not state.exists or state.owned))
        return False

    def _inspect(self, args: list[str], *, root: bool) -> _HostState:
        done = self.host.run(_INSPECT, args, root=root, timeout=FILE_TIMEOUT, what=f"reading {args[0]}")
        if done.returncode != 0:
            raise BackendError(f"reading {args[0]} on {self.label} failed: {done.stderr_tail or done.returncode}")
        return _parse_inspect(done.stdout)

    def run(self, script: str, args: Sequence[str], *, what: str, **kwargs: Any) -> remote.Completed:
        return self.host.run(script, args, root=self.root, what=what, **kwargs)

    def journal(self, lines: int = 20) -> None:
        """Show the end of the service's journal (untrusted text, redacted) to help say why."""
        try:
            done = self.host.run(
                _JOURNAL,
                [self.backend.service, str(lines)],
                root=self.root or not self.host.is_root(),
                timeout=30,
                what="reading the journal",
            )
        except BackendError as exc:
            self.reporter.debug(f"could not read the journal: {exc}")
            return
        text = redact(done.stdout.decode("utf-8", "replace")).strip()
        if text:
            self.reporter.info(f"last lines of {self.backend.service}'s journal on {self.label}:")
            for line in text.splitlines():
                self.reporter.log_line(line)


def _decode_env(state: _HostState, label: str) -> str | None:
    if state.content is None:
        return None
    if b"\0" in state.content:
        raise BackendError(f"{state.path} on {label} contains a NUL byte; not editing it")
    try:
        return state.content.decode("utf-8")
    except UnicodeDecodeError:
        raise BackendError(f"{state.path} on {label} is not UTF-8 text; not editing it") from None


def _register_secrets(text: str | None, secret_keys: frozenset[str]) -> None:
    """Values of secret-looking keys already on the host are masked in all output from now on."""
    if text is None:
        return
    for entry in parse_env(text):
        value = entry.value or ""
        if entry.key is None or not value or not _is_secret(entry.key, secret_keys):
            continue
        # A short plain word ("true", "admin") would mask that word in every message from now on.
        if entry.key in secret_keys or len(value) >= 8 or not (_PLAIN_NUMBER.match(value) or _PLAIN_WORD.match(value)):
            register(value)


def _updates(session: _Session, values: BackendValues) -> dict[str, str]:
    names = session.backend.env_names
    return {
        names.endpoint_url: values.endpoint_url,
        names.endpoint_id: values.endpoint_id,
        names.api_key: values.api_key.reveal(),
    }


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


# --- configure ----------------------------------------------------------------------------------


def configure(
    config: Config,
    values: BackendValues,
    *,
    reporter: Reporter | None = None,
    dry_run: bool = False,
    host: remote.Host | None = None,
) -> ConfigureResult:
    """Merge the values into the backend's env file (and in systemd mode, add the drop-in).

    Nothing is written when nothing changed. ``dry_run`` returns the diff (secrets as ****)
    and touches nothing.
    """
    reporter = reporter or NullReporter()
    session = _Session(config, reporter, host)
    state = session.inspect(write=True)
    label = session.label
    old = _decode_env(state, label)
    _register_secrets(old, session.secret_keys)
    if not state.dir_exists and not session.systemd_mode:
        raise BackendError(
            f"the folder of {state.path} does not exist on {label}",
            hint="is the service installed there? Set backend.env_file to the file its unit reads (EnvironmentFile=)",
        )
    merged = merge_env(old or "", _updates(session, values), secret_keys=session.secret_keys)
    notes = list(merged.notes)
    notes += _unit_notes(session, state)
    new_dropin = dropin_text(session.backend.service, state.path) if session.systemd_mode else None
    dropin_changed = new_dropin is not None and state.dropin_cksum != cksum(new_dropin.encode())
    diff = (
        _diff(old, merged.text, state.path, secret_keys=session.secret_keys, clear_keys=session.clear_keys)
        if merged.changed
        else ""
    )
    if dropin_changed and new_dropin is not None and session.dropin is not None:
        before = "(replaced)\n" if state.dropin_cksum else None
        diff += "".join(
            difflib.unified_diff(
                [before] if before else [],
                new_dropin.splitlines(keepends=True),
                fromfile=session.dropin if before else "/dev/null",
                tofile=session.dropin,
            )
        )
    changed = merged.changed or dropin_changed
    names = session.backend.env_names
    current = env_values(old or "")
    found = HostEnv(
        state.path,
        _content_digest(state.content if state.exists else None),
        state.dropin_cksum if session.systemd_mode else None,
        current.get(names.endpoint_url),
        current.get(names.endpoint_id),
    )
    planned = ConfigureResult(
        host=label,
        mode=session.backend.mode.value,
        env_file=state.path,
        changed=changed,
        dry_run=dry_run,
        keys=merged.changes,
        diff=diff,
        dropin=session.dropin,
        dropin_changed=dropin_changed,
        notes=tuple(notes),
        on_host=found,
    )
    if dry_run or not changed:
        for note in notes:
            reporter.warn(note)
        return planned

    stamp = _stamp()
    payload = merged.text.encode("utf-8")
    dropin_bytes = new_dropin.encode("utf-8") if dropin_changed and new_dropin is not None else b""
    # Prune to KEEP_BACKUPS sets, counting the one this write adds.
    stamps = state.backup_stamps()
    doomed = set(stamps[: max(0, len(stamps) - (KEEP_BACKUPS - 1))])
    prune = [name for name, (backup_stamp, _) in state.backup_files().items() if backup_stamp in doomed]
    events: list[tuple[str, str]] = []

    def on_line(line: str) -> None:
        if line.startswith("@rpdeploy "):
            word, _, rest = line[len("@rpdeploy ") :].partition(" ")
            events.append((word, rest))

    with reporter.status(f"writing {state.path} on {label}"):
        done = session.run(
            _WRITE,
            [
                state.path,
                stamp,
                cksum(state.content) if state.exists and state.content is not None else "absent",
                str(len(payload)),
                session.dropin if dropin_changed and session.dropin else "",
                str(len(dropin_bytes)),
                "create" if session.systemd_mode else "must-exist",
                "root" if session.systemd_mode else "dir",
                *prune,
            ],
            data=payload + dropin_bytes,
            timeout=FILE_TIMEOUT,
            what=f"writing {state.path}",
            on_line=on_line,
        )
    backup = next((rest for word, rest in events if word == "backup"), None)
    if done.returncode != 0:
        installed = any(word == "installed" for word, _ in events)
        message = f"writing {state.path} on {label} failed: {done.stderr_tail or f'exit {done.returncode}'}"
        if installed:
            raise BackendError(
                message + f" (the new env file is in place; the previous one is in {backup})",
                hint="`rpdeploy backend rollback` puts the previous file back",
            )
        raise BackendError(message + " (nothing was changed)")
    for note in notes:
        reporter.warn(note)
    reporter.info(f"wrote {state.path} on {label} (backup: {backup})")
    after = HostEnv(
        state.path,
        _content_digest(payload),
        (cksum(new_dropin.encode("utf-8")) if new_dropin is not None else None) if session.systemd_mode else None,
        values.endpoint_url,
        values.endpoint_id,
    )
    return replace(planned, backup=backup, reloaded=any(word == "reloaded" for word, _ in events), on_host=after)


def observe(config: Config, *, reporter: Reporter | None = None, host: remote.Host | None = None) -> HostEnv:
    """What the env file (and drop-in) on the host hold now: the backend stages' view of the real host."""
    session = _Session(config, reporter or NullReporter(), host)
    state = session.inspect(write=False)
    text = _decode_env(state, session.label)
    _register_secrets(text, session.secret_keys)
    current = env_values(text or "")
    names = session.backend.env_names
    return HostEnv(
        state.path,
        _content_digest(state.content if state.exists else None),
        state.dropin_cksum if session.systemd_mode else None,
        current.get(names.endpoint_url),
        current.get(names.endpoint_id),
    )


def _unit_notes(session: _Session, state: _HostState) -> list[str]:
    """Warn when the service will not see the file we write."""
    service = session.backend.service
    if not state.systemd:
        return []
    if state.unit == "not-found":
        return [f"{service}.service is not a systemd unit on {session.label}; check backend.service"]
    if session.systemd_mode or not state.unit:
        return []
    if state.path not in state.env_files:
        listed = ", ".join(state.env_files) or "none"
        return [
            f"{service}.service does not read {state.path} (its EnvironmentFile= entries: {listed}); "
            "the new values reach it only if the application reads that file itself. "
            "Use mode: systemd, or set backend.env_file to the unit's file"
        ]
    return []


# --- restart, wait, check -----------------------------------------------------------------------


@dataclass
class _Progress:
    systemd: bool = True
    restart_exit: int | None = None
    state: str | None = None
    health: int | None = None
    not_found: bool = False


def _restart_and_wait(session: _Session, *, command: str | None, timeout: float, title: str) -> RestartResult:
    """Run ``command`` (None: do not restart, just look) and wait for the service; never raises on unhealthy."""
    backend = session.backend
    service = backend.service
    url = backend.health_url or ""
    data = command.encode("utf-8") if command else b""
    progress = _Progress()
    started = time.monotonic()

    with session.reporter.status(title) as status:

        def on_line(line: str) -> None:
            if not line.startswith("@rpdeploy "):
                return
            word, _, rest = line[len("@rpdeploy ") :].partition(" ")
            if word == "systemd":
                progress.systemd = rest.strip() == "1"
            elif word == "note":
                session.reporter.warn(rest)
            elif word == "restart":
                progress.restart_exit = _int(rest)
                if progress.restart_exit == 0:
                    status.update(f"{service} restarted; waiting for it to be healthy")
            elif word == "status":
                state, _, code = rest.partition(" ")
                progress.state = None if state == "-" else state
                progress.not_found = state == "not-found"
                progress.health = None if code in ("-", "none", "") else _int(code)
                shown = [f"{service}: {progress.state or 'running (no systemd)'}"]
                if url and progress.health is not None:
                    shown.append(f"health {progress.health or 'no answer'}")
                status.update(", ".join(shown))

        done = session.host.run(
            _RESTART,
            [service, url, str(int(timeout)), str(len(data))],
            data=data,
            timeout=timeout + remote.DEFAULT_CONNECT_TIMEOUT + 60,
            on_line=on_line,
            what=f"restarting {service}" if command else f"checking {service}",
        )
    for line in done.stderr.splitlines():
        # The restart command's own output (and errors): untrusted text.
        session.reporter.log_line(line) if done.returncode != 0 else session.reporter.debug(line)
    reason = {
        0: "",
        3: f"{service} failed to start (systemd: failed)",
        4: f"{service} was not healthy within {int(timeout)} s",
        5: f"the restart command exited {progress.restart_exit}",
        6: f"no curl, python3 or wget on {session.label} to poll {url}",
        7: f"there is no unit {service}.service on {session.label}",
    }.get(done.returncode, f"the wait script failed (exit {done.returncode}): {done.stderr_tail}")
    if done.returncode == 4:
        reason += f" (state {progress.state or '?'}" + (f", health {progress.health or 'no answer'})" if url else ")")
    return RestartResult(
        host=session.label,
        service=service,
        command=command,
        healthy=done.returncode == 0,
        state=progress.state if progress.systemd else None,
        health_status=progress.health if url else None,
        seconds=round(time.monotonic() - started, 2),
        reason=reason,
        restart_exit=progress.restart_exit,
    )


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def restart(config: Config, *, reporter: Reporter | None = None, host: remote.Host | None = None) -> RestartResult:
    """Run the restart command and wait until the service is active and healthy; raise if it does not get there."""
    reporter = reporter or NullReporter()
    session = _Session(config, reporter, host)
    result = _restart(session)
    if not result.healthy:
        session.journal()
        raise BackendError(
            f"{result.reason} on {session.label}",
            hint=f"look at `journalctl -u {session.backend.service}` on the host; "
            "`rpdeploy backend rollback` restores the previous env file",
        )
    return result


def _restart(session: _Session) -> RestartResult:
    backend = session.backend
    if backend.health_url is None:
        session.reporter.debug("no backend.health_url: only systemd's state tells whether the service is up")
    return _restart_and_wait(
        session,
        command=backend.restart_command,
        timeout=backend.health_timeout,
        title=f"restarting {backend.service} on {session.label}",
    )


def check(
    config: Config,
    *,
    reporter: Reporter | None = None,
    expected: BackendValues | None = None,
    host: remote.Host | None = None,
) -> CheckResult:
    """What the env file on the host holds (key masked), whether the service is active and healthy."""
    reporter = reporter or NullReporter()
    session = _Session(config, reporter, host)
    state = session.inspect(write=False)
    text = _decode_env(state, session.label)
    _register_secrets(text, session.secret_keys)
    current = env_values(text or "")
    names = session.backend.env_names
    probe = _restart_and_wait(
        session, command=None, timeout=0, title=f"checking {session.backend.service} on {session.label}"
    )
    drift: list[str] = []
    if expected is not None:
        for name, value in _updates(session, expected).items():
            if current.get(name) != value:
                drift.append(name)
    return CheckResult(
        host=session.label,
        service=session.backend.service,
        mode=session.backend.mode.value,
        env_file=state.path,
        env_file_exists=state.exists,
        endpoint_id=current.get(names.endpoint_id),
        endpoint_url=current.get(names.endpoint_url),
        api_key=MASK if current.get(names.api_key) else None,
        state=probe.state,
        health_status=probe.health_status,
        healthy=probe.healthy,
        backups=tuple(state.backup_stamps()),
        drift=tuple(drift),
        notes=tuple(_unit_notes(session, state)),
    )


# --- rollback -----------------------------------------------------------------------------------


def _restore(session: _Session, state: _HostState, stamp: str) -> RollbackResult:
    prefix = f"{state.path}.rpdeploy-{stamp}"
    events: list[str] = []
    done = session.run(
        _RESTORE,
        [state.path, stamp, session.dropin or ""],
        timeout=FILE_TIMEOUT,
        on_line=lambda line: events.append(line),
        what=f"restoring {state.path}",
    )
    if done.returncode != 0:
        raise BackendError(f"restoring {state.path} on {session.label} failed: {done.stderr_tail}")
    removed = any(line == f"@rpdeploy removed {state.path}" for line in events)
    dropin = next(
        (line.split(" ", 2)[2] for line in events if line.startswith("@rpdeploy ") and "rpdeploy.conf" in line), None
    )
    backup = f"{prefix}.absent" if removed else f"{prefix}.bak"
    session.reporter.info(
        f"{'removed' if removed else 'restored'} {state.path} on {session.label} (from {backup.rsplit('/', 1)[-1]})"
    )
    return RollbackResult(
        host=session.label,
        env_file=state.path,
        backup=backup,
        action="removed" if removed else "restored",
        dropin=dropin,
    )


def rollback(
    config: Config,
    *,
    reporter: Reporter | None = None,
    stamp: str | None = None,
    dry_run: bool = False,
    host: remote.Host | None = None,
) -> RollbackResult:
    """Put back the newest backup (or the one of ``stamp``), then restart and wait for the service.

    The backup is used up: a second rollback goes one step further back. Raises when there is
    no backup, or when the service is not healthy afterwards.
    """
    reporter = reporter or NullReporter()
    session = _Session(config, reporter, host)
    state = session.inspect(write=True, content=False)
    stamps = state.backup_stamps()
    if not stamps:
        raise BackendError(
            f"there is no rpdeploy backup of {state.path} on {session.label}: nothing to roll back",
            hint="backups are made by `rpdeploy backend configure` (it keeps the last "
            f"{KEEP_BACKUPS}) next to the env file",
        )
    chosen = stamp or stamps[-1]
    if chosen not in stamps:
        raise BackendError(f"no backup {chosen} of {state.path} on {session.label}; there are: {', '.join(stamps)}")
    if dry_run:
        prefix = f"{state.path}.rpdeploy-{chosen}"
        absent = (chosen, "absent") in state.backup_files().values()
        return RollbackResult(
            host=session.label,
            env_file=state.path,
            backup=f"{prefix}.absent" if absent else f"{prefix}.bak",
            action="removed" if absent else "restored",
            dry_run=True,
            dropin=session.dropin,
        )
    restored = _restore(session, state, chosen)
    outcome = _restart(session)
    result = replace(restored, restart=outcome)
    if not outcome.healthy:
        session.journal()
        raise BackendError(
            f"{state.path} is back to its previous version on {session.label}, but {outcome.reason}",
            hint=f"the service needs attention: look at `journalctl -u {session.backend.service}` on the host",
        )
    return result


# --- the safe sequence --------------------------------------------------------------------------


def restart_or_rollback(
    config: Config,
    configured: ConfigureResult,
    *,
    reporter: Reporter | None = None,
    host: remote.Host | None = None,
) -> RestartResult:
    """Restart after :func:`configure`; if the service does not come back healthy, restore its backup.

    Raises :class:`BackendRolledBackError` saying what failed and whether the rollback
    brought the service back (``recovered``).
    """
    reporter = reporter or NullReporter()
    session = _Session(config, reporter, host)
    first = _restart(session)
    if first.healthy:
        reporter.success(f"{first.service} is healthy on {first.host} ({first.seconds:.1f} s)")
        return first
    session.journal()
    stamp = configured.backup_stamp
    if stamp is None:
        raise BackendRolledBackError(
            f"{first.reason} on {first.host}; the env file was not changed by this run, so there is nothing "
            "to roll back",
            hint=f"look at `journalctl -u {first.service}` on the host",
            rollback=None,
            recovered=False,
        )
    reporter.warn(f"{first.reason}: rolling back to the previous env file")
    try:
        state = session.inspect(write=True, content=False)
        restored = _restore(session, state, stamp)
    except BackendError as exc:
        raise BackendRolledBackError(
            f"{first.reason} on {first.host}, and the rollback failed too: {exc.message}",
            hint=f"restore {configured.env_file} by hand from {configured.backup}; the service needs attention",
            rollback=None,
            recovered=False,
        ) from None
    second = _restart(session)
    result = replace(restored, restart=second)
    if second.healthy:
        raise BackendRolledBackError(
            f"{first.reason} with the new settings on {first.host}. Rolled back: {configured.env_file} is its "
            f"previous version again and {first.service} is healthy on the previous endpoint",
            hint=f"nothing is down; find out why the new settings failed (`journalctl -u {first.service}` on the "
            "host), then run the deploy again",
            rollback=result,
            recovered=True,
        )
    session.journal()
    raise BackendRolledBackError(
        f"{first.reason} with the new settings on {first.host}. Rolled back {configured.env_file} to its previous "
        f"version, but then {second.reason}: check the service now, it may be down",
        hint=f"look at `journalctl -u {first.service}` and `systemctl status {first.service}` on the host",
        rollback=result,
        recovered=False,
    )


def apply(
    config: Config,
    values: BackendValues,
    *,
    reporter: Reporter | None = None,
    restart_unchanged: bool = False,
    host: remote.Host | None = None,
) -> ApplyResult:
    """Configure, restart, verify; roll back when the service does not come back (deploy stages 9-10)."""
    reporter = reporter or NullReporter()
    configured = configure(config, values, reporter=reporter, host=host)
    if not configured.changed and not restart_unchanged:
        reporter.info(f"{configured.env_file} already points at {values.endpoint_id}: no restart needed")
        return ApplyResult(configured, None)
    return ApplyResult(configured, restart_or_rollback(config, configured, reporter=reporter, host=host))
