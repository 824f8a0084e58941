"""`rpdeploy plan`, `status`, `destroy` and `rollback`: the deployment as a whole.

``plan`` reads everything deploy would touch (the image's build context, RunPod's
template and endpoint, the backend's env file) and reports the differences without
changing anything. ``destroy`` and ``rollback`` take the same lock as ``deploy``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpdeploy.deploy.ledger import Ledger
from rpdeploy.deploy.lock import DeployLock
from rpdeploy.errors import ApiError, BackendError, ConfigError
from rpdeploy.output import NullReporter, Reporter

if TYPE_CHECKING:
    from rpdeploy.config import Config
    from rpdeploy.runpod.deployment import Operation
    from rpdeploy.runpod.fleet import FleetView

NEW_IMAGE = "<image from the next build>"


@dataclass(frozen=True)
class ImagePlan:
    image: str
    rebuild: bool
    reason: str


@dataclass(frozen=True)
class BackendPlan:
    host: str
    env_file: str
    keys: tuple[dict[str, Any], ...]
    diff: str
    changed: bool


@dataclass(frozen=True)
class MethodSwitch:
    """deploy.yaml names another method than the one the endpoint runs."""

    deployed: str  # a method's name, or "custom-handler or fastapi" when only the image tells
    wanted: str
    endpoint_id: str | None

    def describe(self) -> str:
        where = f"endpoint {self.endpoint_id}" if self.endpoint_id else "the endpoint"
        return (
            f"method: {self.deployed} -> {self.wanted} ({where} is updated in place: same id, same URL; "
            "the backend's settings do not change)"
        )


@dataclass(frozen=True)
class StepPlan:
    """One stage as plan and status show it: the seed's step number, and what it proves when done."""

    step: str
    name: str
    proves: str


def steps_for(config: Config) -> tuple[StepPlan, ...]:
    """The stages deploy runs for ``config``, in their order (step 11's endpoint check runs before 9)."""
    from rpdeploy.deploy.stages import PROVES, STEPS, method_stages

    names = method_stages(config.method, backend=config.backend is not None)
    return tuple(StepPlan(STEPS[name], name, PROVES[name]) for name in names)


def format_steps(steps: tuple[StepPlan, ...]) -> list[str]:
    lines = ["Steps, in the order deploy runs them (numbers are the manual procedure's):"]
    lines += [f"  {step.step:>3}  {step.name:<17}proves: {step.proves}" for step in steps]
    if any(step.step == "11a" for step in steps) and any(step.step == "9" for step in steps):
        lines.append("  (11a runs before 9: the backend is switched only to a release that answered)")
    return lines


@dataclass(frozen=True)
class PlanResult:
    image: ImagePlan
    operations: tuple[Operation, ...]
    backend: BackendPlan | None
    fit: str
    check_lines: tuple[str, ...]
    notes: tuple[str, ...] = ()
    method_switch: MethodSwitch | None = None
    steps: tuple[StepPlan, ...] = ()

    @property
    def changes_pending(self) -> bool:
        return (
            self.image.rebuild
            or bool(self.operations)
            or bool(self.backend and self.backend.changed)
            or self.method_switch is not None
        )


def method_switch(
    config: Config, ledger: Ledger, live_image: str | None, endpoint_id: str | None
) -> MethodSwitch | None:
    """Whether deploy would move the endpoint to another method: the ledger says what was deployed,
    else the live template's image (RunPod's worker-vllm image is method 1, any other ours)."""
    from rpdeploy import versions
    from rpdeploy.methods import Method

    recorded = ledger.extra.get("method")
    deployed: str | None = str(recorded) if isinstance(recorded, str) else None
    if live_image is not None:
        vllm = live_image.split("@", 1)[0].rsplit(":", 1)[0] == versions.WORKER_VLLM_IMAGE.rsplit(":", 1)[0]
        if vllm:
            deployed = Method.WORKER_VLLM.value
        elif deployed not in (Method.CUSTOM_HANDLER.value, Method.FASTAPI.value):
            deployed = "custom-handler or fastapi"
    wanted = config.method.value
    if (
        deployed is None
        or deployed == wanted
        or (deployed == "custom-handler or fastapi" and config.method.builds_image)
    ):
        return None
    return MethodSwitch(deployed, wanted, endpoint_id)


