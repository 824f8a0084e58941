"""`rpdeploy deploy`: the eleven-step procedure as resumable stages.

Each stage declares its inputs; their fingerprint goes into the ledger with the stage's
outputs. A stage that is done and whose inputs did not change is skipped (RunPod stages
first check that what they made still exists), so a re-run does nothing, and a run after a
failure starts again at the failed stage. Stages read earlier stages' outputs from the
context, never recompute them. A failure is raised as ``StageError`` naming the stage,
after the ledger records it.

RunPod stays the source of truth: the template and endpoint are always found by name, so
a lost ledger, a crash between "create" and "record", or a SIGKILL at any point converges
on the same objects instead of duplicating them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpdeploy.deploy.ledger import Ledger, StageRecord
from rpdeploy.deploy.lock import DeployLock
from rpdeploy.errors import ConfigError, RpdeployError, StageError
from rpdeploy.methods import Method
from rpdeploy.output import NullReporter, Reporter
from rpdeploy.secrets import Secret

if TYPE_CHECKING:
    from rpdeploy.backend.integration import IntegrationResult
    from rpdeploy.config import Config
    from rpdeploy.deploy.smoke import ReleaseCheck
    from rpdeploy.preflight.check import CheckResult as FitCheck
    from rpdeploy.preflight.gpus import GpuSelection
    from rpdeploy.runpod.controlplane import ControlPlane
    from rpdeploy.runpod.deployment import Ownership
    from rpdeploy.runpod.models import Endpoint, Template, TemplateSpec


@dataclass(frozen=True)
class DeployOptions:
    force: bool = False
    from_stage: str | None = None
    only: str | None = None
    skip_fit_check: bool = False
    tag: str | None = None
    no_cache: bool = False
    #: Take over a same-named endpoint/template that does not carry this deployment's mark.
    adopt: bool = False


@dataclass
class Context:
    """What a stage may use: config, reporter, the ledger, and earlier stages' outputs."""

    config: Config
    reporter: Reporter
    ledger: Ledger
    options: DeployOptions
    environ: Mapping[str, str]
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Each stage's ledger record as this run found it (None: never ran), before it is overwritten.
    previous: dict[str, StageRecord | None] = field(default_factory=dict)
    _cp: ControlPlane | None = None
    _endpoints: list[Endpoint] | None = None
    _templates: list[Template] | None = None
    _fit: FitCheck | None = None
    _owner: Ownership | None = None
    _gpus: GpuSelection | None = None

    def cp(self) -> ControlPlane:
        if self._cp is None:
            from rpdeploy.runpod.deployment import connect

            self._cp = connect(self.config, self.environ, reporter=self.reporter)
        return self._cp

    def endpoints(self) -> list[Endpoint]:
        if self._endpoints is None:
            self._endpoints = self.cp().list_endpoints()
        return self._endpoints

    def templates(self) -> list[Template]:
        if self._templates is None:
            self._templates = self.cp().list_templates()
        return self._templates

    def owner(self) -> Ownership:
        """What is this deployment's on RunPod: its mark, and the ids the ledger had when the run began."""
        if self._owner is None:
            from rpdeploy.runpod.deployment import ownership

            self._owner = ownership(self.config, ledger=self.ledger, adopt=self.options.adopt)
        return self._owner

    def gpus(self) -> GpuSelection:
        """The GPU selection from RunPod's live pools, read once per run (a pool can change between runs)."""
        if self._gpus is None:
            from rpdeploy.runpod.deployment import resolve_gpus

            self._gpus = resolve_gpus(self.cp(), self.config, self.reporter)
        return self._gpus

    def api(self) -> str:
        """The RunPod API this run speaks (runpod.api): a switch re-runs the RunPod stages."""
        return self.config.runpod.resolved_api(self.environ).value

    def changed_runpod(self) -> None:
        """Forget cached reads after a mutation."""
        self._endpoints = None
        self._templates = None

    def secret(self, ref: Any, field_name: str) -> Secret:
        secret: Secret = ref.resolve(base_dir=self.config.base_dir, environ=self.environ, field=field_name)
        return secret

    def api_key(self) -> Secret:
        return self.secret(self.config.runpod.api_key, "runpod.api_key")

    def fit_check(self) -> FitCheck:
        """The fit and cost check, done once per run (the preflight and stage 7 share it)."""
        if self._fit is None:
            from rpdeploy.preflight.check import check_deployment

            self._fit = check_deployment(self.config, reporter=self.reporter, environ=self.environ)
        return self._fit

    def init_timeout(self) -> int | None:
        """RUNPOD_INIT_TIMEOUT for the template (None: RunPod's default is enough).

        From the cold-start estimate, which needs the model's size; an unchanged deploy.yaml reuses
        what stage 7 recorded, so a re-run with nothing new does not look the model up again.
        """
        if self.config.endpoint.init_timeout is not None:
            return self.config.endpoint.init_timeout
        record = self.ledger.stages.get("gpu")
        if (
            record is not None
            and record.status == "done"
            and "init_timeout" in record.outputs
            and record.fingerprint == fingerprint(_gpu_inputs(self))
        ):
            recorded = record.outputs["init_timeout"]
            return int(recorded) if recorded is not None else None
        return self.fit_check().cost.cold_start_plan.init_timeout

    def close(self) -> None:
        if self._cp is not None:
            self._cp.close()
            self._cp = None


