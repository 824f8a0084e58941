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

Tag rule (never ``latest``): ``--tag``, else ``image.tag``, else with ``tag_policy: git`` the
short sha of HEAD when every file of the build context is committed unchanged (and
deploy.yaml too, and the platform is the configured one); with uncommitted changes
``<sha>-dirty-<8 hex of the context hash>``; outside git (or ``tag_policy: content``)
``c-<12 hex of the context hash>``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from rpdeploy.errors import ConfigError, DockerError, RegistryError
from rpdeploy.output import NullReporter, Reporter, Transfer, format_bytes
from rpdeploy.registry_auth import DOCKER_HUB_NAMES, RegistryAuth, login_hint, require_registry_auth
from rpdeploy.secrets import Secret

if TYPE_CHECKING:
    from rpdeploy.config import Config, ImageConfig, ModelConfig

#: Seconds the SDK waits for an answer from the engine. Builds have no limit (a quiet RUN step
#: may take an hour); a push that sends no event for this long is treated as stalled (retried).
API_TIMEOUT = 300
#: Free disk kept in reserve on top of what the build is expected to write.
DISK_MARGIN = 2 * 1000**3
#: Lines of build output repeated in a build error.
LOG_TAIL = 15
#: Bumped whenever what goes into the context hash changes, so old hashes never match.
CONTEXT_HASH_VERSION = "rpdeploy-context-v1"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$")
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


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


@dataclass(frozen=True)
class PushResult:
    """A pushed image, by digest: what the endpoint runs."""

    image: str  # name@sha256:...
    tag: str
    digest: str
    size: int  # bytes of the local image, uncompressed
    bytes_pushed: int  # sum of the sizes of the layers actually sent
    layers_pushed: int
    layers_present: int  # already in the registry (or mounted from another repository): not sent
    attempts: int
    seconds: float


