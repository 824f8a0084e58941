#!/usr/bin/env python3
"""Record docs/first-deploy.md: a newcomer's first deploy against the emulator, typed into a real
terminal (tmux, 100 x 50) and captured as text with ``tmux capture-pane``.

The session starts in an empty folder with a clean environment (no RunPod key, no CI, the
Hugging Face Hub treated as offline so the run is the same everywhere), answers `rpdeploy init`'s
questions as a person would (one of them wrong first), deploys against the emulator, looks at
the result, and deploys again. Run it from the repository with rpdeploy on PATH:

    python3 scripts/walkthrough.py                 # rewrites docs/first-deploy.md
    python3 scripts/walkthrough.py --out FILE      # writes elsewhere (tests/test_walkthrough.py)

Needs Debian's tmux.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 100, 50
PROMPT = "$ "

#: What is typed: a command, then (text that appears, answer) pairs for its questions.
STEPS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "rpdeploy init",
        [
            ("Method: 1 worker-vllm, 2 custom-handler, 3 fastapi", "4"),
            ("Method: 1 worker-vllm, 2 custom-handler, 3 fastapi", "1"),
            ("Hugging Face model id", ""),
            ("Endpoint name", ""),
            ("GPU type", ""),
            ("Backend to point at the endpoint", ""),
        ],
    ),
    ("rpdeploy validate", []),
    ("rpdeploy deploy --emulator", []),
    ("rpdeploy status", []),
    ("rpdeploy smoke-test --emulator", []),
    ("rpdeploy deploy --emulator", []),
    ("rpdeploy endpoint list --emulator", []),
]

INTRO = """# A first deploy, against the emulator

What a newcomer sees in a terminal, from an empty folder to a deployed and tested endpoint, without a
RunPod account or a GPU. Recorded by `scripts/walkthrough.py` (tmux, {width} x {height}, the text of the
pane as `tmux capture-pane` gives it); `tests/test_walkthrough.py` records it again and compares, ids,
ports, times and dates aside. The Hugging Face Hub is treated as offline (`HF_HUB_OFFLINE=1`) so the
run is the same on every machine.

The answers typed to `rpdeploy init`: `4` (not a method: explained and asked again), `1`, then Enter
for every default.

```text
"""


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True)
        return done.stdout

    def screen(self) -> str:
        """Everything the pane has shown (history included), one line per terminal row."""
        return self("capture-pane", "-p", "-S", "-", "-E", "-", "-t", "walk")


def wait_for(tmux: Tmux, text: str, *, times: int, timeout: float = 120.0) -> None:
    """Until ``text`` has shown up ``times`` times in the pane (history included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tmux.screen().count(text) >= times:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{text!r} did not appear within {timeout:g}s:\n{tmux.screen()}")


def wait_for_prompt(tmux: Tmux, *, timeout: float = 180.0) -> None:
    """Until the shell shows its prompt again with nothing after it (the command ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = tmux.screen().rstrip().split("\n")
        if lines[-1] == PROMPT.rstrip():
            return
        time.sleep(0.1)
    raise TimeoutError(f"the command did not end within {timeout:g}s:\n{tmux.screen()}")


def record(out: Path) -> str:
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is not installed (Debian: apt-get install tmux; scripts/test.sh installs it)")
    rpdeploy = shutil.which("rpdeploy")
    if rpdeploy is None:
        raise SystemExit("rpdeploy is not on PATH (pip install -e .)")
    socket = f"rpdeploy-walkthrough-{os.getpid()}"
    tmux = Tmux(socket)
    with tempfile.TemporaryDirectory(prefix="rpdeploy-walkthrough-", ignore_cleanup_errors=True) as tmp:
        home = Path(tmp) / "home"
        project = home / "qwen-demo"
        project.mkdir(parents=True)
        env = {
            "HOME": str(home),
            "PATH": f"{Path(rpdeploy).parent}:/usr/local/bin:/usr/bin:/bin",
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "PS1": PROMPT,
            "HISTFILE": "/dev/null",
            "HF_HUB_OFFLINE": "1",
            "RPDEPLOY_CEILING_DIRECTORIES": tmp,
        }
        shell = " ".join(f"{k}={v!r}" for k, v in env.items())
        tmux("-f", "/dev/null", "new-session", "-d", "-s", "walk", "-x", str(WIDTH), "-y", str(HEIGHT), "-c",
             str(project), f"env -i {shell} bash --noprofile --norc")  # fmt: skip
        try:
            tmux("set-option", "-t", "walk", "history-limit", "20000")
            wait_for_prompt(tmux, timeout=10)
            for command, answers in STEPS:
                asked = {question: tmux.screen().count(question) for question, _ in answers}
                tmux("send-keys", "-t", "walk", "-l", command)
                tmux("send-keys", "-t", "walk", "Enter")
                for question, answer in answers:
                    asked[question] += 1
                    wait_for(tmux, question, times=asked[question])
                    if answer:
                        tmux("send-keys", "-t", "walk", "-l", answer)
                    tmux("send-keys", "-t", "walk", "Enter")
                wait_for_prompt(tmux)
            text = tmux.screen().rstrip("\n")
        finally:
            tmux("kill-server")
    # The last line is the idle prompt; the folder names in it are the temporary ones.
    text = "\n".join(line.rstrip() for line in text.split("\n")).replace(tmp, "/tmp/demo")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(INTRO.format(width=WIDTH, height=HEIGHT) + text + "\n```\n", encoding="utf-8")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "first-deploy.md")
    args = parser.parse_args()
    record(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
