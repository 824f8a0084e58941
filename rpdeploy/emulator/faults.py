"""Fault switches: make the emulator fail the way RunPod sometimes does.

Each switch is a :class:`Fault` with a name, optional scope (one endpoint, or all when
``endpoint_id`` is None) and a ``remaining`` count: the next N matching requests or jobs are
affected, then the switch turns itself off (``None`` = until cleared). Tests set them from
Python (``emulator.faults.graphql_errors(count=2)``) or over HTTP
(``POST /_emulator/faults`` with ``{"fault": "graphql_errors", "count": 2}``); both go through
:meth:`Faults.add`, so the names and parameters below are the whole contract:

=====================  =====================================  ==========================================
name                   parameters                             effect
=====================  =====================================  ==========================================
graphql_errors         count=1, message, operation            HTTP 200 ``{"errors": [...], "data": null}``
graphql_http_status    count=1, status (500/502/503/504)      that status, JSON ``errors`` body
graphql_rate_limit     count=1, retry_after=1                 429 with ``Retry-After``
graphql_delay          seconds, count=None                    answer only after ``seconds``
read_only              count=None                             mutations answer 200 + "Unauthorized"
job_fail               count=1, message, endpoint_id          job FAILED with ``error`` = message
job_error_output       count=1, message, endpoint_id          job COMPLETED, output ``{"error": ...}``
job_hang               count=1, endpoint_id                   job never finishes (cancel or TIMED_OUT)
no_capacity            endpoint_id                            no worker ever starts (jobs stay IN_QUEUE)
cold_start             seconds, count=None, endpoint_id       worker start-up time
execution_time         seconds, count=None, endpoint_id       time a job runs
concurrency            value, endpoint_id                     jobs one worker runs at once
invoke_rate_limit      count=1, retry_after=1, endpoint_id    429 on ``/v2/{endpoint}/...``
template_delete_delay  seconds                                how long a template stays "in use" after
                                                              its endpoint let it go (default 120 s)
graphql_retired        count=None                             every /graphql request answers 410 Gone
rest_errors            count=1, status=500, message,          a REST v2 request answers that status as an
                       operation                              RFC 9457 problem (``operation``: an
                                                              operationId, e.g. ``updateEndpoint``)
=====================  =====================================  ==========================================

``operation`` matches a GraphQL operation's name or any of its top-level fields
(``saveEndpoint``), so it works for runpod-python's anonymous ``mutation { ... }`` too.
Settings-like switches (delay, read-only, capacity, timings) default to lasting until
cleared; the others to the next one request or job. A ``cold_start`` count is spent per
worker started, an ``execution_time`` count per job started, a ``read_only`` count per
mutation request. Job faults are decided when the job is queued (and again on ``/retry``).
``GET /_emulator/faults`` lists the active switches, ``DELETE /_emulator/faults`` clears them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

GENERIC_ERROR = "Something went wrong. Please try again later or contact support."
WORKER_FAILURE = "emulated worker failure"

GRAPHQL_ERRORS = "graphql_errors"
GRAPHQL_HTTP_STATUS = "graphql_http_status"
GRAPHQL_RATE_LIMIT = "graphql_rate_limit"
GRAPHQL_DELAY = "graphql_delay"
READ_ONLY = "read_only"
JOB_FAIL = "job_fail"
JOB_ERROR_OUTPUT = "job_error_output"
JOB_HANG = "job_hang"
NO_CAPACITY = "no_capacity"
COLD_START = "cold_start"
EXECUTION_TIME = "execution_time"
INVOKE_RATE_LIMIT = "invoke_rate_limit"
CONCURRENCY = "concurrency"
TEMPLATE_DELETE_DELAY = "template_delete_delay"
GRAPHQL_RETIRED = "graphql_retired"
REST_ERRORS = "rest_errors"

# name -> (parameters it takes, default count)
_SPECS: dict[str, tuple[frozenset[str], int | None]] = {
    GRAPHQL_ERRORS: (frozenset({"count", "message", "operation"}), 1),
    GRAPHQL_HTTP_STATUS: (frozenset({"count", "status"}), 1),
    GRAPHQL_RATE_LIMIT: (frozenset({"count", "retry_after"}), 1),
    GRAPHQL_DELAY: (frozenset({"count", "seconds"}), None),
    READ_ONLY: (frozenset({"count"}), None),
    JOB_FAIL: (frozenset({"count", "message", "endpoint_id"}), 1),
    JOB_ERROR_OUTPUT: (frozenset({"count", "message", "endpoint_id"}), 1),
    JOB_HANG: (frozenset({"count", "endpoint_id"}), 1),
    NO_CAPACITY: (frozenset({"endpoint_id"}), None),
    COLD_START: (frozenset({"count", "seconds", "endpoint_id"}), None),
    EXECUTION_TIME: (frozenset({"count", "seconds", "endpoint_id"}), None),
    INVOKE_RATE_LIMIT: (frozenset({"count", "retry_after", "endpoint_id"}), 1),
    CONCURRENCY: (frozenset({"value", "endpoint_id"}), None),
    TEMPLATE_DELETE_DELAY: (frozenset({"seconds"}), None),
    GRAPHQL_RETIRED: (frozenset({"count"}), None),
    REST_ERRORS: (frozenset({"count", "status", "message", "operation"}), 1),
}
FAULT_NAMES: tuple[str, ...] = tuple(_SPECS)
_HTTP_STATUSES = frozenset({500, 502, 503, 504})
_REST_STATUSES = frozenset({400, 403, 404, 422, 500, 502, 503, 504})


class FaultError(ValueError):
    """A fault switch was set with an unknown name or a bad parameter."""


@dataclass
class Fault:
    name: str
    remaining: int | None = None
    endpoint_id: str | None = None
    operation: str | None = None
    message: str | None = None
    status: int | None = None
    seconds: float | None = None
    retry_after: float | None = None
    value: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The switch in the JSON shape ``POST /_emulator/faults`` takes, plus ``remaining``."""
        data = {key: value for key, value in asdict(self).items() if value is not None or key == "remaining"}
        return {"fault": data.pop("name"), **data}


