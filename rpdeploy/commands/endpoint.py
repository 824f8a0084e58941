"""`rpdeploy endpoint create|update|get|list|delete`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rpdeploy.commands._common import (
    DEFAULT_CONFIG,
    AdoptOption,
    ConfigOption,
    JsonOption,
    WaitOption,
    YesOption,
    config_path,
    emit,
    load,
    reporter,
)
from rpdeploy.commands._target import EmulatorOption, target
from rpdeploy.errors import MissingValueError
from rpdeploy.output import can_prompt, printable

if TYPE_CHECKING:
    from rpdeploy.config import Config
    from rpdeploy.runpod.deployment import EnsureResult

DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Read what exists and show the exact changes, without sending any.")
]
ImageOption = Annotated[
    str | None,
    typer.Option("--image", help="Image to run (methods 2/3), e.g. registry/repo@sha256:...; default: the last push."),
]


#: What a dry run shows for methods 2 and 3 before an image was pushed (nothing is sent).
NOT_PUSHED = "<the image `rpdeploy build --push` will push>"


def _image(config: Config, image: str | None, state_dir: Path, *, dry_run: bool) -> str | None:
    if image or not config.method.builds_image:
        return image
    from rpdeploy.deploy.ledger import Ledger
    from rpdeploy.errors import MissingValueError

    pushed = Ledger.load(state_dir).output("push", "image")
    if pushed:
        return str(pushed)
    if dry_run:
        reporter().warn("no image has been pushed yet: the dry run shows where it will go")
        return NOT_PUSHED
    # Nothing was sent to RunPod: a value is missing (exit 3), not an API error.
    raise MissingValueError(
        f"the image to run (method {config.method.value}; none has been pushed yet)", flag="--image REF"
    )


def _ensure(
    config_path: Any,
    image: str | None,
    dry_run: bool,
    require_existing: bool,
    adopt: bool,
    command: str,
    emulator: bool = False,
) -> tuple[Config, EnsureResult]:
    from rpdeploy.deploy.ledger import Ledger
    from rpdeploy.runpod.deployment import connect, ensure_endpoint, ownership

    loaded = load(config_path)
    out = reporter()
    with target(loaded, emulator) as (config, environ, state_dir):
        chosen = _image(config, image, state_dir, dry_run=dry_run)
        with connect(config, environ, reporter=out) as cp:
            ensured = ensure_endpoint(
                cp,
                config,
                image=chosen,
                dry_run=dry_run,
                require_existing=require_existing,
                owner=ownership(config, ledger=Ledger.load(state_dir), adopt=adopt),
                command=command,
                reporter=out,
            )
        if ensured.result is not None:
            ledger = Ledger.load(state_dir)
            ledger.record(
                "endpoint",
                {"endpoint_id": ensured.result.endpoint_id, "template_id": ensured.result.template_id,
                 "image": ensured.result.image},
            )  # fmt: skip
            ledger.extra["release"] = ensured.plan.template_spec.release  # what `smoke-test` checks for
            ledger.save()
    return config, ensured


def _show(ensured: EnsureResult, dry_run: bool) -> str:
    ops = ensured.operations
    if dry_run:
        if not ops:
            return "No changes: RunPod already matches deploy.yaml."
        return "Would send:\n" + "\n".join(f"  {op.describe()}" for op in ops)
    result = ensured.result
    assert result is not None
    if result.created:
        state = "created"
    elif ops:
        state = f"updated ({sum(max(len(op.changes), 1) for op in ops)} change(s))"
    else:
        state = "unchanged"
    lines = [f"Endpoint {result.name!r}: {state}"]
    lines += [f"  {op.describe()}" for op in ops if op.kind.startswith("update")]
    lines += [
        f"  id       {result.endpoint_id}",
        f"  run      {result.urls.run}",
        f"  runsync  {result.urls.runsync}",
        f"  health   {result.urls.health}",
    ]
    if result.urls.openai_base:
        lines.append(f"  openai   {result.urls.openai_base}   (OpenAI-compatible base URL)")
    return "\n".join(lines)


def _document(ensured: EnsureResult, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "operations": [
            {
                "kind": op.kind,
                "target": op.target,
                "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in op.changes],
            }
            for op in ensured.operations
        ],
        "endpoint": ensured.result,
    }


def create(
    config: ConfigOption = DEFAULT_CONFIG,
    image: ImageOption = None,
    dry_run: DryRunOption = False,
    adopt: AdoptOption = False,
    emulator: EmulatorOption = False,
    json_output: JsonOption = False,
) -> None:
    """Create the endpoint (and its template), or bring an existing one up to date.

    Idempotent: the template and endpoint are found by name, so running it again updates
    them in place and never creates a second endpoint. Prints the endpoint id and its
    run/runsync/health URLs (and the OpenAI base URL for worker-vllm).

    Examples:

    \b
      rpdeploy endpoint create
      rpdeploy endpoint create --dry-run
      rpdeploy endpoint create --image ghcr.io/acme/qwen@sha256:...   # methods 2/3
    """
    _, ensured = _ensure(
        config, image, dry_run, require_existing=False, adopt=adopt, command="endpoint create", emulator=emulator
    )
    emit(json_output, _document(ensured, dry_run), _show(ensured, dry_run))


def update(
    config: ConfigOption = DEFAULT_CONFIG,
    image: ImageOption = None,
    dry_run: DryRunOption = False,
    adopt: AdoptOption = False,
    emulator: EmulatorOption = False,
    json_output: JsonOption = False,
) -> None:
    """Update the existing endpoint to match deploy.yaml and show what changed.

    Reads the endpoint, changes what differs and sends the whole object back (RunPod
    resets any field an update leaves out), so settings you did not change stay as they are.

    Examples:

    \b
      rpdeploy endpoint update --dry-run
      rpdeploy endpoint update --json
    """
    _, ensured = _ensure(
        config, image, dry_run, require_existing=True, adopt=adopt, command="endpoint update", emulator=emulator
    )
    emit(json_output, _document(ensured, dry_run), _show(ensured, dry_run))


def _pools(cp: Any) -> dict[str, tuple[str, ...]] | None:
    """RunPod's live GPU pools, or None when they cannot be read (a display must not fail on it)."""
    from rpdeploy.errors import ApiError, AuthError

    try:
        pools: dict[str, tuple[str, ...]] = cp.gpu_pools()
    except AuthError:
        raise
    except ApiError:
        return None
    return pools