@dataclass(frozen=True)
class BuildPushResult:
    build: BuildResult
    push: PushResult | None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff for transient registry failures."""

    attempts: int = 4
    delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.delay * self.factor ** (attempt - 1)))


# --- options ------------------------------------------------------------------------------


def tag_problem(tag: str) -> str | None:
    """Why ``tag`` is not an acceptable image tag, or None."""
    if tag == "latest":
        return "'latest' is mutable: give an immutable tag (or leave it out: rpdeploy picks one)"
    if not _TAG.match(tag):
        return f"{tag!r} is not a valid tag (letters, digits, _ . -; at most 128; not starting with . or -)"
    return None


def platform_problem(platform: str) -> str | None:
    """Why ``platform`` is not an os/arch[/variant] string, or None."""
    if not _PLATFORM.match(platform):
        return f"{platform!r} is not a platform like linux/amd64"
    return None


# --- engine -------------------------------------------------------------------------------


def _engine_hint(host: str, reason: str) -> str:
    if "permission denied" in reason.lower():
        return (
            f"you may not use {host}: add your user to the docker group "
            "(`sudo usermod -aG docker $USER`, then log in again), or run as root"
        )
    return (
        "start the engine (`sudo systemctl start docker`, or `sudo dockerd &` where there is no systemd), "
        "or set DOCKER_HOST to a running engine (e.g. unix:///run/user/1000/docker.sock for rootless docker)"
    )


def connect(environ: Mapping[str, str] | None = None, *, timeout: int = API_TIMEOUT) -> Any:
    """A low-level docker ``APIClient`` for the engine DOCKER_HOST names (default: the local socket).

    Raises DockerError naming the address and how to start the engine when nothing answers.
    """
    import docker
    import requests

    environ = os.environ if environ is None else environ
    host = environ.get("DOCKER_HOST") or DEFAULT_SOCKET
    where = f"DOCKER_HOST={host}" if environ.get("DOCKER_HOST") else f"{host} (DOCKER_HOST is not set)"
    try:
        kwargs = docker.utils.kwargs_from_env(environment=dict(environ))
        # version="auto" asks the engine for its API version: the first round trip.
        api = docker.APIClient(version="auto", timeout=timeout, **kwargs)
        api.ping()
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        reason = _reason(exc)
        raise DockerError(
            f"cannot reach the Docker engine at {where}: {reason}", hint=_engine_hint(host, reason)
        ) from exc
    return api


def _reason(exc: BaseException) -> str:
    """The innermost useful words of a docker/requests/socket error."""
    text = str(exc)
    for marker, words in (
        ("No such file or directory", "no socket there (the engine is not running)"),
        ("Connection refused", "connection refused (the engine is not running)"),
        ("Permission denied", "permission denied"),
        ("timed out", "timed out"),
    ):
        if marker.lower() in text.lower():
            return words
    return text


HELPER_HINT = (
    "check credsStore/credHelpers in your docker config (~/.docker/config.json or $DOCKER_CONFIG): "
    "the docker-credential-<name> program must be installed and on PATH"
)


@contextmanager
def _engine_errors(what: str) -> Iterator[None]:
    """Translate docker SDK and transport errors raised while ``what`` into DockerError."""
    import docker
    import requests
    import urllib3
    from docker.credentials import StoreError

    try:
        with warnings.catch_warnings():
            # The SDK warns about a missing credential helper, then fails: the error says it once.
            warnings.filterwarnings("ignore", message=r"docker-credential-.* not installed")
            yield
    except docker.errors.APIError as exc:
        raise DockerError(f"{what}: {_api_message(exc)}") from exc
    except StoreError as exc:
        # The SDK reads every credential helper to send the engine its logins (build, pull).
        raise DockerError(f"{what}: a docker credential helper failed: {exc}", hint=HELPER_HINT) from exc
    except (docker.errors.DockerException, requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        if "Credentials store" in str(exc):
            raise DockerError(f"{what}: a docker credential helper failed: {exc}", hint=HELPER_HINT) from exc
        raise DockerError(
            f"{what}: the Docker engine stopped answering ({_reason(exc)})", hint=_engine_hint("the engine", "")
        ) from exc


def _api_message(exc: Any) -> str:
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return str(explanation or exc).strip()


def _image_or_none(api: Any, ref: str) -> dict[str, Any] | None:
    import docker

    try:
        found: dict[str, Any] = api.inspect_image(ref)
    except docker.errors.NotFound:
        return None
    return found


# --- build context ------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildContext:
    """The files docker sends for a build of ``root`` (as the SDK selects them)."""

    root: Path
    dockerfile: str
    paths: tuple[str, ...]  # relative, sorted: files, folders and links
    patterns: tuple[str, ...]  # .dockerignore lines
    size: int  # bytes of the regular files

    @property
    def files(self) -> tuple[str, ...]:
        """Regular files and links (no folders)."""
        return tuple(p for p in self.paths if not (self.root / p).is_dir() or (self.root / p).is_symlink())


def read_dockerignore(root: Path) -> list[str]:
    """The patterns of ``root/.dockerignore``, read exactly as the SDK reads them."""
    from rpdeploy.limits import DOCKERIGNORE_BYTES, decode_text, read_limited

    path = root / ".dockerignore"
    if not path.exists():
        return []
    text = decode_text(read_limited(path, DOCKERIGNORE_BYTES, what=".dockerignore"), what=".dockerignore", path=path)
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def build_context(root: Path, dockerfile: str = "Dockerfile") -> BuildContext:
    """List what ``docker build root`` would send, with the SDK's own .dockerignore matcher."""
    from docker.utils.build import exclude_paths

    if not root.is_dir():
        raise ConfigError(
            f"the worker folder {root} does not exist",
            hint="run `rpdeploy render` to write it, or fix image.worker_dir in deploy.yaml",
        )
    if not (root / dockerfile).is_file():
        raise ConfigError(
            f"{root / dockerfile} does not exist",
            hint="run `rpdeploy render` to write the worker files",
        )
    patterns = read_dockerignore(root)
    paths = tuple(sorted(exclude_paths(str(root), list(patterns), dockerfile=dockerfile)))
    size = 0
    for rel in paths:
        info = (root / rel).lstat()
        if stat.S_ISREG(info.st_mode):
            size += info.st_size
    return BuildContext(root=root, dockerfile=dockerfile, paths=paths, patterns=tuple(patterns), size=size)