class Faults:
    """The active fault switches. Thread-safe: request threads consume them concurrently."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: list[Fault] = []

    # --- setting --------------------------------------------------------------------------

    def add(self, name: str, **params: Any) -> Fault:
        """Turn on switch ``name`` (see the module docstring for names and parameters)."""
        if name not in _SPECS:
            raise FaultError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
        allowed, default_count = _SPECS[name]
        unknown = set(params) - allowed
        if unknown:
            raise FaultError(f"fault {name!r} takes {sorted(allowed)}, not {sorted(unknown)}")
        count = params.pop("count", default_count)
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise FaultError(f"count must be a positive integer or null, got {count!r}")
        fault = Fault(name=name, remaining=count, **_checked(name, params))
        with self._lock:
            self._active.append(fault)
        return fault

    def apply(self, document: Any) -> list[Fault]:
        """Set switches from JSON: one ``{"fault": name, ...params}`` object or a list of them."""
        items: Iterable[Any] = document if isinstance(document, list) else [document]
        parsed: list[tuple[str, dict[str, Any]]] = []
        for item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("fault"), str):
                raise FaultError('each fault must be an object with a string "fault" member')
            params = {key: value for key, value in item.items() if key != "fault"}
            parsed.append((item["fault"], params))
        # Validate everything before turning anything on, so a bad list changes nothing.
        for name, params in parsed:
            Faults().add(name, **params)
        return [self.add(name, **params) for name, params in parsed]

    def clear(self, name: str | None = None, *, endpoint_id: str | None = None) -> None:
        """Turn switches off: all of them, or those with ``name`` and/or ``endpoint_id``."""
        with self._lock:
            self._active = [
                fault
                for fault in self._active
                if not (
                    (name is None or fault.name == name) and (endpoint_id is None or fault.endpoint_id == endpoint_id)
                )
            ]

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._active)

    def to_list(self) -> list[dict[str, Any]]:
        return [fault.to_dict() for fault in self.active()]

    # --- typed shortcuts for tests --------------------------------------------------------

    def graphql_errors(
        self, count: int | None = 1, message: str = GENERIC_ERROR, operation: str | None = None
    ) -> Fault:
        return self.add(GRAPHQL_ERRORS, count=count, message=message, operation=operation)

    def graphql_http_status(self, status: int = 503, count: int | None = 1) -> Fault:
        return self.add(GRAPHQL_HTTP_STATUS, status=status, count=count)

    def graphql_rate_limit(self, count: int | None = 1, retry_after: float = 1) -> Fault:
        return self.add(GRAPHQL_RATE_LIMIT, count=count, retry_after=retry_after)

    def graphql_delay(self, seconds: float, count: int | None = None) -> Fault:
        return self.add(GRAPHQL_DELAY, seconds=seconds, count=count)

    def read_only(self, count: int | None = None) -> Fault:
        return self.add(READ_ONLY, count=count)

    def job_fail(self, message: str = WORKER_FAILURE, endpoint_id: str | None = None, count: int | None = 1) -> Fault:
        return self.add(JOB_FAIL, message=message, endpoint_id=endpoint_id, count=count)

    def job_error_output(
        self, message: str = WORKER_FAILURE, endpoint_id: str | None = None, count: int | None = 1
    ) -> Fault:
        return self.add(JOB_ERROR_OUTPUT, message=message, endpoint_id=endpoint_id, count=count)

    def job_hang(self, endpoint_id: str | None = None, count: int | None = 1) -> Fault:
        return self.add(JOB_HANG, endpoint_id=endpoint_id, count=count)

    def no_capacity(self, endpoint_id: str | None = None) -> Fault:
        return self.add(NO_CAPACITY, endpoint_id=endpoint_id)

    def cold_start(self, seconds: float, endpoint_id: str | None = None, count: int | None = None) -> Fault:
        return self.add(COLD_START, seconds=seconds, endpoint_id=endpoint_id, count=count)

    def execution_time(self, seconds: float, endpoint_id: str | None = None, count: int | None = None) -> Fault:
        return self.add(EXECUTION_TIME, seconds=seconds, endpoint_id=endpoint_id, count=count)

    def invoke_rate_limit(self, count: int | None = 1, retry_after: float = 1, endpoint_id: str | None = None) -> Fault:
        return self.add(INVOKE_RATE_LIMIT, count=count, retry_after=retry_after, endpoint_id=endpoint_id)

    def concurrency(self, value: int, endpoint_id: str | None = None) -> Fault:
        return self.add(CONCURRENCY, value=value, endpoint_id=endpoint_id)

    def template_delete_delay(self, seconds: float) -> Fault:
        """Shorten (or lengthen) the time a template stays "in use" after its endpoint let it go."""
        return self.add(TEMPLATE_DELETE_DELAY, seconds=seconds)

    def graphql_retired(self, count: int | None = None) -> Fault:
        """GraphQL answers 410 Gone, as RunPod's announcement says the retired APIs will."""
        return self.add(GRAPHQL_RETIRED, count=count)

    def rest_errors(
        self, count: int | None = 1, status: int = 500, message: str = GENERIC_ERROR, operation: str | None = None
    ) -> Fault:
        return self.add(REST_ERRORS, count=count, status=status, message=message, operation=operation)

    # --- consuming ------------------------------------------------------------------------

    def take(self, name: str, *, endpoint_id: str | None = None, operations: Iterable[str] = ()) -> Fault | None:
        """The switch ``name`` that applies here, counting one use of it; None if none is on.

        A switch scoped to this endpoint wins over a global one, and for GraphQL errors a
        switch for one of ``operations`` wins over one without an operation.
        """
        names = set(operations)
        with self._lock:
            candidates = [
                fault
                for fault in self._active
                if fault.name == name
                and fault.endpoint_id in (None, endpoint_id)
                and (fault.operation is None or fault.operation in names)
            ]
            if not candidates:
                return None
            candidates.sort(key=lambda f: (f.endpoint_id is None, f.operation is None))
            fault = candidates[0]
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._active.remove(fault)
            return fault

    def peek(self, name: str, *, endpoint_id: str | None = None) -> Fault | None:
        """Like :meth:`take` but without counting a use (for settings read many times)."""
        with self._lock:
            candidates = [f for f in self._active if f.name == name and f.endpoint_id in (None, endpoint_id)]
            candidates.sort(key=lambda f: f.endpoint_id is None)
            return candidates[0] if candidates else None


