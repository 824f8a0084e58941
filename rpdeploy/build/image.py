"""Building the worker image: the build plan, the disk check, the base image (pulled with
progress when missing), the build itself through the SDK's low-level API, and reusing an image
whose context hash is unchanged.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpdeploy.build.context import BuildContext, build_context, context_hash
from rpdeploy.build.engine import _api_message, _engine_errors, _image_or_none
from rpdeploy.build.progress import BuildLog, _event_error
from rpdeploy.build.tags import TagChoice, choose_tag, platform_problem
from rpdeploy.errors import ConfigError, DockerError
from rpdeploy.output import NullReporter, Reporter, format_bytes
from rpdeploy.secrets import Secret

if TYPE_CHECKING:
    from rpdeploy.config import Config, ImageConfig, ModelConfig


#: Free disk kept in reserve on top of what the build is expected to write.
DISK_MARGIN = 2 * 1000**3


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildResult:
    """A built (or reused) local image."""

    image: str  # name:tag, e.g. 127.0.0.1:5000/acme/worker:3f2a9c1
    image_id: str  # sha256:...
    tags: tuple[str, ...]
    size: int  # bytes, uncompressed, base layers included
    context_hash: str
    tag_source: str  # --tag | image.tag | git | git-dirty | content
    platform: str
    skipped: bool  # True: the context was unchanged and the image still existed
    seconds: float
    steps: int = 0  # Dockerfile steps that build something (FROM and leading ARGs do not count)
    cached_steps: int = 0  # of those, taken from the layer cache


# --- preflight ----------------------------------------------------------------------------

_PARAMS = re.compile(r"(?:(\d+)x)?(\d+(?:\.\d+)?)([bBmM])(?![a-zA-Z])")


def estimate_model_bytes(model: ModelConfig) -> int | None:
    """Rough size of the weights from the parameter count in the model's name ("7B", "8x7B", "350M").

    None when the name gives no count. Used only for the disk check, so a rough figure is fine.
    """
    from rpdeploy.config import Dtype, Quantization

    tail = model.name.rstrip("/").split("/")[-1]
    match = _PARAMS.search(tail)
    if match is None:
        return None
    experts = int(match.group(1) or 1)
    scale = 1e9 if match.group(3) in "bB" else 1e6
    params = experts * float(match.group(2)) * scale
    quant = model.quantization
    four_bit = (Quantization.AWQ, Quantization.AWQ_MARLIN, Quantization.GPTQ, Quantization.GPTQ_MARLIN)
    if quant in four_bit or quant is Quantization.BITSANDBYTES:
        per_param = 0.55
    elif quant in (Quantization.FP8, Quantization.COMPRESSED_TENSORS):
        per_param = 1.05
    elif model.dtype is Dtype.FLOAT32:
        per_param = 4.0
    else:
        per_param = 2.0
    return int(params * per_param)


@dataclass(frozen=True)
class DiskEstimate:
    free: int | None  # None: the engine's disk cannot be seen from here
    needed: int
    expected_image: int
    root_dir: str


def check_disk(api: Any, *, base_size: int, model_bytes: int | None, bake: bool, reporter: Reporter) -> DiskEstimate:
    """Fail before a slow build when docker's data folder cannot hold what the build writes.

    The build writes the new layers only (the base is already on disk); a baked model is
    written twice with the classic builder: in the download stage and in the final image.
    """
    with _engine_errors("asking the engine where it keeps images"):
        info = api.info()
    root_dir = str(info.get("DockerRootDir") or "/var/lib/docker")
    model = (model_bytes or 0) if bake else 0
    needed = 2 * model + DISK_MARGIN
    expected = base_size + model
    local = str(getattr(api, "base_url", "")).startswith("http+docker://")
    if not local or not Path(root_dir).is_dir():
        reporter.debug(f"free disk not checked: the engine's data folder {root_dir} is not on this machine")
        return DiskEstimate(None, needed, expected, root_dir)
    free = shutil.disk_usage(root_dir).free
    parts = [f"base image {format_bytes(base_size)}"]
    if bake:
        parts.append(f"model ~{format_bytes(model)}" if model_bytes else "model (size unknown: not counted)")
    reporter.debug(
        f"disk: {format_bytes(free)} free in {root_dir}; expected image ~{format_bytes(expected)} "
        f"({', '.join(parts)}); the build needs ~{format_bytes(needed)}"
    )
    if free < needed:
        written = f"the baked model twice (download stage and image) ~{format_bytes(2 * model)} + " if model else ""
        raise DockerError(
            f"not enough free disk for the build: {root_dir} (docker's data folder) has {format_bytes(free)} free, "
            f"the build needs about {format_bytes(needed)} ({written}{format_bytes(DISK_MARGIN)} margin; "
            f"expected image ~{format_bytes(expected)}: {', '.join(parts)})",
            hint="free space (`docker system prune` removes stopped containers, unused images and build cache), "
            "or move docker's data-root to a bigger disk",
        )
    return DiskEstimate(free, needed, expected, root_dir)


def _split_ref(ref: str) -> tuple[str, str | None]:
    from docker.utils import parse_repository_tag

    repository, tag = parse_repository_tag(ref)
    return repository, tag


def ensure_base_image(api: Any, ref: str, *, platform: str, reporter: Reporter) -> dict[str, Any]:
    """Inspect the base image, pulling it (with progress) when it is not on this machine."""
    with _engine_errors(f"inspecting the base image {ref}"):
        found = _image_or_none(api, ref)
    if found is not None:
        return found
    reporter.info(f"Base image {ref} is not on this machine: pulling it")
    with _engine_errors(f"pulling the base image {ref}"):
        message = _pull(api, ref, platform=platform, reporter=reporter)
    found = None
    if message is None:
        with _engine_errors(f"inspecting the base image {ref}"):
            found = _image_or_none(api, ref)
        message = "the engine does not show it after the pull" if found is None else None
    if message is not None or found is None:
        raise DockerError(
            f"the base image {ref} is not on this machine and cannot be pulled: {message}",
            hint="check image.base_image in deploy.yaml; for a private registry run `docker login <registry>`; "
            "offline, load the image first (`docker load -i image.tar`)",
        )
    return found


def _pull(api: Any, ref: str, *, platform: str, reporter: Reporter) -> str | None:
    """Pull ``ref`` with per-layer progress; the error message, or None when it worked."""
    import docker

    repository, tag = _split_ref(ref)
    with reporter.transfer(f"Pulling {ref}") as transfer:
        try:
            events = api.pull(repository, tag=tag or "latest", stream=True, decode=True, platform=platform)
            for event in events:
                error = _event_error(event)
                if error is not None:
                    return error
                layer, status = event.get("id"), event.get("status")
                if layer and status:
                    detail = event.get("progressDetail") or {}
                    transfer.update(
                        str(layer), description=str(status), completed=detail.get("current"), total=detail.get("total")
                    )
        except docker.errors.APIError as exc:
            return _api_message(exc)
    return None


# --- build --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildPlan:
    """Everything a build needs, decided before it starts."""

    context: BuildContext
    name: str  # registry/repository (no host for Docker Hub)
    tag: TagChoice
    buildargs: Mapping[str, str]
    secret_buildargs: Mapping[str, Secret]
    platform: str
    no_cache: bool
    context_hash: str
    base_image: str
    base_image_id: str
    base_image_size: int
    bake: bool
    model_bytes: int | None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag.tag}"


def plan_build(
    api: Any,
    config: Config,
    *,
    tag: str | None = None,
    platform: str | None = None,
    no_cache: bool = False,
    environ: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
) -> BuildPlan:
    """Decide the build: context, build args, base image (pulled if needed), hash and tag."""
    reporter = reporter or NullReporter()
    image = _image_config(config)
    assert config.worker_dir is not None
    if platform is not None and (problem := platform_problem(platform)):
        raise ConfigError(f"--platform: {problem}")
    target_platform = platform or image.platform
    context = build_context(config.worker_dir)
    buildargs = {"BASE_IMAGE": image.base_image}
    secrets: dict[str, Secret] = {}
    if config.model.downloads_at_build and config.model.hf_token is not None:
        # Only the throw-away download stage declares HF_TOKEN (see templates/worker/common/Dockerfile.j2).
        secrets["HF_TOKEN"] = config.model.hf_token.resolve(
            base_dir=config.base_dir, environ=environ, field="model.hf_token"
        )
    elif config.model.hf_token is not None:
        reporter.debug("model.hf_token is not used by the build: the model is not baked (model.weights is not bake)")
    base = ensure_base_image(api, image.base_image, platform=target_platform, reporter=reporter)
    digest = context_hash(
        context,
        buildargs=buildargs,
        secret_args=secrets,
        platform=target_platform,
        base_image_id=str(base.get("Id", "")),
    )
    choice = choose_tag(image, context, digest, explicit=tag, platform=platform, config_path=config.path)
    if choice.reason:
        reporter.debug(f"tag {choice.tag}: {choice.reason}")
    return BuildPlan(
        context=context,
        name=image.name,
        tag=choice,
        buildargs=buildargs,
        secret_buildargs=secrets,
        platform=target_platform,
        no_cache=no_cache,
        context_hash=digest,
        base_image=image.base_image,
        base_image_id=str(base.get("Id", "")),
        base_image_size=int(base.get("Size") or 0),
        bake=config.model.downloads_at_build,
        model_bytes=baked_model_bytes(config, environ=environ, reporter=reporter)
        if config.model.downloads_at_build
        else None,
    )


def baked_model_bytes(
    config: Config, *, environ: Mapping[str, str] | None = None, reporter: Reporter | None = None
) -> int | None:
    """The weights' size for the disk check: from the architecture when rpdeploy knows it without
    the network (model.config_file, the HF cache, the built-in table: see ``rpdeploy.preflight``), else
    from the parameter count in the model's name."""
    from rpdeploy.errors import RpdeployError
    from rpdeploy.preflight.estimate import estimate
    from rpdeploy.preflight.sources import load_arch

    reporter = reporter or NullReporter()
    try:
        found = load_arch(config, offline=True, environ=environ, reporter=reporter)
        if found.arch is not None:
            return estimate(config, found.arch).weight_bytes_total
    except RpdeployError as exc:
        reporter.debug(f"model size from its architecture: {exc.message}")
    return estimate_model_bytes(config.model)


