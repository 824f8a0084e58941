"""Secret values: held in a wrapper that never prints itself, and redacted from all output.

deploy.yaml only ever names where a secret lives (an env var or a file). When a secret is
resolved its value is registered here, and every line the Reporter writes, every JSON
document and every error message passes through :func:`redact` first. The wrapper keeps the
value out of reprs, f-strings and tracebacks; the registry is the second line of defence for
text we did not produce ourselves (docker logs, remote stderr, API error messages).

A secret is registered with the encoded forms in which it can reach text we print, because
other programs echo what they were sent in the form they were sent it (:func:`encoded_forms`):

* JSON string escaping, ASCII-only and not (``"`` and ``\\`` escaped, ``é`` as ``\\u00e9``),
  and escaped twice (a JSON document quoted inside another): GraphQL variables, API error
  bodies that echo a request, NDJSON, pydantic's input echo;
* Python ``repr`` of the str and of its UTF-8 bytes: tracebacks and ``{value!r}`` messages;
* URL percent-encoding (``quote`` with and without ``/`` kept, and ``quote_plus``): query
  strings such as ``?api_key=`` and form bodies, which HTTP libraries print in errors;
* base64, standard and URL-safe, at each of the three byte alignments a secret can have
  inside a longer encoded string: HTTP Basic auth (``user:password``), docker's
  ``X-Registry-Auth`` header and config.json ``auth`` fields, JWT-like tokens. For each
  alignment the run of complete base64 groups that only the secret's bytes decide is
  registered, so ``base64("user:" + secret)`` is caught too (a few edge characters remain);
* POSIX shell quoting (``shlex.quote``): commands shown for a person to copy.

Hex and HTML escaping are left out: nothing rpdeploy talks to produces them from a secret.
Hashes are not encodings (fingerprints hold truncated sha256 digests on purpose).

Child processes get an environment built from an allow-list (:func:`child_environment`),
not ours minus what we know is secret: a secret under an ordinary name (``OPAQUE_VAR``) that
nothing registered can then still not reach ssh, sh or the restart command.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "****"
#: Names of variables whose values are credentials (API_KEY, HF_TOKEN, REGISTRY_PASSWORD...).
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.IGNORECASE)
# Below this, a "secret" from the environment is more likely a flag ("1", "true") than a key.
_MIN_ENV_SECRET = 8
# Very short values would redact ordinary words ("a", "on"); anything this short is not a
# credential worth the noise.
_MIN_LENGTH = 4

# An encoded form shorter than this is not registered (base64 edge runs, mostly): it would
# match ordinary text.
_MIN_ENCODED = 8

_lock = threading.Lock()
_secrets: set[str] = set()
_registered: set[str] = set()
_ordered: tuple[str, ...] = ()


def _base64_runs(raw: bytes) -> Iterable[str]:
    """For each alignment, the base64 of the secret's bytes that fill whole 3-byte groups."""
    for start in range(3):
        body = raw[start:]
        body = body[: len(body) - len(body) % 3]
        if body:
            yield base64.b64encode(body).decode("ascii")
            yield base64.urlsafe_b64encode(body).decode("ascii")


def encoded_forms(value: str) -> set[str]:
    """``value`` and the encodings of it that other programs print (see the module docstring)."""
    raw = value.encode("utf-8")
    forms = {
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        json.dumps(json.dumps(value)[1:-1])[1:-1],
        repr(value)[1:-1],
        repr(raw)[2:-1],
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        shlex.quote(value),
        *_base64_runs(raw),
    }
    return {value} | {form for form in forms if len(form) >= _MIN_ENCODED}


def register(value: str) -> None:
    """Remember ``value`` so that :func:`redact` masks it, and its encoded forms, wherever they appear."""
    global _ordered
    if len(value) < _MIN_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        _registered.update(encoded_forms(value))
        # Longest first, so a secret that contains another is masked whole.
        _ordered = tuple(sorted(_registered, key=len, reverse=True))


def register_environment(environ: Mapping[str, str]) -> None:
    """Register the values of credential-named variables, before anything could print them.

    Secrets deploy.yaml refers to are registered when they are resolved; this also covers
    the ones nothing resolved yet, for a crash's traceback or another program's output.
    """
    for name, value in environ.items():
        if SECRET_NAME.search(name) and len(value) >= _MIN_ENV_SECRET:
            register(value)


def redact(text: str) -> str:
    """``text`` with every registered secret value replaced by ``****``."""
    for value in _ordered:
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_data(data: Any) -> Any:
    """Redact every string inside a JSON-like structure (keys included)."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact_data(k): redact_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(v) for v in data]
    return data


def forget_all() -> None:
    """Clear the registry (tests use this between cases)."""
    global _ordered
    with _lock:
        _secrets.clear()
        _registered.clear()
        _ordered = ()


#: What a child process (ssh, sh, the restart command, git) may inherit from us: the basics of
#: a login (paths, user, locale, time zone, temp folder), what ssh needs to reach an agent or a
#: Kerberos ticket, and proxy settings. Everything else stays behind.
CHILD_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "XDG_RUNTIME_DIR",
        "SSH_AUTH_SOCK",
        "KRB5CCNAME",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
    }
)
_CHILD_ENV_PREFIXES = ("LC_",)


def child_environment(environ: Mapping[str, str], *, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: the allow-listed variables of ``environ``, plus ``extra``.

    A value that holds a registered secret (or an encoded form of one) is dropped even when
    its name is allowed.
    """
    chosen = {
        name: value
        for name, value in environ.items()
        if (name in CHILD_ENV_NAMES or name.startswith(_CHILD_ENV_PREFIXES)) and redact(value) == value
    }
    return {**chosen, **(extra or {})}


class Secret:
    """A resolved secret. ``str()``/``repr()`` show where it came from, never the value."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source
        register(value)

    def reveal(self) -> str:
        """The value itself: pass it only to the place that needs it (a header, stdin)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        # Pickling would carry the value into places we do not control.
        raise TypeError("Secret values cannot be pickled")
