"""How fast and how cheaply each hostile input is refused: the corpus of tests/hostile, case by case.

    python benchmarks/hostile_inputs.py            # every case
    python benchmarks/hostile_inputs.py http:      # the cases whose id starts with this

Each case runs in a process of its own (tests/hostile/probe.py explains what is measured:
the case alone, wall time, and peak resident memory above what the process held before it).
Prints one line per case and the slowest and largest. The test suite asserts the bounds
(2 s, 200 MB); this prints the numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hostile.corpus import ALL  # noqa: E402


def main(prefix: str = "") -> None:
    rows = []
    for case in ALL:
        if not case.id.startswith(prefix):
            continue
        command = [sys.executable, "-m", "tests.hostile.probe", case.id]
        process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        result = json.loads(process.stdout.strip().splitlines()[-1])
        outcome = result.get("crash") or result.get("status", result.get("exit_code"))
        rows.append((case.id, float(result.get("seconds", 0)), float(result.get("rss_delta_mb", 0)), str(outcome)))
        print(f"{case.id:<58} {rows[-1][1] * 1000:9.1f} ms {rows[-1][2]:8.1f} MB  {outcome}", flush=True)
    if rows:
        slowest = max(rows, key=lambda row: row[1])
        largest = max(rows, key=lambda row: row[2])
        print(
            f"\n{len(rows)} cases; slowest {slowest[0]} {slowest[1] * 1000:.1f} ms; "
            f"largest {largest[0]} {largest[2]:.1f} MB"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
