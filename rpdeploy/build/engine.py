"""The docker engine: connecting (``DOCKER_HOST`` or the default socket) and turning the SDK's
exceptions into :class:`~rpdeploy.errors.DockerError` with a hint, where they are raised.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rpdeploy.errors import DockerError

if TYPE_CHECKING:
    pass


#: Seconds the SDK waits for an answer from the engine. Builds have no limit (a quiet RUN step
#: may take an hour); a push that sends no event for this long is treated as stalled (retried).
API_TIMEOUT = 300
DEFAULT_SOCKET = "unix:///var/run/docker.sock"


# --- engine -------------------------------------------------------------------------------


def _engine_hint(host: str, reason: str) -> str:
    if "permission denied" in reason.lower():
        return (
            f"you may not use {host}: add your user to the docker group "
            "(`sudo usermod -aG docker $USER`, then log in again), or run as root"
        )
    return (
        "start the engine (`sudo systemctl start docker`, or `sudo dockerd &` where there is no systemd), "
        "or set DOCKER_HOST to a running engine (e.g. unix:///run/user/1000/docker.sock for rootless docker)"
    )


def connect(environ: Mapping[str, str] | None = None, *, timeout: int = API_TIMEOUT) -> Any:
    """A low-level docker ``APIClient`` for the engine DOCKER_HOST names (default: the local socket).

    Raises DockerError naming the address and how to start the engine when nothing answers.
    """
    import docker
    import requests

    environ = os.environ if environ is None else environ
    host = environ.get("DOCKER_HOST") or DEFAULT_SOCKET
    where = f"DOCKER_HOST={host}" if environ.get("DOCKER_HOST") else f"{host} (DOCKER_HOST is not set)"
    try:
        kwargs = docker.utils.kwargs_from_env(environment=dict(environ))
        # version="auto" asks the engine for its API version: the first round trip.
        api = docker.APIClient(version="auto", timeout=timeout, **kwargs)
        api.ping()
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        reason = _reason(exc)
        raise DockerError(
            f"cannot reach the Docker engine at {where}: {reason}", hint=_engine_hint(host, reason)
        ) from exc
    return api


def _reason(exc: BaseException) -> str:
    """The innermost useful words of a docker/requests/socket error."""
    text = str(exc)
    for marker, words in (
        ("No such file or directory", "no socket there (the engine is not running)"),
        ("Connection refused", "connection refused (the engine is not running)"),
        ("Permission denied", "permission denied"),
        ("timed out", "timed out"),
    ):
        if marker.lower() in text.lower():
            return words
    return text


HELPER_HINT = (
    "check credsStore/credHelpers in your docker config (~/.docker/config.json or $DOCKER_CONFIG): "
    "the docker-credential-<name> program must be installed and on PATH"
)


@contextmanager
def _engine_errors(what: str) -> Iterator[None]:
    """Translate docker SDK and transport errors raised while ``what`` into DockerError."""
    import docker
    import requests
    import urllib3
    from docker.credentials import StoreError

    try:
        with warnings.catch_warnings():
            # The SDK warns about a missing credential helper, then fails: the error says it once.
            warnings.filterwarnings("ignore", message=r"docker-credential-.* not installed")
            yield
    except docker.errors.APIError as exc:
        raise DockerError(f"{what}: {_api_message(exc)}") from exc
    except StoreError as exc:
        # The SDK reads every credential helper to send the engine its logins (build, pull).
        raise DockerError(f"{what}: a docker credential helper failed: {exc}", hint=HELPER_HINT) from exc
    except (docker.errors.DockerException, requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        if "Credentials store" in str(exc):
            raise DockerError(f"{what}: a docker credential helper failed: {exc}", hint=HELPER_HINT) from exc
        raise DockerError(
            f"{what}: the Docker engine stopped answering ({_reason(exc)})", hint=_engine_hint("the engine", "")
        ) from exc


def _api_message(exc: Any) -> str:
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc).strip()


def _image_or_none(api: Any, ref: str) -> dict[str, Any] | None:
    import docker

    try:
        found: dict[str, Any] = api.inspect_image(ref)
    except docker.errors.NotFound:
        return None
    return found
