"""Time `rpdeploy --help` and `rpdeploy init --help` as whole processes (median of N runs).

    python benchmarks/startup.py [--runs 21]

Target: median under 0.3 s on the 2-core CI machine. Prints one line per command.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def measure(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    exe = shutil.which("rpdeploy")
    base = [exe] if exe else [sys.executable, "-m", "rpdeploy"]
    baseline = statistics.median(measure([sys.executable, "-c", "pass"], args.runs))
    print(f"python -c pass                 median {baseline:.3f}s (interpreter start-up, for reference)")
    for extra in (["--help"], ["init", "--help"]):
        times = measure(base + extra, args.runs)
        label = "rpdeploy " + " ".join(extra)
        print(
            f"{label:<30} median {statistics.median(times):.3f}s  min {min(times):.3f}s  "
            f"max {max(times):.3f}s  ({args.runs} runs)"
        )


if __name__ == "__main__":
    main()
