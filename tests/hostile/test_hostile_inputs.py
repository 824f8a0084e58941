"""Every case of the hostile-input corpus: the right refusal, in under 2 s and 200 MB, the server still up.

deploy.yaml texts must give exit 3 (a config error) with a short message, a hostile API key file exit 8;
ledgers exit 3 too; raw HTTP requests to the emulator (GraphQL, invoke and admin routes) an
answer in the case's allowed statuses (4xx, or a closed connection for a stalled request),
after which the emulator still answers. Each case runs in a process of its own
(``probe.py``, which explains how time and memory are measured).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.hostile.corpus import ALL, Case

SECONDS = 2.0
MEGABYTES = 200.0
#: An error message longer than this echoes the input instead of describing it.
MESSAGE_CHARS = 2000


def probe(case: Case) -> dict[str, object]:
    process = subprocess.run(
        [sys.executable, "-m", "tests.hostile.probe", case.id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 0 and process.stdout.strip(), f"the probe failed:\n{process.stdout}\n{process.stderr}"
    result: dict[str, object] = json.loads(process.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("case", ALL, ids=[case.id for case in ALL])
def test_hostile_input_is_refused_quickly_and_cheaply(case: Case) -> None:
    result = probe(case)
    assert "crash" not in result, f"{case.id} crashed: {result.get('crash')}\n{result.get('traceback')}"
    if case.kind == "http":
        assert result["status"] in case.expect, f"{case.id}: HTTP {result['status']}, expected one of {case.expect}"
        assert result["alive"] is True, f"{case.id}: the emulator stopped answering"
        assert result["leaked"] is False, f"{case.id}: the answer holds account data"
    else:
        assert result["exit_code"] in case.expect, f"{case.id}: exit {result['exit_code']}: {result.get('message')}"
        assert int(str(result["message_chars"])) < MESSAGE_CHARS, f"{case.id}: message echoes the input"
    seconds = float(str(result["seconds"]))
    megabytes = float(str(result["rss_delta_mb"]))
    assert seconds < SECONDS, f"{case.id} took {seconds:.2f} s"
    assert megabytes < MEGABYTES, f"{case.id} used {megabytes:.0f} MB"


def test_the_probe_sees_time_and_memory() -> None:
    """The measurement is not blind: a case that allocates and sleeps is reported as doing so."""
    code = (
        "import json, time, tests.hostile.probe as p\n"
        "from tests.hostile.corpus import Case\n"
        "def act():\n"
        "    block = bytearray(300 * 1024 * 1024)\n"
        "    block[::4096] = b'x' * len(block[::4096])\n"
        "    time.sleep(2.1)\n"
        "    return {'exit_code': 3, 'message_chars': 0}\n"
        "p.RUNNERS['deploy_yaml'] = lambda case, folder: act\n"
        "p.main('deploy_yaml:billion-laughs')\n"
    )
    process = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    result = json.loads(process.stdout.strip().splitlines()[-1])
    assert float(result["seconds"]) >= SECONDS and float(result["rss_delta_mb"]) >= 290, result
