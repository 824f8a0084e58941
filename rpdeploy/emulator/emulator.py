"""The :class:`Emulator`: a local RunPod look-alike served over real HTTP.

    with Emulator(cold_start=0.2, runsync_wait=2) as emu:
        os.environ["RUNPOD_API_BASE_URL"] = emu.api_url        # GraphQL at {api_url}/graphql
        os.environ["RUNPOD_ENDPOINT_BASE_URL"] = emu.endpoint_url  # invoke API at {endpoint_url}/{id}/...
        ...                                                    # emu.state, emu.requests, emu.faults

One process, one port: the control plane over GraphQL (``/graphql``) and over REST v2
(``/v2/serverless``, ``/v2/templates``, ``/v2/registries``, ``/v2/catalog/gpus``), the
invoke API (any other ``/v2/{endpoint_id}/...``) and the admin API (``/_emulator/...``, see
``server.py``). Both control planes share one account: what one makes, the other sees. The key is ``api_key``, else
``RUNPOD_API_KEY`` from the environment, else a generated ``rpa_...`` throwaway
(``key_generated`` tells which).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

from rpdeploy.emulator import ids
from rpdeploy.emulator.control import TEMPLATE_DELETE_DELAY, ControlPlane
from rpdeploy.emulator.faults import Faults
from rpdeploy.emulator.guard import DEFAULT_LIMITS, Limits
from rpdeploy.emulator.invoke import InvokeApi
from rpdeploy.emulator.rest import RestApi
from rpdeploy.emulator.server import EmulatorHTTPServer, Exchange, RequestLog
from rpdeploy.emulator.state import Account, EmulatorState
from rpdeploy.emulator.workers import Fleet, FleetConfig

DEFAULT_EMAIL = "emulator@rpdeploy.invalid"


class Emulator:
    """A RunPod control plane + serverless invoke API on ``http://host:port``.

    Timing knobs (seconds): ``cold_start`` for a new worker, ``execution_time`` for a job,
    ``runsync_wait`` for ``/runsync`` and the OpenAI routes before they hand back a running
    job (RunPod: 90). ``concurrency`` is jobs per worker. ``template_delete_delay`` is how
    long a template stays "in use" after its endpoint was deleted (RunPod's docs: up to 2
    minutes; the ``template_delete_delay`` fault switch changes it while running).
    ``gpu_pools`` is what ``serverlessGpuPools`` answers, ``[(pool id, [GPU type ids])]`` in
    order (default: RunPod's published pools; :meth:`set_gpu_pools` changes it). Per-endpoint
    timing goes through ``faults`` (``faults.cold_start(3, endpoint_id=...)``).
    ``weights_scale`` adds the time a worker's weights take to its cold start, at that scale
    of RunPod's speed (0: none; see ``emulator/coldstart.py``): a cached model is quick, a
    download takes time in proportion to the model's size.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        runsync_wait: float = 90.0,
        cold_start: float = 0.5,
        weights_scale: float = 0.0,
        execution_time: float = 0.1,
        concurrency: int = 4,
        template_delete_delay: float = TEMPLATE_DELETE_DELAY,
        gpu_pools: Sequence[tuple[str, Sequence[str]]] | None = None,
        run_retention: float = 30 * 60.0,
        sync_retention: float = 60.0,
        webhook_retry_interval: float = 10.0,
        email: str = DEFAULT_EMAIL,
        request_log_limit: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        limits: Limits | None = None,
    ) -> None:
        env_key = os.environ.get("RUNPOD_API_KEY", "").strip()
        self.key_generated = not api_key and not env_key
        self.api_key: str = api_key or env_key or ids.api_key()
        self.host = host
        self._requested_port = port
        #: Request limits of the HTTP front (body sizes, GraphQL depth/aliases, socket timeout): guard.py.
        self.limits = limits or DEFAULT_LIMITS
        self.faults = Faults()
        self.requests = RequestLog(request_log_limit)
        self.state = EmulatorState(Account(id=ids.user_id(), email=email), clock)
        self.fleet = Fleet(
            self.state,
            self.faults,
            FleetConfig(
                cold_start=cold_start,
                weights_scale=weights_scale,
                execution_time=execution_time,
                concurrency=concurrency,
                run_retention=run_retention,
                sync_retention=sync_retention,
                webhook_retry_interval=webhook_retry_interval,
            ),
        )
        self.control = ControlPlane(
            self.state, self.fleet, self.faults, template_delete_delay=template_delete_delay, gpu_pools=gpu_pools
        )
        self.invoke = InvokeApi(self.state, self.fleet, self.faults, runsync_wait=runsync_wait)
        #: REST v2 over the same state (``/v2/serverless``, ``/v2/templates``...: emulator/rest.py).
        self.rest = RestApi(self.state, self.control, self.fleet, lambda: self.endpoint_url)
        #: Called with every REST v2 exchange (tests validate them against RunPod's OpenAPI document).
        self.rest_observer: Callable[[Exchange], None] | None = None
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and serve in a background thread; returns self. Idempotent."""
        if self._server is not None:
            return self
        self._server = EmulatorHTTPServer((self.host, self._requested_port), self, self.limits)
        self.fleet.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="rpdeploy-emulator-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake and release every waiting request, stop the fleet. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self.fleet.stop()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    def set_gpu_pools(self, pools: Sequence[tuple[str, Sequence[str]]]) -> None:
        """What ``serverlessGpuPools`` answers from now on (``[(pool id, [GPU type ids])]``, in order)."""
        self.control.set_gpu_pools(pools)

    def reset(self) -> None:
        """Forget every template, endpoint, credential, job, recorded request and fault."""
        self.faults.clear()
        self.requests.clear()
        self.state.clear()

    # --- addresses ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return int(self._server.server_address[1])

    @property
    def api_url(self) -> str:
        """What ``RUNPOD_API_BASE_URL`` takes (GraphQL is at ``{api_url}/graphql``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.api_url}/graphql"

    @property
    def endpoint_url(self) -> str:
        """What ``RUNPOD_ENDPOINT_BASE_URL`` takes (``{endpoint_url}/{endpoint_id}/run``...)."""
        return f"{self.api_url}/v2"

    @property
    def admin_url(self) -> str:
        return f"{self.api_url}/_emulator"

    def invoke_url(self, endpoint_id: str) -> str:
        return f"{self.endpoint_url}/{endpoint_id}"

    def env(self) -> dict[str, str]:
        """Environment variables that point RunPod clients here."""
        return {
            "RUNPOD_API_BASE_URL": self.api_url,
            "RUNPOD_ENDPOINT_BASE_URL": self.endpoint_url,
            "RUNPOD_API_KEY": self.api_key,
        }