def get(
    config: ConfigOption = DEFAULT_CONFIG,
    endpoint_id: Annotated[
        str | None,
        typer.Option("--id", help="Endpoint id [default: the one this project deployed, else found by name]."),
    ] = None,
    emulator: EmulatorOption = False,
    json_output: JsonOption = False,
) -> None:
    """Show the endpoint this project deployed (or --id) as RunPod has it.

    The GPUs are shown as RunPod names them ("NVIDIA L4") beside the pools and exclusions
    that select them ("AMPERE_24 without NVIDIA RTX A5000, ..."), read from RunPod's live pool list.

    Examples:

    \b
      rpdeploy endpoint get
      rpdeploy endpoint get --emulator   # after `rpdeploy deploy --emulator`
      rpdeploy endpoint get --json
    """
    from rpdeploy.deploy.ledger import Ledger
    from rpdeploy.errors import ApiError
    from rpdeploy.runpod.deployment import connect, describe_gpus, endpoint_urls, find_endpoint

    loaded = load(config)
    with (
        target(loaded, emulator, quiet=True) as (cfg, environ, state_dir),
        connect(cfg, environ, reporter=reporter()) as cp,
    ):
        wanted = endpoint_id or Ledger.load(state_dir).output("endpoint", "endpoint_id")
        live = cp.get_endpoint(str(wanted)) if wanted else None
        if live is None and not endpoint_id:  # not recorded, or deleted since: the one deploy.yaml names
            live = find_endpoint(cp.list_endpoints(), cfg.endpoint.name)
        pools = _pools(cp) if live is not None else None
    if live is None:
        what = endpoint_id or repr(cfg.endpoint.name)
        raise ApiError(f"no endpoint {what} on RunPod", hint="create it with `rpdeploy deploy` or `endpoint create`")
    urls = endpoint_urls(cfg, live.id, environ)
    fields = live.settings()
    gpu_text = describe_gpus(live.gpus, pools)
    container = live.container
    if container is not None:
        fields["image"] = container.image
        fields["container_disk_gb"] = container.container_disk_gb
    if live.template_id:
        fields["template_id"] = live.template_id
    if live.model_references is not None:
        fields["model_references"] = list(live.model_references)
    version = "unknown" if live.version is None else live.version
    lines = [f"Endpoint {live.name!r} ({live.id}), version {version}"]
    for key, value in fields.items():
        shown = live.gpus.describe() if key == "gpus" else value
        lines.append(f"  {key:<22} {shown}")
        if key == "gpus":
            lines.append(f"  {'gpu types':<22} {gpu_text}")
    lines.append(f"  {'health':<22} {urls.health}")
    document = {"id": live.id, "version": live.version, "fields": fields, "gpus": gpu_text, "urls": urls}
    emit(json_output, document, "\n".join(lines))


