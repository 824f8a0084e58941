"""Build and push the worker image (methods 2 and 3) with the docker SDK.

:func:`build_and_push` is what ``rpdeploy build [--push]`` runs:

1. cheap checks first, so nothing slow starts that is bound to fail: the image repository is
   not the ``change-me/`` placeholder, the registry credentials exist (``registry_auth``) and
   the engine answers; for a push, the engine logs in to the registry once (a wrong password
   fails here, not after a 20-minute build);
2. the base image is present, or pulled now with progress (an unpullable one is named);
3. the build context is hashed (the files docker sends, ``.dockerignore`` honoured, the
   Dockerfile, the build args with a secret's presence but never its value, the platform and
   the base image's id). The hash picks the tag and decides whether to build at all: when it
   equals the last successful build's and that image still exists, the build is skipped;
4. free disk in docker's data folder is checked against the image about to be written;
5. the build streams through the SDK's low-level API: every log line to the reporter, an
   ``error`` event to a :class:`DockerError` naming the failing step and its last lines;
6. the push reads the whole event stream (a failed push does not raise by itself), shows
   per-layer progress, retries transient failures with backoff, and returns the digest
   from the final ``aux`` event: ``name@sha256:...`` is what the endpoint runs.

Both results go to the ledger (stages ``build`` and ``push``) for ``rpdeploy endpoint create``
and for the next build's skip check. ``import docker`` happens inside functions only: the
CLI must start fast.

The steps live in the modules of :mod:`rpdeploy.build`; this one runs them in order and records
the results in the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpdeploy.build.engine import connect
from rpdeploy.build.image import BuildResult, _image_config, build_image, check_disk, plan_build, reuse_image
from rpdeploy.build.push import PushResult, RetryPolicy, push_image, verify_login
from rpdeploy.build.registry_auth import DOCKER_HUB_NAMES, RegistryAuth, require_registry_auth
from rpdeploy.build.tags import tag_problem
from rpdeploy.errors import ConfigError
from rpdeploy.output import NullReporter, Reporter, format_bytes

if TYPE_CHECKING:
    from rpdeploy.config import Config, ImageConfig


@dataclass(frozen=True)
class BuildPushResult:
    build: BuildResult
    push: PushResult | None


def refuse_placeholder(image: ImageConfig) -> None:
    """A push to the ``change-me/`` repository `rpdeploy init` writes would go nowhere useful."""
    from rpdeploy.worker.scaffold import PLACEHOLDER_NAMESPACE

    if image.repository.startswith(f"{PLACEHOLDER_NAMESPACE}/"):
        where = "your Docker Hub user or organisation" if image.registry in DOCKER_HUB_NAMES else "your namespace"
        raise ConfigError(
            f"image.repository is still the placeholder {image.repository!r}: refusing to push there",
            hint=f"set image.repository in deploy.yaml to {where}/<name> (e.g. acme/qwen-worker)",
        )


def build_and_push(
    config: Config,
    *,
    push: bool = False,
    tag: str | None = None,
    no_cache: bool = False,
    platform: str | None = None,
    reporter: Reporter | None = None,
    environ: Mapping[str, str] | None = None,
    retry: RetryPolicy | None = None,
) -> BuildPushResult:
    """Build the worker image (or reuse it when nothing changed), then push it if asked.

    Records stage ``build`` (image id, context hash) and ``push`` (image by digest) in the ledger.
    """
    from rpdeploy.deploy.ledger import Ledger

    reporter = reporter or NullReporter()
    retry = retry or RetryPolicy()
    image = _image_config(config)
    if tag is not None and (problem := tag_problem(tag)):
        raise ConfigError(f"--tag: {problem}")
    auth: RegistryAuth | None = None
    if push:
        refuse_placeholder(image)
        auth = require_registry_auth(image, base_dir=config.base_dir, environ=environ)
    api = connect(environ)
    try:
        if auth is not None:
            verify_login(api, auth, retry=retry, reporter=reporter)
        plan = plan_build(
            api, config, tag=tag, platform=platform, no_cache=no_cache, environ=environ, reporter=reporter
        )
        ledger = Ledger.load(config.state_dir)
        previous = ledger.stages.get("build")
        previous_outputs = previous.outputs if previous is not None and previous.status == "done" else None
        build = reuse_image(api, plan, previous_outputs, reporter=reporter)
        if build is not None:
            reporter.info(f"Build skipped: nothing changed since image {build.image_id[7:19]}; tagged {build.image}")
        else:
            check_disk(
                api, base_size=plan.base_image_size, model_bytes=plan.model_bytes, bake=plan.bake, reporter=reporter
            )
            build = build_image(api, plan, reporter=reporter)
            cached = f", {build.cached_steps} of {build.steps} steps cached" if build.steps else ""
            reporter.success(f"Built {build.image} ({format_bytes(build.size)}) in {build.seconds:.1f}s{cached}")
        ledger.record(
            "build",
            {
                "image": build.image,
                "image_id": build.image_id,
                "tag": plan.tag.tag,
                "context_hash": plan.context_hash,
                "base_image_id": plan.base_image_id,
                "platform": plan.platform,
                "skipped": build.skipped,
            },
            fingerprint=plan.context_hash,
            seconds=build.seconds,
        )
        ledger.save()
        pushed: PushResult | None = None
        if auth is not None:
            pushed = push_image(api, plan.name, plan.tag.tag, auth, reporter=reporter, retry=retry)
            ledger.record(
                "push",
                {
                    "image": pushed.image,
                    "tag": pushed.tag,
                    "digest": pushed.digest,
                    "size": pushed.size,
                    "context_hash": plan.context_hash,
                    "bytes_pushed": pushed.bytes_pushed,
                },
                fingerprint=f"{plan.context_hash}:{plan.ref}",
                seconds=pushed.seconds,
            )
            ledger.save()
        return BuildPushResult(build=build, push=pushed)
    finally:
        api.close()