def _image_plan(config: Config, ledger: Ledger, environ: Mapping[str, str]) -> ImagePlan:
    """Would deploy build and push? The same test its build stage makes: the inputs' fingerprint."""
    from rpdeploy import versions
    from rpdeploy.deploy.stages import STAGES, Context, DeployOptions, fingerprint

    if not config.method.builds_image:
        return ImagePlan(versions.WORKER_VLLM_IMAGE, False, "RunPod's pinned worker-vllm image")
    if config.worker_dir is None or not (config.worker_dir / "Dockerfile").exists():
        return ImagePlan(NEW_IMAGE, True, "the worker folder will be written, then built and pushed")
    build = next(stage for stage in STAGES if stage.name == "build")
    record = ledger.stages.get("build")
    pushed = ledger.output("push", "image")
    current = fingerprint(build.inputs(Context(config, NullReporter(), ledger, DeployOptions(), environ)))
    if record is not None and record.status == "done" and record.fingerprint == current and pushed:
        return ImagePlan(str(pushed), False, "the build context is unchanged since the last push")
    reason = (
        "never built and pushed"
        if record is None or not pushed
        else "the worker folder, Dockerfile or build settings changed"
    )
    return ImagePlan(NEW_IMAGE, True, reason)


def make_plan(
    config: Config,
    *,
    reporter: Reporter | None = None,
    environ: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> PlanResult:
    """What ``rpdeploy deploy`` would change, read from every side, without changing anything."""
    from rpdeploy.preflight.check import check_deployment, format_check
    from rpdeploy.runpod.deployment import connect, ensure_endpoint

    reporter = reporter or NullReporter()
    environ = os.environ if environ is None else environ
    ledger = Ledger.load(state_dir or config.state_dir)
    check = check_deployment(config, reporter=reporter, environ=environ)
    image = _image_plan(config, ledger, environ)
    notes: list[str] = []
    from rpdeploy.runpod.deployment import ownership

    with connect(config, environ, reporter=reporter) as cp:
        ensured = ensure_endpoint(
            cp,
            config,
            image=image.image,
            dry_run=True,
            owner=ownership(config, ledger=ledger),
            command="deploy",
            reporter=reporter,
            environ=environ,
            init_timeout=check.cost.cold_start_plan.init_timeout,
        )
    endpoint = ensured.plan.endpoint
    live_image = ensured.plan.template.image if ensured.plan.template is not None else None
    if endpoint is not None and endpoint.container is not None:
        live_image = endpoint.container.image  # REST v2: the endpoint carries its image
    switch = method_switch(config, ledger, live_image, endpoint.id if endpoint else None)
    backend = None
    if config.backend is not None:
        if endpoint is None:
            notes.append("the backend will be pointed at the new endpoint once it exists")
        else:
            backend = _backend_plan(config, endpoint.id, environ)
    return PlanResult(
        image=image,
        operations=ensured.operations,
        backend=backend,
        fit=check.verdict,
        check_lines=tuple(format_check(check)),
        notes=tuple(notes),
        method_switch=switch,
        steps=steps_for(config),
    )


def _backend_plan(config: Config, endpoint_id: str, environ: Mapping[str, str] | None) -> BackendPlan:
    from rpdeploy.backend import BackendValues, backend_key, configure

    key = backend_key(config, environ)
    result = configure(config, BackendValues.for_endpoint(config, endpoint_id, key), dry_run=True)
    keys = tuple({"name": k.name, "action": k.action, "old": k.old, "new": k.new} for k in result.keys)
    return BackendPlan(result.host, result.env_file, keys, result.diff, result.changed)


def format_plan(result: PlanResult) -> str:
    lines = []
    if result.method_switch is not None:
        lines.append(result.method_switch.describe())
    lines.append(
        f"image: {result.image.image}"
        + (f"  (rebuild and push: {result.image.reason})" if result.image.rebuild else "")
    )
    if result.operations:
        lines.append("RunPod:")
        lines += [f"  {op.describe()}" for op in result.operations]
    else:
        lines.append("RunPod: no changes")
    if result.backend is not None:
        if result.backend.changed:
            lines.append(f"backend {result.backend.host}: {result.backend.env_file}")
            lines += [
                f"  {k['action']} {k['name']}: {k['old'] or '(unset)'} -> {k['new']}"
                for k in result.backend.keys
                if k["action"] != "unchanged"
            ]
        else:
            lines.append(f"backend {result.backend.host}: no changes")
    lines += list(result.notes)
    lines += ["", *result.check_lines]
    if result.steps:
        lines += ["", *format_steps(result.steps)]
    lines.append("")
    lines.append("Changes pending." if result.changes_pending else "No changes: deploy would do nothing.")
    return "\n".join(lines)


# --- status -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageStatus:
    name: str
    status: str
    finished_at: float | None
    seconds: float | None
    error: str | None
    step: str = ""


@dataclass(frozen=True)
class StatusResult:
    stages: tuple[StageStatus, ...]
    endpoint_id: str | None
    health: dict[str, Any] | None
    backend: dict[str, Any] | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: The endpoint's workers and latest release (REST v2; None without an endpoint or a key).
    fleet: FleetView | None = None


def gather_status(
    config: Config,
    *,
    reporter: Reporter | None = None,
    state_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> StatusResult:
    """The ledger's stages, the endpoint's live /health, its workers and latest release, and the
    backend's check."""
    from rpdeploy.deploy.stages import STEPS, method_stages

    reporter = reporter or NullReporter()
    ledger = Ledger.load(state_dir or config.state_dir)
    stages = []
    for name in method_stages(config.method, backend=config.backend is not None):
        record = ledger.stages.get(name)
        if record is None:
            stages.append(StageStatus(name, "pending", None, None, None, STEPS[name]))
        else:
            stages.append(
                StageStatus(name, record.status, record.finished_at, record.seconds, record.error, STEPS[name])
            )
    notes: list[str] = []
    release = ledger.output("smoke-test", "release")
    proven = ledger.output("smoke-test", "release_proven_by")
    if release:
        how = {"answers": "by its own answers", "rollout": "by the rollout RunPod reported"}.get(
            str(proven), "NOT proven (the endpoint answered; see the deploy's release report)"
        )
        notes.append(f"release {release} checked {how}")
    if config.backend is not None and ledger.output("integration-test", "tested") == "endpoint only":
        notes.append("only the endpoint was tested: backend.integration_test is not set")
    endpoint_id = ledger.output("endpoint", "endpoint_id") or _endpoint_by_name(config, environ, notes)
    health = None
    fleet = None
    if endpoint_id:
        health = _health(config, str(endpoint_id), notes, environ)
        fleet = _fleet(config, str(endpoint_id), reporter, notes, environ)
    else:
        notes.append("no endpoint recorded yet: run `rpdeploy deploy`")
    rolled_back = ledger.extra.get("rolled_back")
    if isinstance(rolled_back, dict):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(rolled_back.get("at") or 0)))
        notes.append(
            f"rolled back at {when}: the endpoint runs {rolled_back.get('to')} instead of "
            f"{rolled_back.get('from')}; `rpdeploy deploy` applies deploy.yaml again"
        )
    backend = None
    if config.backend is not None:
        backend = _backend_status(config, reporter, notes)
    return StatusResult(tuple(stages), endpoint_id, health, backend, tuple(notes), fleet)