def _checked(name: str, params: dict[str, Any]) -> dict[str, Any]:
    checked = dict(params)
    for key in ("seconds", "retry_after"):
        if key in checked and checked[key] is not None:
            value = checked[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise FaultError(f"{key} must be a number >= 0, got {value!r}")
            checked[key] = float(value)
    for key in ("message", "operation", "endpoint_id"):
        if key in checked and checked[key] is not None and not isinstance(checked[key], str):
            raise FaultError(f"{key} must be a string, got {checked[key]!r}")
    if name == CONCURRENCY:
        value = checked.get("value")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise FaultError(f"value must be a positive integer, got {value!r}")
    if name == GRAPHQL_HTTP_STATUS:
        status = checked.get("status", 503)
        if status not in _HTTP_STATUSES:
            raise FaultError(f"status must be one of {sorted(_HTTP_STATUSES)}, got {status!r}")
        checked["status"] = status
    if name == REST_ERRORS:
        status = checked.get("status", 500)
        if status not in _REST_STATUSES:
            raise FaultError(f"status must be one of {sorted(_REST_STATUSES)}, got {status!r}")
        checked["status"] = status
        checked["message"] = checked.get("message") or GENERIC_ERROR
    needs_seconds = (GRAPHQL_DELAY, COLD_START, EXECUTION_TIME, TEMPLATE_DELETE_DELAY)
    if name in needs_seconds and checked.get("seconds") is None:
        raise FaultError(f"fault {name!r} needs 'seconds'")
    if name in (GRAPHQL_RATE_LIMIT, INVOKE_RATE_LIMIT) and checked.get("retry_after") is None:
        checked["retry_after"] = 1.0
    if name == GRAPHQL_ERRORS and not checked.get("message"):
        checked["message"] = GENERIC_ERROR
    if name in (JOB_FAIL, JOB_ERROR_OUTPUT) and not checked.get("message"):
        checked["message"] = WORKER_FAILURE
    return checked
