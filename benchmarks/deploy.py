"""`rpdeploy deploy`: a no-change re-run of a method-2 deploy, and a full method-1 deploy.

    python benchmarks/deploy.py [--runs 7] [--base rpdeploy-test/python:1] [--verbose]

Needs the test services (scripts/services.sh: the docker engine and the registry on
127.0.0.1:5000, credentials in /var/lib/rpdeploy-test/registry.env) and the test base image
(scripts/images.sh). RunPod is a local emulator in this process, served over HTTP, with its
cold start and job execution time set to 0 (the emulated waits are not rpdeploy's time).

(a) A method-2 project (rendered by ``rpdeploy init``, built on the stand-in base image) is
    deployed once; then ``deploy`` runs again with nothing changed, ``--runs`` times, in this
    process (``rpdeploy.deploy.stages.run_deploy``: the tool's own time, without interpreter start-up)
    and as ``python -m rpdeploy deploy --json`` subprocesses (what a CI job waits for). For
    every re-run it counts the mutations the emulator received, the image events (tag from a
    build, push) the Docker engine reported for the project's repository, and the stages the
    ledger did not skip. Targets: 0 mutations, 0 builds, 0 pushes, under 1 s of own time.
(b) A method-1 project (RunPod's prebuilt worker: no build) is deployed from nothing, fresh
    emulator and ledger each time, in process and as a subprocess. Target: under 3 s.

Prints a table per part and "targets met" or "TARGETS MISSED" (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rpdeploy.build.engine import connect
from rpdeploy.config import load_config
from rpdeploy.deploy.stages import DeployOptions, DeployResult, run_deploy
from rpdeploy.emulator import Emulator
from rpdeploy.methods import Method
from rpdeploy.output import ConsoleReporter, NullReporter, Reporter
from rpdeploy.worker.scaffold import InitOptions, init_project, render_project

ROOT = Path(__file__).resolve().parent.parent
REGISTRY_ENV = Path(os.environ.get("RPDEPLOY_TEST_STATE", "/var/lib/rpdeploy-test")) / "registry.env"
MUTATIONS = frozenset(
    {
        "SaveTemplate",
        "SaveEndpoint",
        "UpdateEndpointTemplate",
        "DeleteEndpoint",
        "DeleteTemplate",
        "SaveRegistryAuth",
        "UpdateRegistryAuth",
    }
)
KEY = "rpa_BENCH_emulator_key_0123456789"


def registry_settings() -> tuple[str, str, str]:
    values = dict(
        line.split("=", 1) for line in REGISTRY_ENV.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    return values["REGISTRY_HOST"], values["REGISTRY_USERNAME"], values["REGISTRY_PASSWORD"]


@contextmanager
def emulator() -> Iterator[Emulator]:
    """An emulator with no emulated waits, and the environment pointed at it."""
    with Emulator(KEY, cold_start=0.0, execution_time=0.0, runsync_wait=5.0) as emu:
        saved = {name: os.environ.get(name) for name in emu.env()}
        os.environ.update(emu.env())
        try:
            yield emu
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def mutations(emu: Emulator) -> int:
    return sum(1 for request in emu.requests.graphql() if request.operation in MUTATIONS)


def engine_events(api: Any, repository: str, since: float, until: float) -> list[str]:
    """Image events (tag, push) the engine reported for ``repository`` between the two times."""
    time.sleep(0.05)
    stream = api.events(since=f"{since:.9f}", until=f"{until:.9f}", filters={"type": "image"}, decode=True)
    return [str(event.get("Action")) for event in stream if repository in json.dumps(event.get("Actor", {}))]


def in_process(folder: Path, reporter: Reporter) -> tuple[int, float, DeployResult]:
    """One deploy in this process: (stages run, seconds, result)."""
    started = time.perf_counter()
    result = run_deploy(load_config(folder / "deploy.yaml"), DeployOptions(), reporter=reporter)
    return len(result.ran), time.perf_counter() - started, result


def as_subprocess(folder: Path) -> tuple[int, float, None]:
    """One `python -m rpdeploy deploy --json`: (stages run, seconds, None)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "rpdeploy", "deploy", "--json"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's rpdeploy, not an installed one
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"rpdeploy deploy exited {done.returncode}:\n{done.stderr}")
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return sum(1 for e in events if e.get("event") == "stage" and e.get("status") == "done"), seconds, None


def deploy_once(kind: str, folder: Path, reporter: Reporter) -> tuple[int, float, DeployResult | None]:
    return in_process(folder, reporter) if kind == "in process" else as_subprocess(folder)


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times):.3f}s  min {min(times):.3f}s  max {max(times):.3f}s"


# --- (a) -------------------------------------------------------------------------------------


def method2_project(folder: Path, host: str, repository: str, base: str) -> None:
    init_project(
        folder,
        InitOptions(
            method=Method.CUSTOM_HANDLER, model="Qwen/Qwen2.5-7B-Instruct", name="bench", registry=host,
            repository=repository,
        ),
    )  # fmt: skip
    path = folder / "deploy.yaml"
    data = yaml.safe_load(path.read_text())
    data["image"].update(
        {"base_image": base, "credentials": {"username": "BENCH_REG_USER", "password": "BENCH_REG_PASS"}}
    )
    data["smoke_test"] = {"max_tokens": 16, "timeout": 60}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    render_project(load_config(path))