def _fleet(
    config: Config, endpoint_id: str, reporter: Reporter, notes: list[str], environ: Mapping[str, str] | None = None
) -> FleetView | None:
    """Workers and releases over REST v2 (also under runpod.api: graphql: the same key)."""
    from rpdeploy.runpod.deployment import connect
    from rpdeploy.runpod.fleet import read_fleet

    try:
        with connect(config, environ, reporter=reporter) as cp:
            view = read_fleet(cp, endpoint_id)
    except (ApiError, ConfigError) as exc:
        notes.append(f"workers unavailable: {exc.message}")
        return None
    if view.note:
        notes.append(view.note)
    return view


def _endpoint_by_name(config: Config, environ: Mapping[str, str] | None, notes: list[str]) -> str | None:
    """The endpoint deploy.yaml names, found on RunPod, when the ledger has none (lost, or made elsewhere)."""
    from rpdeploy.errors import RpdeployError
    from rpdeploy.runpod.deployment import connect, find_endpoint

    try:
        with connect(config, environ, timeout=10) as cp:
            found = find_endpoint(cp.list_endpoints(), config.endpoint.name)
    except RpdeployError:
        return None  # no key, or RunPod out of reach: status still shows the ledger
    if found is None:
        return None
    notes.append(f"endpoint {found.id} found on RunPod by its name (this project's ledger records none)")
    return found.id