def context_hash(
    context: BuildContext,
    *,
    buildargs: Mapping[str, str],
    secret_args: Iterable[str] = (),
    platform: str,
    base_image_id: str | None = None,
) -> str:
    """sha256 over everything that decides the image: files (path, mode, bytes), build args,
    the *names* of secret build args (a secret's value never enters the hash), platform and base.
    """
    digest = hashlib.sha256()

    def put(*parts: str) -> None:
        for part in parts:
            digest.update(part.encode("utf-8", "surrogateescape"))
            digest.update(b"\0")

    put(CONTEXT_HASH_VERSION, "dockerfile", context.dockerfile)
    for rel in context.paths:
        path = context.root / rel
        info = path.lstat()
        mode = oct(stat.S_IMODE(info.st_mode))
        name = PurePosixPath(*Path(rel).parts).as_posix()
        if stat.S_ISLNK(info.st_mode):
            put("link", name, os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            put("dir", name, mode)
        elif stat.S_ISREG(info.st_mode):
            file_digest = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    file_digest.update(chunk)
            put("file", name, mode, file_digest.hexdigest())
        # sockets and fifos are not sent by docker
    for key in sorted(buildargs):
        put("arg", key, buildargs[key])
    for key in sorted(set(secret_args)):
        put("secret-arg", key, "set")
    put("platform", platform, "base", base_image_id or "")
    return digest.hexdigest()


# --- tags ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagChoice:
    tag: str
    source: str  # --tag | image.tag | git | git-dirty | content
    reason: str = ""  # why git was not used as is


def _git(args: list[str], cwd: Path) -> str | None:
    from rpdeploy.secrets import child_environment

    env = child_environment(os.environ, extra={"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False, env=env)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _porcelain_paths(output: str) -> list[str]:
    """Paths from ``git status --porcelain -z`` (both sides of a rename)."""
    entries = output.split("\0")
    paths: list[str] = []
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":  # a rename/copy is followed by its source path
            if index < len(entries) and entries[index]:
                paths.append(entries[index])
            index += 1
    return paths


def git_tag(context: BuildContext, *, config_path: Path | None = None) -> tuple[str, str] | None:
    """(short sha of HEAD, "" if clean else why not) for the repository holding the context; None outside git."""
    from docker.utils.build import PatternMatcher

    top_text = _git(["rev-parse", "--show-toplevel"], context.root)
    sha = _git(["rev-parse", "--short", "HEAD"], context.root)
    if not top_text or not sha:
        return None
    top = Path(top_text.strip()).resolve()
    sha = sha.strip()
    try:
        rel_root = context.root.resolve().relative_to(top)
    except ValueError:
        return None
    prefix = "" if rel_root == Path(".") else rel_root.as_posix().rstrip("/") + "/"
    tracked_text = _git(["ls-files", "-z", "--", prefix or "."], top)
    if tracked_text is None:
        return None
    tracked = set(filter(None, tracked_text.split("\0")))
    for rel in context.files:
        if prefix + PurePosixPath(*Path(rel).parts).as_posix() not in tracked:
            return sha, f"{rel} is not committed"
    watched = [prefix or "."]
    config_rel: str | None = None
    if config_path is not None:
        try:
            config_rel = config_path.resolve().relative_to(top).as_posix()
            watched.append(config_rel)
        except ValueError:
            config_rel = None
    status = _git(["status", "--porcelain", "-z", "--untracked-files=all", "--", *watched], top)
    if status is None:
        return None
    matcher = PatternMatcher(list(context.patterns))
    for changed in _porcelain_paths(status):
        if changed == config_rel:
            return sha, f"{config_rel} has uncommitted changes"
        if changed.startswith(prefix) or not prefix:
            inside = changed[len(prefix) :]
            # Changes docker would not send (e.g. __pycache__, test_input.json) do not count.
            if inside == context.dockerfile or not matcher.matches(inside):
                return sha, f"{inside} has uncommitted changes"
    return sha, ""


def choose_tag(
    image: ImageConfig,
    context: BuildContext,
    digest: str,
    *,
    explicit: str | None = None,
    platform: str | None = None,
    config_path: Path | None = None,
) -> TagChoice:
    """The tag for this build; see the module docstring for the rule. Never ``latest``."""
    from rpdeploy.config import TagPolicy

    if explicit:
        problem = tag_problem(explicit)
        if problem:
            raise ConfigError(f"--tag: {problem}")
        return TagChoice(explicit, "--tag")
    if image.tag:
        return TagChoice(image.tag, "image.tag")
    content = TagChoice(f"c-{digest[:12]}", "content")
    if image.tag_policy is TagPolicy.CONTENT:
        return content
    found = git_tag(context, config_path=config_path)
    if found is None:
        return TagChoice(content.tag, "content", "the worker folder is not in a git work tree with a commit")
    sha, dirty = found
    if not dirty and platform is not None and platform != image.platform:
        dirty = f"--platform {platform} differs from image.platform"
    if dirty:
        return TagChoice(f"{sha}-dirty-{digest[:8]}", "git-dirty", dirty)
    return TagChoice(sha, "git")


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
    the network (model.config_file, the HF cache, the built-in table: see ``rpdeploy.fit``), else
    from the parameter count in the model's name."""
    from rpdeploy import fit
    from rpdeploy.errors import RpdeployError

    reporter = reporter or NullReporter()
    try:
        found = fit.load_arch(config, offline=True, environ=environ, reporter=reporter)
        if found.arch is not None:
            return fit.estimate(config, found.arch).weight_bytes_total
    except RpdeployError as exc:
        reporter.debug(f"model size from its architecture: {exc.message}")
    return estimate_model_bytes(config.model)


def _event_error(event: Mapping[str, Any]) -> str | None:
    """The message of an ``error``/``errorDetail`` event, or None."""
    detail = event.get("errorDetail")
    if isinstance(detail, Mapping) and detail.get("message"):
        return str(detail["message"]).strip()
    if event.get("error"):
        return str(event["error"]).strip()
    return None


class BuildLog:
    """Reads the build's event stream: lines to the reporter, steps counted, errors raised."""

    def __init__(self, reporter: Reporter, dockerfile: Path) -> None:
        self.reporter = reporter
        self.dockerfile = dockerfile
        self.step: str | None = None  # "Step 7/12 : RUN ..."
        self.steps = 0
        self.cached = 0
        self.image_id: str | None = None
        self.tail: deque[str] = deque(maxlen=LOG_TAIL)
        self._partial = ""
        self._seen_from = False

    def _line(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line.strip():
            return
        self.reporter.log_line(line)
        self.tail.append(line)
        match = _STEP.match(line)
        if match:
            self.step = line
            instruction = (match.group(3).split() or [""])[0].upper()
            # FROM and the ARGs before the first FROM are never cached or run: they do not count.
            if instruction == "FROM":
                self._seen_from = True
            elif self._seen_from or instruction != "ARG":
                self.steps += 1
        elif line.strip() == "---> Using cache":
            self.cached += 1

    def feed(self, event: Mapping[str, Any]) -> None:
        error = _event_error(event)
        if error is not None:
            self.flush()
            raise self.failure(error)
        chunk = event.get("stream")
        if isinstance(chunk, str):
            lines = (self._partial + chunk).split("\n")
            self._partial = lines.pop()
            for line in lines:
                self._line(line)
        status = event.get("status")
        if isinstance(status, str) and status.strip():
            self.reporter.log_line(status if not event.get("id") else f"{event['id']}: {status}")
        aux = event.get("aux")
        if isinstance(aux, Mapping) and isinstance(aux.get("ID"), str):
            self.image_id = aux["ID"]

    def flush(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""

    def failure(self, message: str) -> DockerError:
        where = "before the first step"
        if self.step:
            match = _STEP.match(self.step)
            assert match is not None
            where = f"at step {match.group(1)}/{match.group(2)} ({match.group(3).strip()})"
        lines = [f"the image build failed {where}: {message}"]
        tail = [line for line in self.tail if line != self.step]
        if tail:
            lines.append("last lines of output:")
            lines += [f"  | {line}" for line in tail]
        return DockerError(
            "\n".join(lines),
            hint=f"fix that step in {self.dockerfile} (or what it runs) and run `rpdeploy build` again; "
            "the whole build log is above",
        )


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
    seconds = time.monotonic() - started
    return BuildResult(
        image=plan.ref,
        image_id=str(built["Id"]),
        tags=tuple(sorted(t for t in built.get("RepoTags") or () if t.startswith(f"{plan.name}:"))),
        size=int(built.get("Size") or 0),
        context_hash=plan.context_hash,
        tag_source=plan.tag.source,
        platform=plan.platform,
        skipped=False,
        seconds=round(seconds, 3),
        steps=log.steps,
        cached_steps=log.cached,
    )


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
    return BuildResult(
        image=plan.ref,
        image_id=str(found["Id"]),
        tags=tuple(sorted(t for t in found.get("RepoTags") or () if t.startswith(f"{plan.name}:"))),
        size=int(found.get("Size") or 0),
        context_hash=plan.context_hash,
        tag_source=plan.tag.source,
        platform=plan.platform,
        skipped=True,
        seconds=round(time.monotonic() - started, 3),
    )


# --- push ---------------------------------------------------------------------------------

FailureKind = Literal["auth", "unreachable", "transient", "other"]

_AUTH = re.compile(
    r"unauthorized|denied|authentication required|incorrect username or password|\b401\b|\b403\b", re.IGNORECASE
)
_UNREACHABLE = re.compile(
    r"connection refused|no such host|network is unreachable|no route to host|i/o timeout|"
    r"server gave http response to https client|dial tcp",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"connection reset|connection refused|broken pipe|\bEOF\b|timeout|timed out|temporar|"
    r"status(?: code)?:? 5\d\d\b|internal server error|bad gateway|service unavailable|gateway time-?out|"
    # Go's net/http says "server closed idle connection" when a kept-alive connection is dropped.
    r"i/o timeout|tls handshake|closed idle connection",
    re.IGNORECASE,
)


def classify_failure(message: str) -> FailureKind:
    """What a registry error message means for us: give up with a hint, or try again."""
    if _AUTH.search(message):
        return "auth"
    transient = bool(_TRANSIENT.search(message))
    if _UNREACHABLE.search(message):
        # Refused or timed out may be a blip worth retrying; an unknown host is not.
        return "transient" if transient else "unreachable"
    return "transient" if transient else "other"


class _RetryablePush(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _registry_error(kind: FailureKind, message: str, auth: RegistryAuth, doing: str) -> RegistryError:
    """A RegistryError for ``doing`` ("pushing NAME", "logging in") that failed with ``message``."""
    registry = auth.registry
    if kind == "auth":
        return RegistryError(
            f"{doing}: the registry {registry} refused the credentials ({auth.describe()}): {message}",
            hint="check the user name and password (or token) and that they may push to this repository; "
            + login_hint(registry),
        )
    if kind in ("unreachable", "transient") and _UNREACHABLE.search(message):
        return RegistryError(
            f"{doing}: cannot reach the registry {registry}: {message}",
            hint=f"check image.registry in deploy.yaml ({registry}) and that the registry is up and reachable "
            "from the Docker engine (proxy, firewall, DNS)",
        )
    return RegistryError(f"{doing} failed: {message}")


def _pause_text(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"


def verify_login(
    api: Any, auth: RegistryAuth, *, retry: RetryPolicy, reporter: Reporter, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Have the engine log in to the registry once, before a slow build: bad credentials fail now."""
    import tempfile

    import docker

    if auth.identity_token is not None or auth.password is None or not auth.username:
        reporter.debug(f"registry login not checked in advance ({auth.source} holds a token)")
        return
    reporter.info(f"Logging in to {auth.registry} ({auth.describe()})")
    doing = f"logging in to {auth.registry}"
    with tempfile.TemporaryDirectory(prefix="rpdeploy-login-") as scratch:
        # An empty client config for the SDK's login: it would otherwise consult the user's
        # credential helpers first (and fail on a broken one) although we pass the credentials.
        # The SDK then keeps only this login for the build's X-Registry-Config header.
        empty = Path(scratch) / "config.json"
        empty.write_text("{}")
        for attempt in range(1, retry.attempts + 1):
            try:
                with _engine_errors(doing):
                    api.login(
                        auth.username,
                        password=auth.password.reveal(),
                        registry=auth.server,
                        reauth=True,
                        dockercfg_path=str(empty),
                    )
                return
            except DockerError as exc:
                if not isinstance(exc.__cause__, docker.errors.APIError):
                    raise
                message = _api_message(exc.__cause__)
            kind = classify_failure(message)
            if kind != "transient" or attempt == retry.attempts:
                raise _registry_error(kind, message, auth, doing)
            pause = retry.pause(attempt)
            reporter.warn(f"login to {auth.registry} failed ({message}); retrying in {_pause_text(pause)}")
            sleep(pause)


@dataclass
class _Layer:
    state: str = ""
    current: int = 0
    total: int = 0
    sent: bool = False  # reached "Pushed" in some attempt
    present: bool = False  # already in the registry / mounted


@dataclass
class _PushProgress:
    layers: dict[str, _Layer] = field(default_factory=dict)
    aux: dict[str, Any] | None = None

    def feed(self, event: Mapping[str, Any], transfer: Transfer, reporter: Reporter) -> None:
        aux = event.get("aux")
        if isinstance(aux, Mapping) and aux.get("Digest"):
            self.aux = dict(aux)
            return
        layer_id, status = event.get("id"), event.get("status")
        if not isinstance(status, str):
            return
        if not layer_id:
            reporter.debug(status)
            return
        layer = self.layers.setdefault(str(layer_id), _Layer())
        layer.state = status
        detail = event.get("progressDetail") or {}
        if status == "Pushing":
            layer.current = int(detail.get("current") or layer.current)
            layer.total = int(detail.get("total") or layer.total)
            # The engine counts tar bytes against the layer's size: clamp so a bar never passes 100 %.
            shown = min(layer.current, layer.total) if layer.total else layer.current
            transfer.update(str(layer_id), description="Pushing", completed=shown, total=layer.total or None)
        elif status == "Pushed":
            layer.sent = True
            transfer.finish(str(layer_id), description="Pushed")
        elif status == "Layer already exists" or status.startswith("Mounted from"):
            if not layer.sent:
                layer.present = True
            transfer.finish(str(layer_id), description=status)
        else:  # Preparing, Waiting, Retrying in N seconds
            transfer.update(str(layer_id), description=status)

    @property
    def bytes_pushed(self) -> int:
        return sum(layer.total or layer.current for layer in self.layers.values() if layer.sent)


def push_image(
    api: Any,
    name: str,
    tag: str,
    auth: RegistryAuth,
    *,
    reporter: Reporter | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushResult:
    """Push ``name:tag`` and return it by digest. Reads the whole stream; retries transient failures."""
    import docker
    import requests
    import urllib3

    reporter = reporter or NullReporter()
    retry = retry or RetryPolicy()
    doing = f"pushing {name}:{tag}"
    started = time.monotonic()
    progress = _PushProgress()
    attempt = 0
    with reporter.transfer(f"Pushing {name}:{tag} to {auth.registry}") as transfer:
        while True:
            attempt += 1
            progress.aux = None
            try:
                try:
                    events = api.push(name, tag=tag, stream=True, decode=True, auth_config=auth.auth_config())
                    for event in events:
                        error = _event_error(event)
                        if error is not None:
                            kind = classify_failure(error)
                            if kind == "transient":
                                raise _RetryablePush(error)
                            raise _registry_error(kind, error, auth, doing)
                        progress.feed(event, transfer, reporter)
                except docker.errors.NotFound as exc:
                    raise DockerError(f"cannot push {name}:{tag}: {_api_message(exc)}") from exc
                except docker.errors.APIError as exc:
                    message = _api_message(exc)
                    kind = classify_failure(message)
                    if kind == "transient":
                        raise _RetryablePush(message) from exc
                    raise _registry_error(kind, message, auth, doing) from exc
                except (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError) as exc:
                    raise _RetryablePush(f"no progress from the engine for {API_TIMEOUT}s") from exc
                except (docker.errors.DockerException, requests.RequestException, urllib3.exceptions.HTTPError) as exc:
                    raise DockerError(
                        f"pushing {name}:{tag}: the Docker engine stopped answering ({_reason(exc)})",
                        hint=_engine_hint("the engine", ""),
                    ) from exc
                if progress.aux is None:
                    raise _RetryablePush("the push ended without a digest (incomplete stream)")
                break
            except _RetryablePush as exc:
                if attempt >= retry.attempts:
                    raise _registry_error(
                        classify_failure(exc.message),
                        f"{exc.message} (gave up after {attempt} attempts)",
                        auth,
                        doing,
                    ) from None
                pause = retry.pause(attempt)
                reporter.warn(
                    f"push failed ({exc.message}); retrying in {_pause_text(pause)} "
                    f"(attempt {attempt + 1} of {retry.attempts})"
                )
                sleep(pause)
    aux = progress.aux
    digest = str(aux.get("Digest", ""))
    if not _DIGEST.match(digest):
        raise RegistryError(f"the registry answered the push of {name}:{tag} with an unexpected digest {digest!r}")
    with _engine_errors("inspecting the pushed image"):
        local = api.inspect_image(f"{name}:{tag}")
    layers = progress.layers.values()
    return PushResult(
        image=f"{name}@{digest}",
        tag=tag,
        digest=digest,
        size=int(local.get("Size") or 0),
        bytes_pushed=progress.bytes_pushed,
        layers_pushed=sum(1 for layer in layers if layer.sent),
        layers_present=sum(1 for layer in layers if layer.present),
        attempts=attempt,
        seconds=round(time.monotonic() - started, 3),
    )


# --- the command's core -------------------------------------------------------------------


def _image_config(config: Config) -> ImageConfig:
    if not config.method.builds_image or config.image is None:
        raise ConfigError(
            f"method {config.method.value} runs a prebuilt image: there is nothing to build",
        )
    return config.image


def refuse_placeholder(image: ImageConfig) -> None:
    """A push to the ``change-me/`` repository `rpdeploy init` writes would go nowhere useful."""
    from rpdeploy.scaffold import PLACEHOLDER_NAMESPACE

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
    from rpdeploy.ledger import Ledger

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
