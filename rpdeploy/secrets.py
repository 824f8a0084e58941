"""Secret values: held in a wrapper that never prints itself, and redacted from all output.

deploy.yaml only ever names where a secret lives (an env var or a file). When a secret is
resolved its value is registered here, and every line the Reporter writes, every JSON
document and every error message passes through :func:`redact` first. The wrapper keeps the
value out of reprs, f-strings and tracebacks; the registry is the second line of defence for
text we did not produce ourselves (docker logs, remote stderr, API error messages).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "****"
#: Names of variables whose values are credentials (API_KEY, HF_TOKEN, REGISTRY_PASSWORD...).
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.IGNORECASE)
# Below this, a "secret" from the environment is more likely a flag ("1", "true") than a key.
_MIN_ENV_SECRET = 8
# Very short values would redact ordinary words ("a", "on"); anything this short is not a
# credential worth the noise.
_MIN_LENGTH = 4

_lock = threading.Lock()
_registered: set[str] = set()
_ordered: tuple[str, ...] = ()


def register(value: str) -> None:
    """Remember ``value`` so that :func:`redact` masks it wherever it appears."""
    global _ordered
    if len(value) < _MIN_LENGTH:
        return
    with _lock:
        if value in _registered:
            return
        _registered.add(value)
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
        _registered.clear()
        _ordered = ()


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
