"""Pushing the image: a login check before any slow step, the whole event stream read (a failed
push does not raise by itself), transient failures retried with backoff, and the digest from the
final ``aux`` event (``name@sha256:...`` is what the endpoint runs).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rpdeploy.build.engine import API_TIMEOUT, _api_message, _engine_errors, _engine_hint, _reason
from rpdeploy.build.progress import _event_error, _PushProgress
from rpdeploy.build.registry_auth import RegistryAuth, login_hint
from rpdeploy.errors import DockerError, RegistryError
from rpdeploy.output import NullReporter, Reporter

if TYPE_CHECKING:
    pass


_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class PushResult:
    """A pushed image, by digest: what the endpoint runs."""

    image: str  # name@sha256:...
    tag: str
    digest: str
    size: int  # bytes of the local image, uncompressed
    bytes_pushed: int  # sum of the sizes of the layers actually sent
    layers_pushed: int
    layers_present: int  # already in the registry (or mounted from another repository): not sent
    attempts: int
    seconds: float


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff for transient registry failures.

    Why not tenacity (``stop_after_attempt``, ``wait_exponential``, ``retry_if_exception``): the
    two loops that use this (login check, push) are a dozen lines each, retry only what
    :func:`classify_failure` calls transient, report "attempt n of m" through the Reporter,
    return the attempt count in :class:`PushResult` and take an injectable ``sleep`` for the
    tests; tenacity would express the same with a callback per concern and add a dependency
    whose import costs 50-240 ms and ~70 modules on the CI machine (``python -X importtime -c
    "import tenacity"``, tenacity 9.1.4: it imports asyncio), paid at the first push.
    """

    attempts: int = 4
    delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.delay * self.factor ** (attempt - 1)))


# --- push ---------------------------------------------------------------------------------

FailureKind = Literal["auth", "unreachable", "transient", "other"]

_AUTH = re.compile(
    r"unauthorized|denied|authentication required|incorrect username or password|\b401\b|\b403\b", re.IGNORECASE
)
_UNREACHABLE = re.compile(
    r"connection refused|no such host|network is unreachable|no route to host|i/o timeout|"
    r"server gave http response to https client|dial tcp",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"connection reset|connection refused|broken pipe|\bEOF\b|timeout|timed out|temporar|"
    r"status(?: code)?:? 5\d\d\b|internal server error|bad gateway|service unavailable|gateway time-?out|"
    # Go's net/http says "server closed idle connection" when a kept-alive connection is dropped.
    r"i/o timeout|tls handshake|closed idle connection",
    re.IGNORECASE,
)


def classify_failure(message: str) -> FailureKind:
    """What a registry error message means for us: give up with a hint, or try again."""
    if _AUTH.search(message):
        return "auth"
    transient = bool(_TRANSIENT.search(message))
    if _UNREACHABLE.search(message):
        # Refused or timed out may be a blip worth retrying; an unknown host is not.
        return "transient" if transient else "unreachable"
    return "transient" if transient else "other"