def _account_only() -> Config:
    """No deploy.yaml: the account RUNPOD_API_KEY and RUNPOD_API_BASE_URL name, as deploy.yaml's defaults do."""
    from rpdeploy.config import Config

    placeholder = {"method": "worker-vllm", "model": {"name": "none/none"}, "endpoint": {"name": "none"}}
    return Config.model_validate(placeholder)


def list_endpoints(
    config: ConfigOption = DEFAULT_CONFIG, emulator: EmulatorOption = False, json_output: JsonOption = False
) -> None:
    """List every serverless endpoint on the RunPod account, with the GPUs each may use.

    Needs no deploy.yaml: outside a project the account is the one RUNPOD_API_KEY (and
    RUNPOD_API_BASE_URL) names. Each GPU is shown by name ("NVIDIA L4") beside the pools and
    exclusions that select it; --json has the pools and exclusions as lists.

    Examples:

    \b
      rpdeploy endpoint list
      rpdeploy endpoint list --json
    """
    from rpdeploy.runpod.deployment import connect, describe_gpus

    path = config_path(config)
    loaded = load(path) if path.exists() or emulator or path != DEFAULT_CONFIG else _account_only()
    with target(loaded, emulator, quiet=True) as (cfg, environ, _), connect(cfg, environ, reporter=reporter()) as cp:
        endpoints = cp.list_endpoints()
        pools = _pools(cp) if endpoints else None
    rows = [
        {"id": e.id, "name": e.name, "template_id": e.template_id or None, "workers_min": e.workers_min,
         "workers_max": e.workers_max, "gpu_selection": e.gpus.to_dict(), "gpus": describe_gpus(e.gpus, pools)}
        for e in endpoints
    ]  # fmt: skip
    text = "\n".join(
        f"{e.id}  {e.name}  workers {e.workers_min}..{e.workers_max}  {describe_gpus(e.gpus, pools)}  "
        f"({e.gpus.describe()})"
        for e in endpoints
    )
    emit(json_output, {"endpoints": rows}, text or "No endpoints.")


def delete(
    config: ConfigOption = DEFAULT_CONFIG,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    adopt: AdoptOption = False,
    wait: WaitOption = 180.0,
    emulator: EmulatorOption = False,
    json_output: JsonOption = False,
) -> None:
    """Delete the endpoint and its template (scaling it to zero workers first).

    RunPod holds a template for up to 2 minutes after its endpoint is deleted: this waits
    for it (--wait), and a delete that was stopped or gave up finishes when run again. Only
    this deployment's endpoint and template are deleted (see --adopt). Asks for confirmation
    on a terminal; in CI pass --yes. Running it again when nothing is left is fine.

    Examples:

    \b
      rpdeploy endpoint delete --dry-run
      rpdeploy endpoint delete --yes
    """
    from rpdeploy.deploy.ledger import Ledger
    from rpdeploy.deploy.lock import DeployLock
    from rpdeploy.deploy.teardown import delete_deployment, pending_delete
    from rpdeploy.runpod.deployment import connect, ownership, plan_delete

    loaded = load(config)
    with (
        target(loaded, emulator) as (cfg, environ, state_dir),
        DeployLock(state_dir, command="endpoint delete"),
        connect(cfg, environ, reporter=reporter()) as cp,
    ):
        ledger = Ledger.load(state_dir)
        owner = ownership(cfg, ledger=ledger, adopt=adopt)
        operations = plan_delete(cp, cfg, owner, pending=pending_delete(ledger), command="endpoint delete").operations
        if dry_run:
            text = (
                "Nothing to delete."
                if not operations
                else "Would send:\n" + "\n".join(f"  {o.describe()}" for o in operations)
            )
            emit(
                json_output,
                {"dry_run": True, "operations": [{"kind": o.kind, "target": o.target} for o in operations]},
                text,
            )
            return
        if operations and not yes:
            if not can_prompt():
                raise MissingValueError("confirmation", flag="--yes")
            typer.confirm(printable(f"Delete endpoint {cfg.endpoint.name!r} and its template on RunPod?"), abort=True)
        # With nothing left this still runs: it clears the ledger of what is gone (deleted in the console?).
        result = delete_deployment(
            cp, cfg, state_dir=state_dir, adopt=adopt, wait=wait, command="endpoint delete", reporter=reporter()
        )
    text = (
        "Deleted:\n" + "\n".join(f"  {o.kind} {o.target}" for o in result.operations)
        if result.operations
        else "Nothing to delete."
    )
    emit(
        json_output,
        {
            "dry_run": False,
            "deleted": result,
            "operations": [{"kind": o.kind, "target": o.target} for o in result.operations],
        },
        text,
    )