def build_image(api: Any, plan: BuildPlan, *, reporter: Reporter | None = None) -> BuildResult:
    """Run the build from the plan (no skip check) and tag the result ``plan.ref``."""
    reporter = reporter or NullReporter()
    started = time.monotonic()
    context = plan.context
    reporter.info(
        f"Building {plan.ref} from {context.root} ({len(context.files)} files, {format_bytes(context.size)}; "
        f"base {plan.base_image}, {plan.platform}{', no cache' if plan.no_cache else ''})"
    )
    buildargs = dict(plan.buildargs)
    if plan.secret_buildargs:
        reporter.info(
            f"{', '.join(sorted(plan.secret_buildargs))}: a build argument of the throw-away model stage only, "
            "never in the pushed image; docker's local build cache keeps that stage's history on this machine "
            "(`docker image prune` removes it, and the cached download with it)"
        )
    # Secrets go to the local engine in the request (its socket), never on a command line.
    buildargs.update({key: secret.reveal() for key, secret in plan.secret_buildargs.items()})
    log = BuildLog(reporter, context.root / context.dockerfile)
    with _engine_errors("building the image"):
        events = api.build(
            path=str(context.root),
            dockerfile=context.dockerfile,
            tag=plan.ref,
            buildargs=buildargs,
            nocache=plan.no_cache,
            platform=plan.platform,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            timeout=None,
        )
        for event in events:
            log.feed(event)
        log.flush()
    if log.image_id is None:
        raise log.failure("the engine ended the build without an image id")
    with _engine_errors("inspecting the built image"):
        built = api.inspect_image(log.image_id)
    return _result(plan, built, started, skipped=False, steps=log.steps, cached_steps=log.cached)