class _RetryablePush(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _registry_error(kind: FailureKind, message: str, auth: RegistryAuth, doing: str) -> RegistryError:
    """A RegistryError for ``doing`` ("pushing NAME", "logging in") that failed with ``message``."""
    registry = auth.registry
    if kind == "auth":
        return RegistryError(
            f"{doing}: the registry {registry} refused the credentials ({auth.describe()}): {message}",
            hint="check the user name and password (or token) and that they may push to this repository; "
            + login_hint(registry),
        )
    if kind in ("unreachable", "transient") and _UNREACHABLE.search(message):
        return RegistryError(
            f"{doing}: cannot reach the registry {registry}: {message}",
            hint=f"check image.registry in deploy.yaml ({registry}) and that the registry is up and reachable "
            "from the Docker engine (proxy, firewall, DNS)",
        )
    return RegistryError(f"{doing} failed: {message}")


def _pause_text(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"


def verify_login(
    api: Any, auth: RegistryAuth, *, retry: RetryPolicy, reporter: Reporter, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Have the engine log in to the registry once, before a slow build: bad credentials fail now."""
    import tempfile

    import docker

    if auth.identity_token is not None or auth.password is None or not auth.username:
        reporter.debug(f"registry login not checked in advance ({auth.source} holds a token)")
        return
    reporter.info(f"Logging in to {auth.registry} ({auth.describe()})")
    doing = f"logging in to {auth.registry}"
    with tempfile.TemporaryDirectory(prefix="rpdeploy-login-") as scratch:
        # An empty client config for the SDK's login: it would otherwise consult the user's
        # credential helpers first (and fail on a broken one) although we pass the credentials.
        # The SDK then keeps only this login for the build's X-Registry-Config header.
        empty = Path(scratch) / "config.json"
        empty.write_text("{}")
        for attempt in range(1, retry.attempts + 1):
            try:
                with _engine_errors(doing):
                    api.login(
                        auth.username,
                        password=auth.password.reveal(),
                        registry=auth.server,
                        reauth=True,
                        dockercfg_path=str(empty),
                    )
                return
            except DockerError as exc:
                if not isinstance(exc.__cause__, docker.errors.APIError):
                    raise
                message = _api_message(exc.__cause__)
            kind = classify_failure(message)
            if kind != "transient" or attempt == retry.attempts:
                raise _registry_error(kind, message, auth, doing)
            pause = retry.pause(attempt)
            reporter.warn(f"login to {auth.registry} failed ({message}); retrying in {_pause_text(pause)}")
            sleep(pause)


def push_image(
    api: Any,
    name: str,
    tag: str,
    auth: RegistryAuth,
    *,
    reporter: Reporter | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushResult:
    """Push ``name:tag`` and return it by digest. Reads the whole stream; retries transient failures."""
    import docker
    import requests
    import urllib3

    reporter = reporter or NullReporter()
    retry = retry or RetryPolicy()
    doing = f"pushing {name}:{tag}"
    started = time.monotonic()
    progress = _PushProgress()
    attempt = 0
    with reporter.transfer(f"Pushing {name}:{tag} to {auth.registry}") as transfer:
        while True:
            attempt += 1
            progress.aux = None
            try:
                try:
                    events = api.push(name, tag=tag, stream=True, decode=True, auth_config=auth.auth_config())
                    for event in events:
                        error = _event_error(event)
                        if error is not None:
                            kind = classify_failure(error)
                            if kind == "transient":
                                raise _RetryablePush(error)
                            raise _registry_error(kind, error, auth, doing)
                        progress.feed(event, transfer, reporter)
                except docker.errors.NotFound as exc:
                    raise DockerError(f"cannot push {name}:{tag}: {_api_message(exc)}") from exc
                except docker.errors.APIError as exc:
                    message = _api_message(exc)
                    kind = classify_failure(message)
                    if kind == "transient":
                        raise _RetryablePush(message) from exc
                    raise _registry_error(kind, message, auth, doing) from exc
                except (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError) as exc:
                    raise _RetryablePush(f"no progress from the engine for {API_TIMEOUT}s") from exc
                except (docker.errors.DockerException, requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                    raise DockerError(
                        f"pushing {name}:{tag}: the Docker engine stopped answering ({_reason(exc)})",
                        hint=_engine_hint("the engine", ""),
                    ) from exc
                if progress.aux is None:
                    raise _RetryablePush("the push ended without a digest (incomplete stream)")
                break
            except _RetryablePush as exc:
                if attempt >= retry.attempts:
                    raise _registry_error(
                        classify_failure(exc.message),
                        f"{exc.message} (gave up after {attempt} attempts)",
                        auth,
                        doing,
                    ) from None
                pause = retry.pause(attempt)
                reporter.warn(
                    f"push failed ({exc.message}); retrying in {_pause_text(pause)} "
                    f"(attempt {attempt + 1} of {retry.attempts})"
                )
                sleep(pause)
    aux = progress.aux
    digest = str(aux.get("Digest", ""))
    if not _DIGEST.match(digest):
        raise RegistryError(f"the registry answered the push of {name}:{tag} with an unexpected digest {digest!r}")
    with _engine_errors("inspecting the pushed image"):
        local = api.inspect_image(f"{name}:{tag}")
    layers = progress.layers.values()
    return PushResult(
        image=f"{name}@{digest}",
        tag=tag,
        digest=digest,
        size=int(local.get("Size") or 0),
        bytes_pushed=progress.bytes_pushed,
        layers_pushed=sum(1 for layer in layers if layer.sent),
        layers_present=sum(1 for layer in layers if layer.present),
        attempts=attempt,
        seconds=round(time.monotonic() - started, 3),
    )