def digest(secret: Secret | str) -> str:
    """A fingerprint component for a secret: its hash, never its value."""
    value = secret.reveal() if isinstance(secret, Secret) else secret
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def fingerprint(inputs: Mapping[str, Any]) -> str:
    text = json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- stages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    applies: Callable[[Config], bool]
    inputs: Callable[[Context], dict[str, Any]]
    run: Callable[[Context], dict[str, Any]]
    #: For a stage about to be skipped: does what it made still exist? (RunPod stages)
    still_valid: Callable[[Context, dict[str, Any]], bool] | None = None
    #: For a stage whose inputs include the outside world it changes (the backend's env file):
    #: its inputs as they are after it ran, which is what the next run will find and compare.
    settle: Callable[[Context, dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    #: The seed's step number, when it is not the stage's place in STAGES (step 11 runs in two halves).
    step: str = ""


def _builds(config: Config) -> bool:
    return config.method.builds_image


def _has_backend(config: Config) -> bool:
    return config.backend is not None


def _always(config: Config) -> bool:
    return True


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


# 5: account: key verified, GPU pool resolved, registry credentials registered.


def _account_inputs(ctx: Context) -> dict[str, Any]:
    from rpdeploy.runpod.deployment import registry_credentials

    creds = registry_credentials(ctx.config, ctx.environ)
    return {
        "api_url": ctx.config.runpod.resolved_api_url(ctx.environ),
        "api": ctx.api(),
        "key": digest(ctx.api_key()),
        "gpu": ctx.config.endpoint.gpu_type.id,
        "registry": None
        if creds is None
        else [ctx.config.image.registry if ctx.config.image else "", creds[0], digest(creds[1])],
    }


def _account_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.runpod.deployment import ensure_registry_auth, registry_credentials

    cp = ctx.cp()
    account = cp.account()
    selection = ctx.gpus()
    auth_id = ""
    creds = registry_credentials(ctx.config, ctx.environ)
    if creds is not None and ctx.config.image is not None:
        # The stage runs again only when its inputs changed, a password change included:
        # that is the one moment to send the credentials again (RunPod never shows them).
        auth, _ = ensure_registry_auth(
            cp, registry=ctx.config.image.registry, username=creds[0], password=creds[1], refresh=True
        )
        auth_id = auth.id
    return {"account_id": account.id, "gpus": selection.to_dict(), "registry_auth_id": auth_id}


# 6: template.


def _image(ctx: Context) -> str:
    from rpdeploy.runpod.deployment import worker_image

    pushed = ctx.outputs.get("push", {}).get("image")
    return worker_image(ctx.config, pushed)


def _template_spec(ctx: Context) -> TemplateSpec:
    from rpdeploy.runpod.deployment import desired_template

    return desired_template(
        ctx.config,
        image=_image(ctx),
        registry_auth_id=ctx.outputs.get("account", {}).get("registry_auth_id", ""),
        environ=ctx.environ,
        init_timeout=ctx.init_timeout(),
    )


def _template_inputs(ctx: Context) -> dict[str, Any]:
    # What is sent to RunPod, field for field (secret values as digests): any change of it is a
    # new release, and the endpoint check keys on this stage's fingerprint.
    from rpdeploy.runpod.deployment import hf_token_secret

    spec = _template_spec(ctx)
    hf_secret = hf_token_secret(ctx.config, ctx.environ)
    return {
        "api_url": ctx.config.runpod.resolved_api_url(ctx.environ),
        "api": ctx.api(),
        "name": spec.name,
        "image": spec.image,
        "env": [[var.key, digest(var.reveal()) if var.secret else var.reveal()] for var in spec.env],
        "disk": spec.container_disk_gb,
        "registry_auth_id": spec.registry_auth_id,
        "docker_args": spec.docker_args,
        "release": spec.release,
        "hf_token_secret": None if hf_secret is None else [hf_secret[0], digest(hf_secret[1])],
    }


def _template_run(ctx: Context) -> dict[str, Any]:
    """The container the workers run: saved as a template (GraphQL), or only settled here and sent
    with the endpoint by stage 8 (REST v2 keeps no template link: ``rpdeploy.runpod.rest``)."""
    from rpdeploy.runpod.deployment import apply_template, ensure_hf_secret, plan_template

    on_endpoint = ctx.cp().container_on_endpoint
    spec, live, operation = plan_template(
        ctx.config,
        templates=ctx.templates(),
        endpoints=ctx.endpoints(),
        image=_image(ctx),
        owner=ctx.owner(),
        registry_auth_id=ctx.outputs.get("account", {}).get("registry_auth_id", ""),
        environ=ctx.environ,
        init_timeout=ctx.init_timeout(),
        container_on_endpoint=on_endpoint,
    )
    # model.hf_token as a RunPod secret: once the template is known to be ours, and before the
    # template that references it is saved. The value cannot be read back, so it is sent again
    # whenever this stage runs (the token changed, or the ledger is new).
    secret, secret_op = ensure_hf_secret(ctx.cp(), ctx.config, refresh=True, environ=ctx.environ)
    if secret_op is not None:
        ctx.reporter.info(
            f"{'Created' if secret_op.kind == 'create-secret' else 'Updated'} RunPod secret {secret_op.target!r}"
        )
    if on_endpoint:
        # Nothing reached RunPod yet: the release goes with the endpoint (stage 8), which records it.
        return {
            "template_id": "",
            "image": spec.image,
            "operation": None,
            "release": spec.release,
            "hf_token_secret": secret.name if secret else None,
        }
    template = apply_template(ctx.cp(), spec, live, ctx.reporter)
    if operation is not None:
        ctx.changed_runpod()
    # What the endpoint runs from now on, whatever follows (`rpdeploy smoke-test` checks for it).
    ctx.ledger.extra[RELEASE_KEY] = spec.release
    return {
        "template_id": template.id,
        "image": spec.image,
        "operation": operation.kind if operation else None,
        "release": spec.release,
        "hf_token_secret": secret.name if secret else None,
    }


def _template_still_valid(ctx: Context, outputs: dict[str, Any]) -> bool:
    if not outputs.get("template_id"):
        return True  # nothing was made on RunPod (REST v2: the endpoint stage checks the endpoint)
    return any(t.id == outputs.get("template_id") for t in ctx.templates())


# 7: GPU: the endpoint spec, the fit check and the cost preview. No mutation.


def _gpu_inputs(ctx: Context) -> dict[str, Any]:
    # Config only (no earlier outputs): the fit preflight compares this fingerprint before
    # any stage has run, to skip re-checking an unchanged deploy.yaml.
    return {
        "endpoint": ctx.config.endpoint.model_dump(mode="json", exclude={"env"}),
        "model": ctx.config.model.model_dump(mode="json", exclude={"hf_token"}),
    }


def _gpu_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.preflight.check import format_check
    from rpdeploy.preflight.cost import format_money

    result = ctx.fit_check()
    # The whole report with --verbose (or `rpdeploy check`); the verdict and the bill always.
    for line in format_check(result):
        ctx.reporter.debug(line)
    cost = result.cost
    fit_line = result.fit.summary if result.fit is not None else "fit unknown: no model architecture found"
    # The summary starts with the verdict itself ("fits: ..."); say it once.
    said = fit_line.startswith(result.verdict.replace("-", " ") + ":")
    ctx.reporter.info(fit_line if said else f"{result.verdict}: {fit_line}")
    if cost.price_per_hour is not None:
        floor = format_money(cost.floor_per_month) if cost.floor_per_month is not None else "?"
        ctx.reporter.info(
            f"cost: {format_money(cost.price_per_hour)}/hour per running worker; always-on floor {floor}/month"
        )
    for warning in result.warnings:
        ctx.reporter.warn(warning)
    return {
        "gpus": ctx.outputs.get("account", {}).get("gpus"),
        "fit": result.verdict,
        "kv_capacity_tokens": result.fit.kv_capacity_tokens if result.fit is not None else None,
        "floor_per_month": cost.floor_per_month,
        "cold_start_seconds": round(cost.cold_start.seconds, 1),
        "weights": cost.cold_start.strategy,
        "init_timeout": cost.cold_start_plan.init_timeout,
        "warnings": list(result.warnings),
    }


# 8: endpoint.


def _endpoint_inputs(ctx: Context) -> dict[str, Any]:
    from rpdeploy.runpod.deployment import desired_endpoint

    spec = desired_endpoint(
        ctx.config,
        template_id=ctx.outputs.get("template", {}).get("template_id", ""),
        # Live on every run: a card RunPod added to the pool must be excluded even when
        # nothing in deploy.yaml changed.
        gpus=ctx.gpus(),
    )
    return {
        "api_url": ctx.config.runpod.resolved_api_url(ctx.environ),
        "api": ctx.api(),
        "spec": spec.settings(),
        "model_references": spec.model_references,
        "network_volume_ids": spec.network_volume_ids,
        # Under REST the container goes with the endpoint: a new image or env is this stage's input.
        "container": _template_inputs(ctx) if ctx.api() == "rest" else None,
    }


def _endpoint_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.runpod.deployment import apply_endpoint, desired_template, endpoint_urls, plan_endpoint_only

    container = None
    if ctx.cp().container_on_endpoint:
        # What stage 6 settled, sent with the endpoint itself (REST v2).
        container = desired_template(
            ctx.config,
            image=_image(ctx),
            registry_auth_id=ctx.outputs.get("account", {}).get("registry_auth_id", ""),
            environ=ctx.environ,
            init_timeout=ctx.init_timeout(),
        )
    spec, live, operation = plan_endpoint_only(
        ctx.config,
        endpoints=ctx.endpoints(),
        templates=ctx.templates(),
        template_id=ctx.outputs["template"]["template_id"],
        gpus=ctx.gpus(),
        owner=ctx.owner(),
        container=container,
        cp=ctx.cp(),
    )
    for change in operation.changes if operation and live is not None else ():
        ctx.reporter.info(f"  {change}")
    endpoint = apply_endpoint(ctx.cp(), spec, live, ctx.reporter)
    if operation is not None:
        ctx.changed_runpod()
    if container is not None:
        # REST v2: the release reached RunPod with the endpoint (`rpdeploy smoke-test` checks for it).
        ctx.ledger.extra[RELEASE_KEY] = container.release
    urls = endpoint_urls(ctx.config, endpoint.id, ctx.environ)
    return {
        "endpoint_id": endpoint.id,
        "operation": operation.kind if operation else None,
        "urls": {"run": urls.run, "runsync": urls.runsync, "health": urls.health, "openai_base": urls.openai_base},
    }


def _endpoint_still_valid(ctx: Context, outputs: dict[str, Any]) -> bool:
    template_id = ctx.outputs.get("template", {}).get("template_id")
    # REST v2 shows no template link: the endpoint's existence is what there is to check.
    return any(
        e.id == outputs.get("endpoint_id") and (not template_id or e.template_id == template_id)
        for e in ctx.endpoints()
    )


# 9, 10: backend env and restart.


def _backend_env_inputs(ctx: Context) -> dict[str, Any]:
    from rpdeploy.backend import observe

    backend = ctx.config.backend
    assert backend is not None
    return {
        # The request stage 11 sends does not change the env.
        "backend": backend.model_dump(mode="json", exclude={"integration_test"}),
        "endpoint_id": ctx.outputs.get("endpoint", {}).get("endpoint_id"),
        "endpoint_url": ctx.config.runpod.resolved_endpoint_url(ctx.environ),
        "key": digest(_backend_key(ctx)),
        # What is really on the host: an env file someone (or something) changed since the last
        # run makes the stage run again and put our values back, instead of "unchanged".
        "on_host": observe(ctx.config, reporter=ctx.reporter).fingerprint(),
    }


def _backend_key(ctx: Context) -> Secret:
    from rpdeploy.backend import backend_key

    return backend_key(ctx.config, ctx.environ)


def _backend_env_settle(ctx: Context, inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    return {**inputs, "on_host": outputs["on_host"]}


def _backend_env_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.backend import BackendValues, configure

    values = BackendValues.for_endpoint(ctx.config, ctx.outputs["endpoint"]["endpoint_id"], _backend_key(ctx))
    result = configure(ctx.config, values, reporter=ctx.reporter)
    # An earlier attempt that was killed (or failed) after writing the file leaves it as wanted
    # and the service still on its old env: "nothing to write" then does not mean "nothing to
    # load", and the restart stage must restart.
    previous = ctx.previous.get("backend-env")
    unfinished = previous is not None and previous.status != "done"
    if unfinished and not result.changed:
        ctx.reporter.info(f"{result.env_file} already holds these values; restarting in case the last run did not")
    assert result.on_host is not None
    return {
        "host": result.host,
        "mode": result.mode,
        "env_file": result.env_file,
        "backup": result.backup,
        "changed": result.changed or unfinished,
        "on_host": result.on_host.fingerprint(),
    }


def _backend_restart_inputs(ctx: Context) -> dict[str, Any]:
    backend = ctx.config.backend
    assert backend is not None
    return {"env": ctx.outputs.get("backend-env", {}), "restart": backend.restart_command, "health": backend.health_url}


def _backend_restart_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.backend import BackendRolledBackError, ConfigureResult, check, restart_or_rollback
    from rpdeploy.errors import BackendError

    env = ctx.outputs.get("backend-env", {})
    if not env.get("changed"):
        # Nothing new to load: check the service instead of restarting production for nothing.
        status = check(ctx.config, reporter=ctx.reporter)
        if not status.healthy:
            raise BackendError(
                f"{status.service} on {status.host} is not healthy "
                f"(state {status.state}, health {status.health_status})",
                hint="its env already points at the endpoint; see `rpdeploy backend check` and the service's journal",
            )
        return {"restarted": False, "healthy": True}
    configured = ConfigureResult(
        host=str(env.get("host", "")),
        mode=str(env.get("mode", "")),
        env_file=str(env["env_file"]),
        changed=True,
        dry_run=False,
        keys=(),
        diff="",
        backup=env.get("backup"),
    )
    try:
        result = restart_or_rollback(ctx.config, configured, reporter=ctx.reporter)
    except BackendRolledBackError as exc:
        if exc.rollback is not None:
            # The previous env file is back on the host: the env stage's record no longer says
            # what is there, and a re-run that skipped it would restart onto the old endpoint.
            stale = ctx.ledger.stages.get("backend-env")
            if stale is not None:
                stale.status = "failed"
                stale.error = "rolled back by backend-restart"
        raise
    return {"restarted": True, "healthy": result.healthy, "seconds": round(result.seconds, 3)}


# 11, first half (it runs after 8, before 9): the endpoint check. Verify, then cut over: the
# backend is pointed at the endpoint only once the release this deploy made has answered.


def _sent(ctx: Context, stage: str) -> str | None:
    """What a RunPod stage sent (or found already there): its record's input fingerprint."""
    record = ctx.ledger.stages.get(stage)
    return record.fingerprint if record is not None and record.status == "done" else None


def _smoke_inputs(ctx: Context) -> dict[str, Any]:
    # The release and what was sent to RunPod, not which operations ran: any change that reaches
    # RunPod (the template's env, workers_max...) re-tests, and a re-run that sent nothing does not.
    return {
        "endpoint_id": ctx.outputs.get("endpoint", {}).get("endpoint_id"),
        "release": ctx.outputs.get("template", {}).get("release"),
        "template": _sent(ctx, "template"),
        "endpoint": _sent(ctx, "endpoint"),
        "settings": ctx.config.smoke_test.model_dump(mode="json"),
        "endpoint_url": ctx.config.runpod.resolved_endpoint_url(ctx.environ),
    }


def _release_check(ctx: Context, endpoint_id: str) -> ReleaseCheck | None:
    from rpdeploy.deploy.smoke import release_check

    expected = ctx.outputs.get("template", {}).get("release")
    if not expected:
        return None
    cp = ctx.cp()
    return release_check(ctx.config, str(expected), lambda: cp.rollout(endpoint_id))


def _smoke_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.deploy.smoke import SmokeSettings, run_smoke
    from rpdeploy.errors import SmokeTestError
    from rpdeploy.runpod.invoke import InvokeClient

    endpoint_id = ctx.outputs["endpoint"]["endpoint_id"]
    settings = ctx.config.smoke_test
    base = f"{ctx.config.runpod.resolved_endpoint_url(ctx.environ)}/{endpoint_id}"
    check = _release_check(ctx, endpoint_id)
    with InvokeClient(base, api_key=ctx.api_key()) as client:
        result = run_smoke(
            client,
            ctx.config.method,
            SmokeSettings(settings.prompt, settings.max_tokens, settings.timeout, settings.stream),
            model=ctx.config.model.public_name,
            target=endpoint_id,
            reporter=ctx.reporter,
            release=check,
        )
    if not result.passed:
        from rpdeploy.runpod.fleet import explain_failure

        failed = next(c for c in result.checks if not c.passed)
        which = f"release {check.expected}" if check is not None else f"endpoint {endpoint_id}"
        cutover = " The backend was not touched." if ctx.config.backend is not None else ""
        expected = check.expected if check is not None else None
        explain_failure(ctx.cp(), endpoint_id, failed.worker_id, failed.release, expected, ctx.reporter.warn)
        raise SmokeTestError(
            f"{which} failed the endpoint check: {failed.name}: {failed.message.rstrip('.')}.{cutover}",
            hint="`rpdeploy status` shows the endpoint's workers; fix the cause and run `rpdeploy deploy` again (it "
            "resumes here)",
        )
    outputs = result.summary()
    if result.release is not None:
        outputs["release_report"] = result.release.lines()
    return outputs


# 11, second half: through the backend, after 9 and 10.


def _integration_inputs(ctx: Context) -> dict[str, Any]:
    backend = ctx.config.backend
    assert backend is not None
    test = backend.integration_test
    return {
        "test": test.model_dump(mode="json") if test is not None else None,
        "headers": {
            name: digest(ctx.secret(value, f"backend.integration_test.headers.{name}"))
            for name, value in (test.headers.items() if test is not None else ())
            if not isinstance(value, str)
        },
        "smoke": _sent(ctx, "smoke-test"),
        "env": _sent(ctx, "backend-env"),
        "restart": ctx.outputs.get("backend-restart", {}),
    }


def _integration_run(ctx: Context) -> dict[str, Any]:
    from rpdeploy.backend.integration import run_integration_test
    from rpdeploy.errors import IntegrationTestError

    backend = ctx.config.backend
    assert backend is not None
    release = ctx.outputs.get("template", {}).get("release")
    if backend.integration_test is None:
        ctx.reporter.info(
            f"only the endpoint was tested (release {release}, stage smoke-test): set backend.integration_test in "
            "deploy.yaml to also test the backend's own API"
        )
        return {"tested": "endpoint only", "release": release}
    first = run_integration_test(ctx.config, reporter=ctx.reporter, environ=ctx.environ)
    if first.passed:
        ctx.reporter.success(f"integration test passed: {first.describe()}")
        return {"tested": "backend", "release": release, **_integration_outputs(first)}
    ctx.reporter.warn(f"integration test failed: {first.describe()}")
    env = ctx.outputs.get("backend-env", {})
    if not (env.get("changed") and env.get("backup")):
        raise IntegrationTestError(
            f"the integration test failed: {first.describe()}; the backend's env was not changed by this run, so "
            "there is nothing to roll back",
            hint="the backend cannot reach the model with its current env; see the service's logs on its host",
        )
    rolled, proven = _roll_back_backend(ctx, str(env["backup"]))
    if proven is not None and proven.passed:
        raise IntegrationTestError(
            f"the integration test failed with the new env: {first.describe()}. Rolled back: {rolled}; the same "
            f"test passes against the previous env ({proven.describe()})",
            hint="nothing is down: the backend runs its previous env again; find out why it could not reach the "
            "endpoint with the new one (its key, its URL), then run `rpdeploy deploy` again",
        )
    again = proven.describe() if proven is not None else "not run"
    raise IntegrationTestError(
        f"the integration test failed with the new env: {first.describe()}. Rolled back: {rolled}; but the test "
        f"fails against the previous env too ({again}): the backend may be down",
        hint=f"check {backend.service} on its host now (`rpdeploy backend check`, its journal)",
    )


def _integration_outputs(result: IntegrationResult) -> dict[str, Any]:
    return {"url": result.url, "where": result.where, "status": result.status, "seconds": result.seconds,
            "matched": result.message}  # fmt: skip


def _roll_back_backend(ctx: Context, backup: str) -> tuple[str, IntegrationResult | None]:
    """Restore this run's backup of the env and restart (as a failed restart does), then test again."""
    from rpdeploy.backend import rollback
    from rpdeploy.backend.integration import run_integration_test
    from rpdeploy.deploy.planning import _stamp_of
    from rpdeploy.errors import BackendError

    # The env file on the host is the previous one again: the records of 9 and 10 no longer say
    # what is there, and a re-run must write and restart again.
    for name in ("backend-env", "backend-restart"):
        record = ctx.ledger.stages.get(name)
        if record is not None:
            record.status = "failed"
            record.error = "rolled back by integration-test"
    ctx.ledger.save()
    try:
        restored = rollback(ctx.config, reporter=ctx.reporter, stamp=_stamp_of(backup))
    except BackendError as exc:
        return f"restoring the previous env failed: {exc.message}", None
    rolled = f"{restored.env_file} is its previous version again and the service was restarted"
    return rolled, run_integration_test(ctx.config, reporter=ctx.reporter, environ=ctx.environ)


STAGES: tuple[Stage, ...] = (
    Stage("handler", "write handler.py (and app.py)", _builds, _handler_inputs, _handler_run),
    Stage("dockerfile", "write the Dockerfile", _builds, _dockerfile_inputs, _dockerfile_run),
    Stage("build", "build the image", _builds, _build_inputs, _build_run),
    Stage("push", "push the image", _builds, _push_inputs, _push_run),
    Stage("account", "verify the RunPod account", _always, _account_inputs, _account_run),
    Stage("template", "create or update the template", _always, _template_inputs, _template_run, _template_still_valid),
    Stage("gpu", "check GPU, memory fit and cost", _always, _gpu_inputs, _gpu_run),
    Stage("endpoint", "create or update the endpoint", _always, _endpoint_inputs, _endpoint_run, _endpoint_still_valid),
    # Step 11 of the seed, first half: it runs here, before 9 and 10, and gates them.
    Stage("smoke-test", "check the new release answers", _always, _smoke_inputs, _smoke_run, step="11a"),
    Stage(
        "backend-env",
        "set the backend's env",
        _has_backend,
        _backend_env_inputs,
        _backend_env_run,
        settle=_backend_env_settle,
    ),
    Stage("backend-restart", "restart the backend", _has_backend, _backend_restart_inputs, _backend_restart_run),
    Stage(
        "integration-test",
        "call the backend's API through to the model",
        _has_backend,
        _integration_inputs,
        _integration_run,
        step="11b",
    ),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
#: ``Ledger.extra`` key: the release the endpoint's template names now (rpdeploy.runpod.release).
RELEASE_KEY = "release"
#: The seed's step number of each stage (the order they run in is STAGES').
STEPS = {
    stage.name: stage.step or str(1 + sum(1 for earlier in STAGES[:index] if not earlier.step))
    for index, stage in enumerate(STAGES)
}
#: What each stage proves when it is done (plan, status, README).
PROVES = {
    "handler": "the worker's code files exist (yours kept when edited)",
    "dockerfile": "the Dockerfile and build files exist",
    "build": "the image builds from the worker folder",
    "push": "the registry holds the image, by digest",
    "account": "the API key works; the GPU pool and registry login are set",
    "template": "RunPod holds the template of this release (image + env)",
    "gpu": "the model fits the GPU; what it costs",
    "endpoint": "the endpoint exists with these settings",
    "smoke-test": "the new release answers (job and OpenAI route), not an old worker",
    "backend-env": "the backend's env points at the endpoint (previous file backed up)",
    "backend-restart": "the backend restarted healthy on that env",
    "integration-test": "the backend reaches the model with its new env (else only the endpoint was tested)",
}


# --- the runner ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StageOutcome:
    name: str
    status: str  # done | skipped | not-applicable | not-run (after --only's stage, never ran) | failed
    seconds: float
    detail: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeployResult:
    stages: tuple[StageOutcome, ...]
    seconds: float
    endpoint_id: str | None
    urls: dict[str, Any]
    smoke: dict[str, Any] | None
    integration: dict[str, Any] | None = None

    @property
    def ran(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages if s.status == "done")


def _selected(options: DeployOptions, applicable: list[Stage]) -> set[str]:
    names = [s.name for s in applicable]
    for flag, value in (("--from", options.from_stage), ("--only", options.only)):
        if value is not None and value not in STAGE_NAMES:
            raise ConfigError(f"{flag} {value}: no such stage; stages are {', '.join(STAGE_NAMES)}")
        if value is not None and value not in names:
            raise ConfigError(f"{flag} {value}: that stage does not apply to this deploy.yaml (method/backend)")
    if options.only:
        return {options.only}
    if options.from_stage:
        return set(names[names.index(options.from_stage) :])
    return set(names)


def run_deploy(
    config: Config,
    options: DeployOptions | None = None,
    *,
    reporter: Reporter | None = None,
    environ: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> DeployResult:
    """Run the stages that apply to ``config``; resume and skip using the ledger."""
    options = options or DeployOptions()
    reporter = reporter or NullReporter()
    environ = os.environ if environ is None else environ
    folder = state_dir or config.state_dir
    started = time.monotonic()
    applicable = [s for s in STAGES if s.applies(config)]
    selected = _selected(options, applicable)
    with DeployLock(folder, command="deploy"):
        ledger = Ledger.load(folder)
        ctx = Context(config, reporter, ledger, options, environ)
        ctx.owner()  # what the ledger says this deployment made, before stages overwrite their records
        if config.image is not None:
            from rpdeploy.build.pipeline import refuse_placeholder

            refuse_placeholder(config.image)
        if not options.skip_fit_check:
            _fit_preflight(ctx)
        _token_preflight(ctx)
        outcomes: list[StageOutcome] = []
        try:
            with reporter.stage_board([s.name for s in STAGES]) as board:
                for stage in STAGES:
                    if stage not in applicable:
                        board.set(stage.name, "skipped", detail="not needed for this method/config")
                        outcomes.append(StageOutcome(stage.name, "not-applicable", 0.0))
                        continue
                    outcomes.append(_run_stage(ctx, stage, stage.name in selected, board))
        finally:
            ctx.close()
        endpoint = ctx.outputs.get("endpoint", {})
        if outcomes and all(o.status in ("done", "skipped", "not-applicable") for o in outcomes):
            _remember(ledger, ctx, ran={o.name for o in outcomes if o.status == "done"})
        ledger.save()
    return DeployResult(
        stages=tuple(outcomes),
        seconds=time.monotonic() - started,
        endpoint_id=endpoint.get("endpoint_id"),
        urls=endpoint.get("urls", {}),
        smoke=ctx.outputs.get("smoke-test"),
        integration=ctx.outputs.get("integration-test"),
    )


def _run_stage(ctx: Context, stage: Stage, selected: bool, board: Any) -> StageOutcome:
    record = ctx.ledger.stages.get(stage.name)
    ctx.previous[stage.name] = record
    if not selected:
        only = ctx.options.only
        if (record is None or record.status != "done") and only is not None and _runs_after(stage.name, only):
            # After the one stage --only picked: nothing builds on it here, so it simply does not run.
            board.set(stage.name, "skipped", detail="not selected (--only)")
            return StageOutcome(stage.name, "not-run", 0.0, "not selected")
        if record is None or record.status != "done":
            picked = f"--only {only}" if only is not None else f"--from {ctx.options.from_stage}"
            raise StageError(
                stage.name,
                ConfigError(
                    f"stage {stage.name!r} has not run yet, and {picked} needs what it makes",
                    hint=f"run `rpdeploy deploy` (or `rpdeploy deploy --from {stage.name}`) first",
                ),
            )
        ctx.outputs[stage.name] = record.outputs
        board.set(stage.name, "skipped", detail="not selected (--from/--only)")
        return StageOutcome(stage.name, "skipped", 0.0, "not selected", record.outputs)

    try:
        inputs = stage.inputs(ctx)
    except RpdeployError as exc:
        _fail(ctx, stage, "", exc, 0.0)
        board.set(stage.name, "failed", detail=exc.message)
        ctx.reporter.event("stage", stage=stage.name, status="failed", seconds=0.0, error=exc.message)
        raise StageError(stage.name, exc) from exc
    print_ = fingerprint(inputs)
    if (
        record is not None
        and record.status == "done"
        and record.fingerprint == print_
        and not ctx.options.force
        and (stage.still_valid is None or _safely(stage.still_valid, ctx, record.outputs))
    ):
        ctx.outputs[stage.name] = record.outputs
        board.set(stage.name, "skipped", detail="unchanged")
        ctx.reporter.event("stage", stage=stage.name, status="skipped", reason="unchanged")
        return StageOutcome(stage.name, "skipped", 0.0, "unchanged", record.outputs)

    board.set(stage.name, "running", detail=stage.title)
    ctx.reporter.event("stage", stage=stage.name, status="running")
    began = time.monotonic()
    ctx.ledger.stages[stage.name] = StageRecord("running", print_, started_at=time.time())
    ctx.ledger.save()
    try:
        outputs = stage.run(ctx)
    except RpdeployError as exc:
        seconds = time.monotonic() - began
        _fail(ctx, stage, print_, exc, seconds)
        board.set(stage.name, "failed", detail=exc.message, seconds=seconds)
        ctx.reporter.event("stage", stage=stage.name, status="failed", seconds=round(seconds, 3), error=exc.message)
        raise StageError(stage.name, exc) from exc
    except KeyboardInterrupt:
        seconds = time.monotonic() - began
        _fail(ctx, stage, print_, RpdeployError("interrupted"), seconds)
        # The board must not go on saying "running" above the "Interrupted" line.
        board.set(stage.name, "interrupted", detail="Ctrl-C; run deploy again to resume here", seconds=seconds)
        ctx.reporter.event("stage", stage=stage.name, status="interrupted", seconds=round(seconds, 3))
        raise
    seconds = time.monotonic() - began
    ctx.outputs[stage.name] = outputs
    if stage.settle is not None:
        print_ = fingerprint(stage.settle(ctx, inputs, outputs))
    ctx.ledger.stages[stage.name] = StageRecord(
        "done", print_, outputs, started_at=time.time() - seconds, finished_at=time.time(), seconds=round(seconds, 3)
    )
    ctx.ledger.save()
    board.set(stage.name, "done", seconds=seconds)
    ctx.reporter.event("stage", stage=stage.name, status="done", seconds=round(seconds, 3), outputs=outputs)
    return StageOutcome(stage.name, "done", seconds, "", outputs)


def _runs_after(name: str, other: str) -> bool:
    return STAGE_NAMES.index(name) > STAGE_NAMES.index(other)


def _safely(check: Callable[[Context, dict[str, Any]], bool], ctx: Context, outputs: dict[str, Any]) -> bool:
    """A verification read that fails means "run the stage" (which will report the real error)."""
    try:
        return check(ctx, outputs)
    except RpdeployError:
        return False


def _fail(ctx: Context, stage: Stage, print_: str, exc: RpdeployError, seconds: float) -> None:
    ctx.ledger.stages[stage.name] = StageRecord(
        "failed", print_, {}, finished_at=time.time(), seconds=round(seconds, 3), error=exc.message
    )
    ctx.ledger.save()


def _fit_preflight(ctx: Context) -> None:
    """A model that cannot fit stops the deploy before anything is built or created.

    Skipped when stage 7 already checked this very model and endpoint configuration.
    """
    from rpdeploy.preflight.check import DoesNotFitError

    record = ctx.ledger.stages.get("gpu")
    if record is not None and record.status == "done" and record.fingerprint == fingerprint(_gpu_inputs(ctx)):
        return
    result = ctx.fit_check()
    if result.blocking:
        error = DoesNotFitError(result)
        error.hint = f"{error.hint}; or deploy anyway with --skip-fit-check"
        raise StageError("gpu", error)


def _token_preflight(ctx: Context) -> None:
    """A gated model without model.hf_token stops the deploy before anything is built or created:
    its workers would fail to download it (401) long after the endpoint was made."""
    from rpdeploy.errors import PreflightError
    from rpdeploy.preflight.hub import token_problem

    problem = token_problem(ctx.config, environ=ctx.environ)
    if problem is not None:
        raise PreflightError(problem, hint="set model.hf_token in deploy.yaml; `rpdeploy doctor` checks it")


def _remember(ledger: Ledger, ctx: Context, *, ran: set[str]) -> None:
    """Append this deployment to the history `rpdeploy rollback` walks back through.

    Its ``backend_backup`` is the backup this very run made of the env before changing it (what
    rolling this deployment back restores), never one a skipped stage's old record names: that
    one holds an older env, and restoring it would take the backend two steps back.
    """
    entry = {
        "at": time.time(),
        "method": ctx.config.method.value,
        "image": ctx.outputs.get("template", {}).get("image"),
        "template_id": ctx.outputs.get("template", {}).get("template_id"),
        "endpoint_id": ctx.outputs.get("endpoint", {}).get("endpoint_id"),
        "backend_backup": ctx.outputs.get("backend-env", {}).get("backup") if "backend-env" in ran else None,
    }
    if not ledger.history or {k: v for k, v in ledger.history[-1].items() if k != "at"} != {
        k: v for k, v in entry.items() if k != "at"
    }:
        ledger.history.append(entry)
    # deploy.yaml is what runs again: a rollback `status` mentioned is over.
    ledger.extra.pop("rolled_back", None)
    # What the endpoint runs now, for `plan` to tell a switch of method.
    ledger.extra["method"] = ctx.config.method.value


def method_stages(method: Method, *, backend: bool) -> list[str]:
    """The stages that run for a method, in the order they run (for docs and `status`)."""
    skip = set()
    if not method.builds_image:
        skip |= {"handler", "dockerfile", "build", "push"}
    if not backend:
        skip |= {"backend-env", "backend-restart", "integration-test"}
    return [name for name in STAGE_NAMES if name not in skip]
