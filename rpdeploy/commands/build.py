"""`rpdeploy build [--push]`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from rpdeploy.commands._common import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    VerboseOption,
    emit,
    load,
    reporter,
)
from rpdeploy.output import format_bytes

if TYPE_CHECKING:
    from rpdeploy.build.pipeline import BuildPushResult

PushOption = Annotated[bool, typer.Option("--push", help="Push the image to image.registry and record its digest.")]
TagOption = Annotated[
    str | None,
    typer.Option(
        "--tag", help="Image tag (default: image.tag, else the git short sha, else a content hash; never latest)."
    ),
]
NoCacheOption = Annotated[bool, typer.Option("--no-cache", help="Build every step again, even when nothing changed.")]
PlatformOption = Annotated[
    str | None, typer.Option("--platform", help="Target platform (default: image.platform, linux/amd64 for RunPod).")
]


def _check_tag(tag: str | None) -> None:
    from rpdeploy.build.tags import tag_problem

    if tag is not None and (problem := tag_problem(tag)):
        raise typer.BadParameter(problem, param_hint="--tag")


def _check_platform(platform: str | None) -> None:
    from rpdeploy.build.tags import platform_problem

    if platform is not None and (problem := platform_problem(platform)):
        raise typer.BadParameter(problem, param_hint="--platform")


def _summary(result: BuildPushResult) -> str:
    build, push = result.build, result.push
    how = "unchanged, build skipped" if build.skipped else f"built in {build.seconds:.1f}s"
    if not build.skipped and build.steps:
        how += f", {build.cached_steps}/{build.steps} steps cached"
    lines = [f"Image   {build.image}  ({format_bytes(build.size)}, {how})"]
    if push is not None:
        sent = f"{format_bytes(push.bytes_pushed)} in {push.layers_pushed} layer(s)"
        lines += [
            f"Pushed  {push.image}",
            f"        digest {push.digest}",
            f"        sent {sent}, {push.layers_present} already in the registry, "
            f"{push.seconds:.1f}s" + (f", {push.attempts} attempts" if push.attempts > 1 else ""),
        ]
    else:
        lines.append("Not pushed (add --push to push it and record its digest for the endpoint).")
    return "\n".join(lines)


def build(
    config: ConfigOption = DEFAULT_CONFIG,
    push: PushOption = False,
    tag: TagOption = None,
    no_cache: NoCacheOption = False,
    platform: PlatformOption = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Build the worker image from worker/ (methods 2 and 3), and with --push push it.

    The build is skipped when nothing it depends on changed since the last successful
    build (the files docker sends, build args, platform, base image) and that image still
    exists; --no-cache builds everything again. A push shows per-layer progress, retries
    transient registry failures and records the image by digest (repo@sha256:...), which
    `rpdeploy endpoint create` then deploys. Registry login comes from
    image.credentials, else RPDEPLOY_REGISTRY_USERNAME/RPDEPLOY_REGISTRY_PASSWORD, else
    your `docker login`. Method 1 (worker-vllm) has nothing to build.

    Examples:

    \b
      rpdeploy build                     # build only, tag from git or content
      rpdeploy build --push              # build and push, record the digest
      rpdeploy build --push --tag v1.2.0 --json
      rpdeploy build --no-cache --platform linux/amd64
    """
    _check_tag(tag)
    _check_platform(platform)
    cfg = load(config)
    if not cfg.method.builds_image:
        from rpdeploy import versions

        text = (
            f"Nothing to build: method {cfg.method.number} ({cfg.method.value}) runs RunPod's prebuilt image "
            f"{versions.WORKER_VLLM_IMAGE}."
        )
        emit(json_output, {"built": False, "reason": "prebuilt image", "image": versions.WORKER_VLLM_IMAGE}, text)
        return
    from rpdeploy.build.pipeline import build_and_push

    result = build_and_push(
        cfg,
        push=push,
        tag=tag,
        no_cache=no_cache,
        platform=platform,
        reporter=reporter(verbose=verbose),
    )
    document: dict[str, Any] = {"built": not result.build.skipped, "build": result.build, "push": result.push}
    emit(json_output, document, _summary(result))
