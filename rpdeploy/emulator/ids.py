"""Identifiers in the formats RunPod hands out, and its timestamp format.

Only the shapes are known (from examples in RunPod's docs and API answers), not the
generators: endpoint ids are 14 characters of ``[a-z0-9]``, template and network volume ids
10, registry credentials a 25-character cuid starting with ``c``, worker ids 14, job ids a
UUID4 with ``-u1`` appended (``sync-`` in front for ``/runsync``). Code under test may check
these shapes, so the emulator reproduces them rather than using counters.
"""

from __future__ import annotations

import secrets
import string
import uuid
from datetime import datetime, timezone

_LOWER_ALNUM = string.ascii_lowercase + string.digits


def _random(length: int, alphabet: str = _LOWER_ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def endpoint_id() -> str:
    return _random(14)


def template_id() -> str:
    return _random(10)


def network_volume_id() -> str:
    return _random(10)


def worker_id() -> str:
    return _random(14)


def registry_auth_id() -> str:
    # cuid layout: "c" + timestamp + counter + fingerprint + random, all base36, 25 chars.
    return "c" + _random(24)


def secret_id() -> str:
    # The docs' example is "abc123" (sdks/graphql/manage-pod-templates.mdx): the shape is unknown;
    # a cuid like the registry credentials'.
    return "c" + _random(24)


def commit_of(repository: str, ref: str) -> str:
    """A stand-in commit id for ``ref`` of a Hugging Face repo: 40 hex digits, the same every time."""
    import hashlib

    return hashlib.sha1(f"{repository.lower()}@{ref}".encode()).hexdigest()


def release_id() -> str:
    # 8 lower-case letters and digits, as the v2 examples show ("5r9x2m7q"); a guess otherwise.
    return _random(8)


def user_id() -> str:
    return "user_" + _random(27, string.ascii_letters + string.digits)


def job_id(*, sync: bool) -> str:
    base = f"{uuid.uuid4()}-u1"
    return f"sync-{base}" if sync else base


def api_key() -> str:
    """A throwaway key for an emulator started without one (RunPod keys start ``rpa_``)."""
    return "rpa_" + _random(40, string.ascii_uppercase + string.digits)


def timestamp(moment: datetime | None = None) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, like ``2024-07-12T19:14:40.144Z``."""
    moment = moment or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