def no_change_rerun(args: argparse.Namespace, reporter: Reporter) -> bool:
    host, username, password = registry_settings()
    os.environ["BENCH_REG_USER"], os.environ["BENCH_REG_PASS"] = username, password
    repository = f"rpdeploy-bench/deploy-{uuid.uuid4().hex[:8]}"
    folder = Path(tempfile.mkdtemp(prefix="rpdeploy-bench-"))
    api = connect()
    cwd = Path.cwd()
    try:
        method2_project(folder, host, repository, args.base)
        os.chdir(folder)  # config-relative paths (the worker folder, .rpdeploy) as the CLI sees them
        with emulator() as emu:
            ran, seconds, _ = in_process(folder, reporter)
            print(f"(a) method 2, first deploy: {seconds:.2f}s (build + push + create), stages run: {ran}")
            time.sleep(2.1)  # files written in the last 2 s are never taken from the build stage's stat cache
            rows: list[tuple[str, float, int, list[str], int]] = []
            for kind in ("in process", "subprocess"):
                for _ in range(args.runs):
                    emu.requests.clear()
                    since = time.time()
                    ran, seconds, _ = deploy_once(kind, folder, reporter)
                    actions = engine_events(api, repository, since, time.time())
                    rows.append((kind, seconds, mutations(emu), actions, ran))
        ok = True
        print(f"    no-change re-run, {args.runs} runs each:")
        for kind in ("in process", "subprocess"):
            mine = [row for row in rows if row[0] == kind]
            times = [row[1] for row in mine]
            muts = sum(row[2] for row in mine)
            builds = sum(row[3].count("tag") for row in mine)
            pushes = sum(row[3].count("push") for row in mine)
            ran = sum(row[4] for row in mine)
            print(
                f"    {kind:<11} {summary(times)}   mutations {muts}  builds {builds}  pushes {pushes}  "
                f"stages run {ran}"
            )
            ok = ok and muts == 0 and builds == 0 and pushes == 0 and ran == 0
        own = statistics.median(row[1] for row in rows if row[0] == "in process")
        print(f"    target: 0 mutations, 0 builds, 0 pushes; own time < 1 s (median in process {own:.3f}s)")
        return ok and own < 1.0
    finally:
        os.chdir(cwd)
        shutil.rmtree(folder, ignore_errors=True)
        for image in api.images(name=f"{host}/{repository}"):
            for tag in image.get("RepoTags") or []:
                api.remove_image(tag, force=True)
        api.close()


# --- (b) -------------------------------------------------------------------------------------


def method1_project(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "deploy.yaml", folder / "deploy.yaml")


def full_method1(args: argparse.Namespace, reporter: Reporter) -> bool:
    cwd = Path.cwd()
    times: dict[str, list[float]] = {"in process": [], "subprocess": []}
    stage_seconds: dict[str, list[float]] = {}
    try:
        for kind in times:
            for _ in range(args.runs):
                folder = Path(tempfile.mkdtemp(prefix="rpdeploy-bench-"))
                try:
                    method1_project(folder)
                    os.chdir(folder)
                    with emulator() as emu:
                        _, seconds, outcome = deploy_once(kind, folder, reporter)
                        assert len(emu.state.snapshot()["endpoints"]) == 1
                    times[kind].append(seconds)
                    if outcome is not None:
                        for stage in outcome.stages:
                            if stage.status == "done":
                                stage_seconds.setdefault(stage.name, []).append(stage.seconds)
                finally:
                    os.chdir(cwd)
                    shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.chdir(cwd)
    print(f"(b) method 1, full deploy from nothing (emulated cold start 0), {args.runs} runs each:")
    for kind, values in times.items():
        print(f"    {kind:<11} {summary(values)}")
    print("    stages (in process, median): " + ", ".join(
        f"{name} {statistics.median(values):.3f}s" for name, values in stage_seconds.items()
    ))  # fmt: skip
    own = statistics.median(times["in process"])
    print(f"    target: < 3 s (median in process {own:.3f}s, subprocess {statistics.median(times['subprocess']):.3f}s)")
    return own < 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="re-runs (a) and deploys (b) of each kind")
    parser.add_argument("--base", default="rpdeploy-test/python:1", help="base image (scripts/images.sh)")
    parser.add_argument("--verbose", action="store_true", help="show rpdeploy's progress")
    args = parser.parse_args()
    reporter: Reporter = ConsoleReporter(verbose=False) if args.verbose else NullReporter()
    os.environ.setdefault("CI", "1")  # no prompts, plain output in the subprocesses
    for name in ("RUNPOD_API_KEY", "RPDEPLOY_CONFIG"):
        os.environ.pop(name, None)
    baseline = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - started)
    print(f"python -c pass: median {statistics.median(baseline):.3f}s (interpreter start-up, for reference)")
    ok = no_change_rerun(args, reporter)
    ok = full_method1(args, reporter) and ok
    print("targets met" if ok else "TARGETS MISSED")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
