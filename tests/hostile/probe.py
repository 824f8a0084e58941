"""Run one hostile-input case in this process and print what happened, how long it took, how much memory.

    python -m tests.hostile.probe deploy_yaml:billion-laughs

One process per case, so one case's memory cannot hide in another's and a runaway case
cannot take the test run down with it. What is measured is the case itself: the input is
made and written, and for HTTP cases the emulator started, before the clock starts.

Memory is the peak resident set size during the case minus the resident set size just
before it: ``VmHWM`` after writing 5 to ``/proc/self/clear_refs`` (which resets the peak,
Linux 4.0+), else ``ru_maxrss`` (the peak since the process started: never lower than the
truth). Resident memory is what the kernel's OOM killer and a CI runner's limit count, and it
includes allocations tracemalloc cannot see (libyaml, pydantic-core's Rust, the json C
decoder, graphql-core's lexer tokens); tracemalloc would also slow every case several times
over. As a backstop, RLIMIT_AS caps the address space at what is mapped now plus 1 GiB, so a
case that runs away fails with MemoryError in its own process instead of swapping CI's machine.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.hostile.corpus import ACCOUNT_SECRET, BY_ID, KEY, SECRET_YAML, Case


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


Act = Callable[[], dict[str, Any]]


def _deploy_yaml(case: Case, folder: Path) -> Act:
    from rpdeploy.config import load_config

    path = folder / "deploy.yaml"
    path.write_bytes(case.make())
    return lambda: _expect_error(lambda: load_config(path))


def _secret(case: Case, folder: Path) -> Act:
    from rpdeploy.config import load_config

    made = case.make()
    if made.startswith(b"@"):
        target = made[1:].decode()
    else:
        target = str(folder / "secret")
        Path(target).write_bytes(made)
    (folder / "deploy.yaml").write_text(SECRET_YAML.replace("SECRET_PATH", json.dumps(target)))
    config = load_config(folder / "deploy.yaml")
    return lambda: _expect_error(lambda: config.runpod.api_key.resolve(base_dir=folder, environ={}))


def _ledger(case: Case, folder: Path) -> Act:
    from rpdeploy.deploy.ledger import Ledger

    state = folder / ".rpdeploy"
    state.mkdir()
    (state / "state.json").write_bytes(case.make())
    return lambda: _expect_error(lambda: Ledger.load(state))


def _expect_error(action: Callable[[], object]) -> dict[str, Any]:
    from rpdeploy.errors import RpdeployError

    try:
        action()
    except RpdeployError as exc:
        text = str(exc)
        return {"exit_code": exc.exit_code, "message": text[:300], "message_chars": len(text)}
    return {"exit_code": 0}


def _http(case: Case, folder: Path) -> Act:
    from rpdeploy.emulator import Emulator
    from tests.emulator.emulator_support import Api

    options: dict[str, Any] = {}
    try:  # the emulator's request limits (1 s socket timeout); absent before issue 14, when the corpus still runs
        from rpdeploy.emulator.guard import Limits

        options["limits"] = Limits(socket_timeout=1.0)
    except ImportError:
        pass
    emu = Emulator(KEY, cold_start=0.05, execution_time=0.01, runsync_wait=1.0, **options)
    emu.start()
    api = Api(emu)
    endpoint_id = api.endpoint(env=[{"key": "HF_TOKEN", "value": ACCOUNT_SECRET}])["id"]
    api.close()
    request = case.make().replace(b"{KEY}", KEY.encode()).replace(b"{ENDPOINT}", endpoint_id.encode())

    def act() -> dict[str, Any]:
        answer: list[bytes] = []
        status = _send(emu.port, request, case.wait, answer)
        return {"status": status, "leaked": ACCOUNT_SECRET.encode() in b"".join(answer), "_emulator": emu}

    return act


def _alive(emu: Any) -> bool:
    request = f"GET /_emulator/state HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
    return _send(emu.port, request.encode(), 5.0) == 200


def _send(port: int, request: bytes, wait: float, answer: list[bytes] | None = None) -> int | str | None:
    """Send ``request`` and read the status line; None when the server closed without one,
    ``"no answer"`` when it neither answered nor closed within ``wait`` seconds. With
    ``answer``, the whole response (up to 1 MiB) is read into it."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as conn:
        # The server may refuse the rest of a large body and close: its answer is still there.
        with contextlib.suppress(OSError):
            conn.sendall(request)
        data = b""
        try:
            while b"\r\n" not in data or (answer is not None and len(data) < 1024 * 1024):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            if not data:
                return "no answer"
        except ConnectionResetError:
            pass
    if answer is not None:
        answer.append(data)
    line = data.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) >= 2 and line[0].startswith(b"HTTP/") and line[1].isdigit() else None


RUNNERS: dict[str, Callable[[Case, Path], Act]] = {
    "deploy_yaml": _deploy_yaml,
    "secret": _secret,
    "ledger": _ledger,
    "http": _http,
}


def main(case_id: str) -> None:
    case = BY_ID[case_id]
    # Imports, making the input and starting the emulator are not part of the case.
    import rpdeploy.config
    import rpdeploy.deploy.ledger  # noqa: F401

    with tempfile.TemporaryDirectory() as tmp:
        try:
            act = RUNNERS[case.kind](case, Path(tmp))
            gc.collect()
            mapped = _status_kib("VmSize") * 1024
            resource.setrlimit(resource.RLIMIT_AS, (mapped + 1024**3, resource.RLIM_INFINITY))
            reset = _reset_peak()
            before = _status_kib("VmRSS")
            started = time.monotonic()
            result = act()
            result["seconds"] = time.monotonic() - started
            peak = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            result["rss_delta_mb"] = max(0, peak - before) / 1024
            emu = result.pop("_emulator", None)
            if emu is not None:
                result["alive"] = _alive(emu)
        except BaseException as exc:  # the point of a probe: report what a case did, crash included
            result = {"crash": f"{type(exc).__name__}: {exc}"[:500], "traceback": traceback.format_exc()[-2000:]}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # the emulator's threads end with the process


if __name__ == "__main__":
    main(sys.argv[1])