def _health(
    config: Config, endpoint_id: str, notes: list[str], environ: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    from rpdeploy.runpod.invoke import InvokeClient

    try:
        key = config.runpod.api_key.resolve(base_dir=config.base_dir, environ=environ, field="runpod.api_key")
        base = f"{config.runpod.resolved_endpoint_url(environ)}/{endpoint_id}"
        with InvokeClient(base, api_key=key, timeout=10) as client:
            return client.health()
    except (ApiError, ConfigError) as exc:
        notes.append(f"endpoint health unavailable: {exc.message}")
        return None


def _backend_status(config: Config, reporter: Reporter, notes: list[str]) -> dict[str, Any] | None:
    from rpdeploy.backend import check

    try:
        result = check(config, reporter=reporter)
    except BackendError as exc:
        notes.append(f"backend check failed: {exc.message}")
        return None
    return {
        "host": result.host,
        "service": result.service,
        "state": result.state,
        "healthy": result.healthy,
        "endpoint_id": result.endpoint_id,
    }


def format_status(result: StatusResult) -> str:
    lines = ["Stages (in the order they run; numbers are the manual procedure's steps):"]
    for stage in result.stages:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stage.finished_at)) if stage.finished_at else ""
        took = f"{stage.seconds:.1f}s" if stage.seconds is not None else ""
        error = f"  {stage.error}" if stage.error else ""
        lines.append(f"  {stage.step:>3}  {stage.name:<17}{stage.status:<11} {when:<19} {took:>8}{error}")
    if result.endpoint_id:
        lines.append(f"Endpoint {result.endpoint_id}:")
        if result.health:
            from rpdeploy.deploy.smoke import describe_health

            jobs = result.health.get("jobs") or {}
            lines.append(f"  now: {describe_health(result.health)}")
            lines.append(
                f"  jobs: {jobs.get('completed', 0)} completed, {jobs.get('failed', 0)} failed, "
                f"{jobs.get('inQueue', 0)} queued"
            )
    if result.fleet is not None:
        lines += _format_fleet(result.fleet)
    if result.backend:
        b = result.backend
        state = "healthy" if b["healthy"] else "NOT healthy"
        lines.append(f"Backend {b['service']} on {b['host']}: {state} ({b['state']}), points at {b['endpoint_id']}")
    lines += [f"Note: {note}" for note in result.notes]
    return "\n".join(lines)


def _format_fleet(view: FleetView) -> list[str]:
    from rpdeploy.runpod.fleet import age

    version = "?" if view.endpoint_version is None else view.endpoint_version
    lines = [f"  workers: {len(view.workers)} active (endpoint version {version})"]
    if view.workers:
        lines.append(f"    {'ID':<16} {'STATE':<12} {'GPU':<26} {'DATA CENTER':<12} {'AGE':>5}  VERSION")
        for w in view.workers:
            stale = " (stale)" if w.is_stale else ""
            lines.append(
                f"    {w.id:<16} {w.status:<12} {(w.gpu_type or '?'):<26} {(w.data_center or '?'):<12} "
                f"{age(w):>5}  {'?' if w.version is None else w.version}{stale}"
            )
    if view.release is not None:
        release = view.release
        lines.append(f"  latest release: version {release.version} ({release.source}, {release.created_at})")
    if view.rollout is not None:
        r = view.rollout
        state = "in progress" if r.in_progress else "done"
        lines.append(
            f"  rollout: {state}: {r.workers_on_latest} of {r.workers_total} worker(s) on the latest version "
            f"({r.percent_on_latest:.0f}%)"
        )
    return lines


