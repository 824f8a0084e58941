"""Fixtures for the emulator's tests: a running emulator with short timings, and clients.

Timings are small so a whole job lifecycle takes a fraction of a second; tests that need
something slower set it per test (fault switches or their own ``Emulator``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from emulator_support import API_KEY, OMIT, Api

from rpdeploy.emulator import Emulator


@pytest.fixture
def omit() -> Any:
    return OMIT


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(API_KEY, cold_start=0.1, execution_time=0.05, runsync_wait=2.0) as emu:
        yield emu


@pytest.fixture
def api(emulator: Emulator) -> Iterator[Api]:
    client = Api(emulator)
    yield client
    client.close()


@pytest.fixture
def runpod_sdk(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The real runpod SDK (1.12), pointed at the emulator.

    Its GraphQL helper reads ``RUNPOD_API_BASE_URL`` on every call; its serverless client
    copied ``RUNPOD_ENDPOINT_BASE_URL`` into ``runpod.endpoint_url_base`` at import, so that
    attribute is set directly. It does not read ``RUNPOD_API_KEY``: ``runpod.api_key`` is.
    """
    import runpod

    monkeypatch.setenv("RUNPOD_API_BASE_URL", emulator.api_url)
    monkeypatch.setattr(runpod, "api_key", emulator.api_key)
    monkeypatch.setattr(runpod, "endpoint_url_base", emulator.endpoint_url)
    return runpod
