"""Time rpdeploy's start-up as whole processes (median of N runs) and count what it imports.

    python benchmarks/startup.py [--runs 21]

Prints one line per command: `rpdeploy --help`, `rpdeploy init --help`, `rpdeploy validate` and
`rpdeploy check --offline` on the repository's deploy.yaml (run from a temporary folder, so nothing is
written next to it). Then, from one `python -X importtime` run of each, how many modules were imported
in all, how many of them are rpdeploy's, and whether rich, docker, pydantic or jinja2 were among them.

Target: `rpdeploy --help` median under 0.3 s on the 2-core CI machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy.yaml"
#: Libraries worth noticing when a command imports them (slow to import, or kept out of the core).
HEAVY = ("rich", "docker", "pydantic", "jinja2", "httpx", "yaml")


def measure(argv: list[str], runs: int, cwd: str) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
        times.append(time.perf_counter() - start)
    return times


def imported(argv: list[str], cwd: str) -> list[str]:
    """The modules one run imports, in order, from ``-X importtime``'s report on stderr."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)
    names = []
    for line in done.stderr.splitlines():
        # "import time:       self [us] |  cumulative | imported package"
        if line.startswith("import time:") and "|" in line and "imported package" not in line:
            names.append(line.rsplit("|", 1)[1].strip())
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    # `python -m rpdeploy` rather than the console script: the same interpreter, whatever PATH holds.
    base = [sys.executable, "-m", "rpdeploy"]
    commands = {
        "rpdeploy --help": ["--help"],
        "rpdeploy init --help": ["init", "--help"],
        "rpdeploy validate": ["validate", "--config", str(EXAMPLE)],
        "rpdeploy check --offline": ["check", "--config", str(EXAMPLE), "--offline"],
    }
    with tempfile.TemporaryDirectory() as cwd:
        baseline = statistics.median(measure([sys.executable, "-c", "pass"], args.runs, cwd))
        print(f"{'python -c pass':<26} median {baseline:.3f}s (interpreter start-up, for reference)")
        for label, extra in commands.items():
            times = measure(base + extra, args.runs, cwd)
            print(
                f"{label:<26} median {statistics.median(times):.3f}s  min {min(times):.3f}s  "
                f"max {max(times):.3f}s  ({args.runs} runs)"
            )
        print()
        for label, extra in commands.items():
            names = imported(base + extra, cwd)
            ours = [n for n in names if n == "rpdeploy" or n.startswith("rpdeploy.")]
            heavy = [h for h in HEAVY if h in names]
            print(
                f"{label:<26} imports {len(names):4d} modules, {len(ours):3d} of rpdeploy; "
                f"heavy: {', '.join(heavy) or 'none'}"
            )


if __name__ == "__main__":
    main()