def reuse_image(
    api: Any, plan: BuildPlan, previous: Mapping[str, Any] | None, *, reporter: Reporter | None = None
) -> BuildResult | None:
    """The previous build's image when nothing it was built from changed and it still exists, else None."""
    reporter = reporter or NullReporter()
    if plan.no_cache or not previous or previous.get("context_hash") != plan.context_hash:
        return None
    image_id = previous.get("image_id")
    if not isinstance(image_id, str) or not image_id:
        return None
    started = time.monotonic()
    with _engine_errors("looking for the previous build's image"):
        found = _image_or_none(api, image_id)
        if found is None:
            reporter.info(f"The build context is unchanged but image {image_id[:19]} is gone: building again")
            return None
        repository, tag = plan.name, plan.tag.tag
        # The tag may differ from last time (a commit made since): it names the same content.
        api.tag(image_id, repository, tag)
        found = api.inspect_image(image_id)
    return _result(plan, found, started, skipped=True)


def _result(
    plan: BuildPlan,
    inspected: Mapping[str, Any],
    started: float,
    *,
    skipped: bool,
    steps: int = 0,
    cached_steps: int = 0,
) -> BuildResult:
    """What a build (or the reuse of an earlier one) leaves: the image as the engine describes it."""
    return BuildResult(
        image=plan.ref,
        image_id=str(inspected["Id"]),
        tags=tuple(sorted(t for t in inspected.get("RepoTags") or () if t.startswith(f"{plan.name}:"))),
        size=int(inspected.get("Size") or 0),
        context_hash=plan.context_hash,
        tag_source=plan.tag.source,
        platform=plan.platform,
        skipped=skipped,
        seconds=round(time.monotonic() - started, 3),
        steps=steps,
        cached_steps=cached_steps,
    )


# --- the command's core -------------------------------------------------------------------


def _image_config(config: Config) -> ImageConfig:
    if not config.method.builds_image or config.image is None:
        raise ConfigError(
            f"method {config.method.value} runs a prebuilt image: there is nothing to build",
        )
    return config.image
