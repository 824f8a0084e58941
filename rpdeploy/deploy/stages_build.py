"""Deploy steps 1 to 4: write the worker's files that are missing, build the image, push it.

Owns the stages ``handler``, ``dockerfile``, ``build`` and ``push`` (methods custom-handler and
fastapi only): their inputs, which let an unchanged worker folder skip the build without asking
docker anything, and their runs.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpdeploy.deploy.context import Context, Stage, builds_image, fingerprint

if TYPE_CHECKING:
    pass

# 1, 2: scaffold the worker files that are missing; a user's edits are kept.

_CODE_FILES = frozenset({"handler.py", "app.py", "test_input.json"})
_BUILD_FILES = frozenset({"Dockerfile", "requirements.txt", ".dockerignore"})


def _scaffold_inputs(ctx: Context, names: frozenset[str]) -> dict[str, Any]:
    from rpdeploy.fsutil import sha256_text
    from rpdeploy.worker.scaffold import worker_files

    files = worker_files(ctx.config, only=names)
    return {
        "rendered": {rel: sha256_text(text) for rel, text in files.items()},
        # A file deleted by hand must be written again even if nothing else changed.
        "present": sorted(rel for rel in files if (ctx.config.base_dir / rel).exists()),
    }


def _scaffold(ctx: Context, names: frozenset[str]) -> dict[str, Any]:
    from rpdeploy.worker.scaffold import worker_files, write_generated

    result = write_generated(
        ctx.config.base_dir, worker_files(ctx.config, only=names), keep_edited=True, reporter=ctx.reporter
    )
    for item in result.files:
        if item.action == "kept":
            ctx.reporter.info(f"{item.path}: keeping your edited version")
    return {"files": {item.path: item.action for item in result.files}}


def _handler_inputs(ctx: Context) -> dict[str, Any]:
    return _scaffold_inputs(ctx, _CODE_FILES)


def _handler_run(ctx: Context) -> dict[str, Any]:
    return _scaffold(ctx, _CODE_FILES)


def _dockerfile_inputs(ctx: Context) -> dict[str, Any]:
    return _scaffold_inputs(ctx, _BUILD_FILES)


def _dockerfile_run(ctx: Context) -> dict[str, Any]:
    return _scaffold(ctx, _BUILD_FILES)


# 3, 4: build and push.


#: A file modified this close to the moment its stat was cached is not trusted from the cache:
#: on a filesystem with coarse timestamps, an edit in the same tick would keep the same stat.
_RACY_NS = 2_000_000_000


def _worker_stat(root: Path) -> tuple[str, int]:
    """A fingerprint of every entry under ``root`` from its stat alone (path, type, mode, size,
    mtime, inode, link target), and the newest mtime. No file is read."""
    found = hashlib.sha256()
    newest = 0
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            path = os.path.join(folder, name)
            info = os.lstat(path)
            link = os.readlink(path) if os.path.islink(path) else ""
            found.update(
                f"{os.path.relpath(path, root)}\0{info.st_mode}\0{info.st_size}\0{info.st_mtime_ns}\0"
                f"{info.st_ino}\0{link}\n".encode("utf-8", "surrogateescape")
            )
            newest = max(newest, info.st_mtime_ns)
    return found.hexdigest(), newest


def _build_inputs(ctx: Context) -> dict[str, Any]:
    from rpdeploy.build.context import build_context, context_hash

    config = ctx.config
    assert config.image is not None and config.worker_dir is not None
    # Files, build args and platform, without asking the engine anything: an unchanged
    # worker folder is skipped with no docker call at all. (Inside the stage the build
    # plan also hashes the base image's id, which catches a re-pulled base.)
    secret_names = ["HF_TOKEN"] if config.model.downloads_at_build and config.model.hf_token is not None else []
    settings = {"BASE_IMAGE": config.image.base_image, "secrets": secret_names, "platform": config.image.platform}
    # Listing the context needs the docker SDK's .dockerignore matcher, and importing the SDK
    # (requests, paramiko) costs about 0.3 s: most of a no-change re-run. When no entry of the
    # worker folder changed by its stat (as git's index decides), the last hash still holds.
    signature, newest = (None, 0) if not config.worker_dir.is_dir() else _worker_stat(config.worker_dir)
    key = fingerprint({"stat": signature, **settings})
    cached = ctx.ledger.extra.get("build_context")
    if signature is not None and isinstance(cached, dict) and cached.get("key") == key:
        files = str(cached["files"])
    else:
        files = context_hash(
            build_context(config.worker_dir),
            buildargs={"BASE_IMAGE": config.image.base_image},
            secret_args=secret_names,
            platform=config.image.platform,
        )
        if signature is not None and newest < time.time_ns() - _RACY_NS:
            ctx.ledger.extra["build_context"] = {"key": key, "files": files}
    return {"files": files, "name": config.image.name, "tag": ctx.options.tag, "no_cache": ctx.options.no_cache}


def _registry_auth(ctx: Context) -> Any:
    from rpdeploy.build.registry_auth import require_registry_auth

    assert ctx.config.image is not None
    return require_registry_auth(ctx.config.image, base_dir=ctx.config.base_dir, environ=ctx.environ)


def _build_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.build.engine import connect
    from rpdeploy.build.image import build_image, check_disk, plan_build, reuse_image
    from rpdeploy.build.push import RetryPolicy, verify_login
    from rpdeploy.output import format_bytes

    auth = _registry_auth(ctx)
    api = connect(ctx.environ)
    try:
        # Bad registry credentials should fail now, not after a twenty-minute build.
        verify_login(api, auth, retry=RetryPolicy(), reporter=ctx.reporter)
        plan = plan_build(
            api,
            ctx.config,
            tag=ctx.options.tag,
            no_cache=ctx.options.no_cache,
            environ=ctx.environ,
            reporter=ctx.reporter,
        )
        record = ctx.ledger.stages.get("build")
        build = reuse_image(api, plan, record.outputs if record else None, reporter=ctx.reporter)
        if build is None:
            check_disk(
                api, base_size=plan.base_image_size, model_bytes=plan.model_bytes, bake=plan.bake, reporter=ctx.reporter
            )
            build = build_image(api, plan, reporter=ctx.reporter)
            ctx.reporter.success(f"Built {build.image} ({format_bytes(build.size)}) in {build.seconds:.1f}s")
    finally:
        api.close()
    return {
        "image": build.image,
        "image_id": build.image_id,
        "name": plan.name,
        "tag": plan.tag.tag,
        "context_hash": plan.context_hash,
        "base_image_id": plan.base_image_id,
        "skipped": build.skipped,
    }


def _push_inputs(ctx: Context) -> dict[str, Any]:
    build = ctx.outputs.get("build", {})
    return {"image_id": build.get("image_id"), "name": build.get("name"), "tag": build.get("tag")}


def _push_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.build.engine import connect
    from rpdeploy.build.push import push_image
    from rpdeploy.output import format_bytes

    build = ctx.outputs["build"]
    auth = _registry_auth(ctx)
    api = connect(ctx.environ)
    try:
        pushed = push_image(api, build["name"], build["tag"], auth, reporter=ctx.reporter)
    finally:
        api.close()
    ctx.reporter.success(
        f"Pushed {pushed.image} ({format_bytes(pushed.bytes_pushed)} sent, {pushed.layers_present} layer(s) "
        f"already there) in {pushed.seconds:.1f}s"
    )
    return {"image": pushed.image, "digest": pushed.digest, "size": pushed.size, "bytes_pushed": pushed.bytes_pushed}


BUILD_STAGES: tuple[Stage, ...] = (
    Stage("handler", "write handler.py (and app.py)", builds_image, _handler_inputs, _handler_run),
    Stage("dockerfile", "write the Dockerfile", builds_image, _dockerfile_inputs, _dockerfile_run),
    Stage("build", "build the image", builds_image, _build_inputs, _build_run),
    Stage("push", "push the image", builds_image, _push_inputs, _push_run),
)
