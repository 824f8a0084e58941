"""First build + push of a baked worker vs. the rebuild + push after editing only handler.py.

    python benchmarks/build_push.py [--model-mb 200] [--base rpdeploy-test/python:1] [--verbose] [--keep]

Needs the test services (scripts/services.sh: the docker engine and the registry on
127.0.0.1:5000, credentials in /var/lib/rpdeploy-test/registry.env) and the test base image
(scripts/images.sh). It renders a method-2 project with ``model.bake: true``, builds it with
``--no-cache`` and pushes it (the first build), appends a comment to handler.py, then builds
and pushes again, both through ``rpdeploy.build.pipeline.build_and_push``: the same code as
``rpdeploy build --push``.

The stand-in ``snapshot_download`` writes ``RPDEPLOY_STANDIN_MODEL_MB`` MiB of model. The
rendered Dockerfile passes no extra variables to its download stage, so the benchmark bakes
the variable into a derived base image (``FROM base`` + ``ENV``): no template change.

Figures: build seconds, push seconds, bytes the push stream reported as sent (uncompressed
layer sizes), layers sent / already present, and from the registry the compressed size of
the blobs the second manifest added. Targets: the second push re-sends < 1 % of the first
push's bytes; the rebuild takes a small fraction of the first build.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rpdeploy.build.engine import connect
from rpdeploy.build.pipeline import BuildPushResult, build_and_push
from rpdeploy.config import load_config
from rpdeploy.methods import Method
from rpdeploy.output import ConsoleReporter, NullReporter, Reporter, format_bytes
from rpdeploy.worker.scaffold import InitOptions, init_project, render_project

REGISTRY_ENV = Path(os.environ.get("RPDEPLOY_TEST_STATE", "/var/lib/rpdeploy-test")) / "registry.env"
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


def registry_settings() -> tuple[str, str, str]:
    values = dict(
        line.split("=", 1) for line in REGISTRY_ENV.read_text().splitlines() if "=" in line and not line.startswith("#")
    )
    return values["REGISTRY_HOST"], values["REGISTRY_USERNAME"], values["REGISTRY_PASSWORD"]


def model_base(api: Any, base: str, model_mb: int) -> str:
    """``base`` plus ENV RPDEPLOY_STANDIN_MODEL_MB, tagged by the base's id (built once)."""
    base_id = str(api.inspect_image(base)["Id"]).split(":")[1][:12]
    ref = f"rpdeploy-bench/model-base:{model_mb}mb-{base_id}"
    dockerfile = f"FROM {base}\nENV RPDEPLOY_STANDIN_MODEL_MB={model_mb}\n".encode()
    for event in api.build(fileobj=io.BytesIO(dockerfile), tag=ref, rm=True, decode=True):
        if "error" in event:
            raise SystemExit(f"building {ref} failed: {event['error']}")
    return ref


def manifest_layers(host: str, auth: tuple[str, str], repository: str, digest: str) -> list[dict[str, Any]]:
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, f"http://{host}/", *auth)
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords))
    request = urllib.request.Request(
        f"http://{host}/v2/{repository}/manifests/{digest}", headers={"Accept": MANIFEST_TYPES}
    )
    with opener.open(request, timeout=30) as response:
        layers: list[dict[str, Any]] = json.loads(response.read())["layers"]
    return layers