# --- destroy and rollback -----------------------------------------------------------------


@dataclass(frozen=True)
class DestroyResult:
    done: tuple[str, ...]
    notes: tuple[str, ...]
    #: Seconds spent waiting for RunPod to release the template.
    waited: float = 0.0


def destroy_deployment(
    config: Config,
    *,
    restore_backend: bool,
    adopt: bool = False,
    wait: float | None = None,
    reporter: Reporter | None = None,
    environ: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> DestroyResult:
    """Scale to zero, delete the endpoint and its template; optionally restore the backend.

    The delete records each step in the ledger as it goes (``rpdeploy.deploy.teardown``), so a
    destroy that was killed, or that gave up waiting for RunPod to release the template,
    finishes when run again.
    """
    from rpdeploy.deploy.teardown import DEFAULT_WAIT, delete_deployment
    from rpdeploy.runpod.deployment import connect

    reporter = reporter or NullReporter()
    folder = state_dir or config.state_dir
    with DeployLock(folder, command="destroy"):
        with connect(config, environ, reporter=reporter) as cp:
            deleted = delete_deployment(
                cp,
                config,
                state_dir=folder,
                adopt=adopt,
                wait=DEFAULT_WAIT if wait is None else wait,
                command="destroy",
                reporter=reporter,
            )
        done = [f"{op.kind} {op.target}" for op in deleted.operations]
        notes = list(deleted.notes)
        # Loaded after the delete, which kept the ledger right step by step.
        ledger = Ledger.load(folder)
        if restore_backend and config.backend is not None:
            first = next((h.get("backend_backup") for h in ledger.history if h.get("backend_backup")), None)
            if first is None:
                notes.append("no backend backup recorded by a deploy: the backend was left as it is")
            else:
                restored = _restore_backend(config, str(first), reporter)
                done.append(restored)
                # The restore used the backups up and nothing deployed is left to roll back to:
                # without this, a second destroy would look for the spent backup and fail.
                ledger.history.clear()
                ledger.save()
    return DestroyResult(tuple(done), tuple(notes), deleted.waited)


def _restore_backend(config: Config, backup: str, reporter: Reporter) -> str:
    from rpdeploy.backend import rollback

    result = rollback(config, reporter=reporter, stamp=_stamp_of(backup))
    healthy = result.restart is not None and result.restart.healthy
    return (
        f"backend: {result.action} {result.env_file} from {result.backup} ({'healthy' if healthy else 'not restarted'})"
    )


def _stamp_of(backup: str) -> str | None:
    from rpdeploy.backend import ConfigureResult

    probe = ConfigureResult(
        host="", mode="", env_file="", changed=False, dry_run=False, keys=(), diff="", backup=backup
    )
    return probe.backup_stamp


@dataclass(frozen=True)
class RollbackResult:
    image: str | None
    previous_image: str | None
    template_changed: bool
    backend: str | None
    #: Why nothing was rolled back (nothing changed either), or None when it was.
    nothing: str | None = None

    def lines(self) -> list[str]:
        if self.nothing is not None:
            return [f"Nothing to roll back: {self.nothing}"]
        out = [
            f"Endpoint image: {self.image} -> {self.previous_image}"
            if self.template_changed
            else "Endpoint image unchanged"
        ]
        if self.backend:
            out.append(self.backend)
        return out


def nothing_to_roll_back(config: Config) -> str | None:
    """Why there is no deployment to go back to (from the ledger alone), or None when there is one."""
    if len(Ledger.load(config.state_dir).history) < 2:
        return (
            "no earlier deployment is recorded (each rollback goes one deployment further back; "
            "`rpdeploy status` shows what is recorded)"
        )
    return None


def rollback_deployment(config: Config, *, reporter: Reporter | None = None) -> RollbackResult:
    """Put back the previous deployment: its image on the endpoint, its env on the backend.

    The history is a stack of deployments: a rollback takes the newest off, so a second one goes
    one further back (not forward again), and the backup it restores is the one the removed
    deployment made of its predecessor's env. The next ``deploy`` applies deploy.yaml again.
    """
    from rpdeploy.runpod.deployment import (
        apply_endpoint,
        apply_template,
        connect,
        estimated_init_timeout,
        find_endpoint,
        ownership,
        plan_endpoint_only,
        plan_template,
        resolve_gpus,
    )

    reporter = reporter or NullReporter()
    with DeployLock(config.state_dir, command="rollback"):
        ledger = Ledger.load(config.state_dir)
        reason = nothing_to_roll_back(config)
        if reason is not None:
            return RollbackResult(None, None, False, None, nothing=reason)
        current, previous = ledger.history[-1], ledger.history[-2]
        auth_id = ledger.output("account", "registry_auth_id") or ""
        owner = ownership(config, ledger=ledger)
        with connect(config, reporter=reporter) as cp:
            endpoints = cp.list_endpoints()
            templates = cp.list_templates()
            if find_endpoint(endpoints, config.endpoint.name, templates=templates, owner=owner) is None:
                # Saving the template now would create one that no endpoint uses.
                return RollbackResult(
                    None,
                    None,
                    False,
                    None,
                    nothing=f"there is no endpoint named {config.endpoint.name!r} on RunPod (destroyed, or never "
                    "created; `rpdeploy deploy` creates it)",
                )
            spec, live, operation = plan_template(
                config,
                templates=templates,
                endpoints=endpoints,
                image=str(previous["image"]),
                owner=owner,
                registry_auth_id=str(auth_id),
                command="deploy",  # rollback takes no --adopt: deploy does the adopting
                # The env deploy writes, RUNPOD_INIT_TIMEOUT included: only the image goes back.
                init_timeout=estimated_init_timeout(config, reporter=reporter),
                container_on_endpoint=cp.container_on_endpoint,
            )
            template_id = ""
            if cp.container_on_endpoint:
                # REST v2: the image goes back on the endpoint itself (a new release).
                endpoint_spec, endpoint, operation = plan_endpoint_only(
                    config,
                    endpoints=endpoints,
                    templates=templates,
                    template_id="",
                    gpus=resolve_gpus(cp, config, reporter),
                    owner=owner,
                    command="deploy",
                    container=spec,
                    cp=cp,
                )
                apply_endpoint(cp, endpoint_spec, endpoint, reporter)
            else:
                template_id = apply_template(cp, spec, live, reporter).id
        # Recorded before the backend is touched: a failure there must not hide that the
        # endpoint changed. Records marked "rolled-back" are not "done": deploy runs them again.
        ledger.history.pop()
        ledger.extra["rolled_back"] = {"at": time.time(), "from": current.get("image"), "to": previous.get("image")}
        template_record = ledger.stages.get("template")
        if template_record is not None:
            # Not what deploy.yaml says any more: the next deploy must re-apply it.
            template_record.fingerprint = ""
            template_record.outputs = {
                **template_record.outputs,
                "image": spec.image,
                "template_id": template_id,
                "release": spec.release,
            }
        # The release the endpoint runs now: what `rpdeploy smoke-test` checks for.
        ledger.extra["release"] = spec.release
        restore = config.backend is not None and bool(current.get("backend_backup"))
        # The backend's records stay true when its env is not restored (that deployment did not change it).
        for name in ("smoke-test", "integration-test", *(("backend-env", "backend-restart") if restore else ())):
            record = ledger.stages.get(name)
            if record is not None:
                record.status = "rolled-back"
        ledger.save()
        backend_note = None
        if restore:
            backend_note = _restore_backend(config, str(current["backend_backup"]), reporter)
    return RollbackResult(current.get("image"), previous.get("image"), operation is not None, backend_note)
