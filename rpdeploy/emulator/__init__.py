"""A local RunPod look-alike: GraphQL control plane + serverless invoke API over HTTP.

RunPod itself is not reachable from tests (and costs money), so the rest of rpdeploy is
tested against this emulator. It speaks real HTTP on 127.0.0.1, parses real GraphQL against
an SDL written from RunPod's public clients, enforces the validation rules RunPod documents,
and simulates workers (cold start, concurrency, idle timeout) running a deterministic
stand-in model in the shape of each deployment method's worker. See ``emulator.py`` for
the entry point, ``faults.py`` for the failure switches and ``server.py`` for the admin API.

Owns: everything the look-alike does. May import: the ground floor, ``rpdeploy.runpod.schema``
(RunPod's GraphQL schema, shared with the client) and ``rpdeploy.preflight`` with
``rpdeploy.preflight.models_table`` (the cold-start estimate). Only the commands that start it
(``rpdeploy emulator``, ``deploy --emulator``) and the tests import it.
"""

from __future__ import annotations

from rpdeploy.emulator.emulator import Emulator
from rpdeploy.emulator.faults import FAULT_NAMES, Fault, FaultError, Faults
from rpdeploy.emulator.server import RecordedRequest, RequestLog
from rpdeploy.emulator.state import EmulatorState, JobStatus

__all__ = [
    "FAULT_NAMES",
    "Emulator",
    "EmulatorState",
    "Fault",
    "FaultError",
    "Faults",
    "JobStatus",
    "RecordedRequest",
    "RequestLog",
]