def run(config_path: Path, *, no_cache: bool, reporter: Reporter) -> tuple[BuildPushResult, float]:
    started = time.monotonic()
    result = build_and_push(load_config(config_path), push=True, no_cache=no_cache, reporter=reporter)
    return result, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-mb", type=int, default=200, help="size of the baked stand-in model, MiB")
    parser.add_argument("--base", default="rpdeploy-test/python:1", help="base image (scripts/images.sh)")
    parser.add_argument("--verbose", action="store_true", help="show the build logs and push progress")
    parser.add_argument("--keep", action="store_true", help="keep the project folder and local images")
    args = parser.parse_args()

    host, username, password = registry_settings()
    os.environ["BENCH_REG_USER"], os.environ["BENCH_REG_PASS"] = username, password
    reporter: Reporter = ConsoleReporter(verbose=False) if args.verbose else NullReporter()
    api = connect()
    base = model_base(api, args.base, args.model_mb)
    repository = f"rpdeploy-bench/worker-{uuid.uuid4().hex[:8]}"
    folder = Path(tempfile.mkdtemp(prefix="rpdeploy-bench-"))
    try:
        init_project(
            folder,
            InitOptions(
                method=Method.CUSTOM_HANDLER,
                model="Qwen/Qwen2.5-7B-Instruct",
                name="bench",
                registry=host,
                repository=repository,
            ),
        )
        path = folder / "deploy.yaml"
        data = yaml.safe_load(path.read_text())
        data["model"]["bake"] = True
        data["image"].update(
            {"base_image": base, "credentials": {"username": "BENCH_REG_USER", "password": "BENCH_REG_PASS"}}
        )
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        render_project(load_config(path))

        first, first_wall = run(path, no_cache=True, reporter=reporter)
        handler = folder / "worker" / "handler.py"
        handler.write_text(handler.read_text() + "\n# benchmark: a one-line change\n")
        second, second_wall = run(path, no_cache=False, reporter=reporter)
        assert first.push is not None and second.push is not None

        layers1 = manifest_layers(host, (username, password), repository, first.push.digest)
        layers2 = manifest_layers(host, (username, password), repository, second.push.digest)
        known = {layer["digest"] for layer in layers1}
        added2 = sum(int(layer["size"]) for layer in layers2 if layer["digest"] not in known)
        model_layer = max(int(layer["size"]) for layer in layers1)

        rows = [
            ("build seconds", f"{first.build.seconds:.1f}", f"{second.build.seconds:.1f}"),
            (
                "steps cached / run",
                f"{first.build.cached_steps}/{first.build.steps}",
                f"{second.build.cached_steps}/{second.build.steps}",
            ),
            ("push seconds", f"{first.push.seconds:.1f}", f"{second.push.seconds:.1f}"),
            ("build + push wall seconds", f"{first_wall:.1f}", f"{second_wall:.1f}"),
            ("pushed bytes (stream)", str(first.push.bytes_pushed), str(second.push.bytes_pushed)),
            ("layers sent / present", f"{first.push.layers_pushed}/{first.push.layers_present}",
             f"{second.push.layers_pushed}/{second.push.layers_present}"),
            ("registry: image blobs, compressed", str(sum(int(x["size"]) for x in layers1)),
             str(sum(int(x["size"]) for x in layers2))),
            ("registry: blobs new in this manifest", "-", str(added2)),
        ]  # fmt: skip
        print(f"rpdeploy build --push: baked {args.model_mb} MiB stand-in model, base {args.base}, registry {host}")
        print(f"image {first.build.image.rsplit(':', 1)[0]}, size {format_bytes(first.build.size)}")
        print(f"largest layer in the registry (the model): {format_bytes(model_layer)}")
        print(f"{'':36} {'first (no cache)':>18} {'after handler.py edit':>22}")
        for label, one, two in rows:
            print(f"{label:36} {one:>18} {two:>22}")
        byte_ratio = second.push.bytes_pushed / first.push.bytes_pushed if first.push.bytes_pushed else float("nan")
        time_ratio = second.build.seconds / first.build.seconds if first.build.seconds else float("nan")
        print(f"re-sent bytes: {byte_ratio:.4%} of the first push (target < 1 %)")
        print(f"rebuild time:  {time_ratio:.1%} of the first build")
        print(f"second push re-sent {added2 / model_layer:.4%} of the model layer's compressed size (registry)")
        ok = byte_ratio < 0.01 and time_ratio < 0.5
        print("targets met" if ok else "TARGETS MISSED")
        if not ok:
            sys.exit(1)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
            for image in api.images(name=f"{host}/{repository}"):
                for tag in image.get("RepoTags") or []:
                    api.remove_image(tag, force=True)
        else:
            print(f"kept {folder}")
        api.close()


if __name__ == "__main__":
    main()
