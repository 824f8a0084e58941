"""`rpdeploy endpoint create|update|get|list|delete`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from rpdeploy.commands._common import DEFAULT_CONFIG, ConfigOption, JsonOption, YesOption, emit, load, reporter
from rpdeploy.errors import MissingValueError
from rpdeploy.output import can_prompt, printable

if TYPE_CHECKING:
    from rpdeploy.config import Config
    from rpdeploy.runpod.deployment import EnsureResult

DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Read what exists and show the exact changes, without sending any.")
]
#: Ledger stages whose outputs describe the endpoint (or depend on it): void once it is deleted.
DELETED_STAGES = ("template", "endpoint", "gpu", "backend-env", "backend-restart", "smoke-test")
ImageOption = Annotated[
    str | None,
    typer.Option("--image", help="Image to run (methods 2/3), e.g. registry/repo@sha256:...; default: the last push."),
]


def _image(config: Config, image: str | None) -> str | None:
    if image or not config.method.builds_image:
        return image
    from rpdeploy.ledger import Ledger

    pushed = Ledger.load(config.state_dir).output("push", "image")
    return str(pushed) if pushed else None


def _ensure(config_path: Any, image: str | None, dry_run: bool, require_existing: bool) -> tuple[Config, EnsureResult]:
    from rpdeploy.ledger import Ledger
    from rpdeploy.runpod.deployment import connect, ensure_endpoint

    config = load(config_path)
    out = reporter()
    with connect(config) as cp:
        ensured = ensure_endpoint(
            cp, config, image=_image(config, image), dry_run=dry_run, require_existing=require_existing, reporter=out
        )
    if ensured.result is not None:
        ledger = Ledger.load(config.state_dir)
        ledger.record(
            "endpoint",
            {"endpoint_id": ensured.result.endpoint_id, "template_id": ensured.result.template_id,
             "image": ensured.result.image},
        )  # fmt: skip
        ledger.save()
    return config, ensured


def _forget_deleted(config: Config) -> None:
    """Drop the ledger's records of what was just deleted: a stale endpoint id would send the
    smoke test (and a resumed deploy) to an endpoint that is gone. Same stages as `destroy`."""
    from rpdeploy.ledger import Ledger

    ledger = Ledger.load(config.state_dir)
    dropped = [ledger.stages.pop(name, None) for name in DELETED_STAGES]
    if any(dropped):
        ledger.save()


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
    _, ensured = _ensure(config, image, dry_run, require_existing=False)
    emit(json_output, _document(ensured, dry_run), _show(ensured, dry_run))


def update(
    config: ConfigOption = DEFAULT_CONFIG,
    image: ImageOption = None,
    dry_run: DryRunOption = False,
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
    _, ensured = _ensure(config, image, dry_run, require_existing=True)
    emit(json_output, _document(ensured, dry_run), _show(ensured, dry_run))


def get(
    config: ConfigOption = DEFAULT_CONFIG,
    endpoint_id: Annotated[str | None, typer.Option("--id", help="Endpoint id (default: found by name).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Show the endpoint of deploy.yaml (or --id) as RunPod has it.

    Example:

    \b
      rpdeploy endpoint get --json
    """
    from rpdeploy.errors import ApiError
    from rpdeploy.runpod.deployment import connect, endpoint_urls, find_endpoint

    cfg = load(config)
    with connect(cfg) as cp:
        live = cp.get_endpoint(endpoint_id) if endpoint_id else find_endpoint(cp.list_endpoints(), cfg.endpoint.name)
    if live is None:
        what = endpoint_id or repr(cfg.endpoint.name)
        raise ApiError(f"no endpoint {what} on RunPod", hint="create it with `rpdeploy endpoint create`")
    urls = endpoint_urls(cfg, live.id)
    fields = live.managed()
    text = "\n".join(
        [f"Endpoint {live.name!r} ({live.id}), version {live.version}"]
        + [f"  {key:<20} {value}" for key, value in fields.items()]
        + [f"  {'health':<20} {urls.health}"]
    )
    emit(json_output, {"id": live.id, "version": live.version, "fields": fields, "urls": urls}, text)


def list_endpoints(config: ConfigOption = DEFAULT_CONFIG, json_output: JsonOption = False) -> None:
    """List every serverless endpoint on the RunPod account.

    Example:

    \b
      rpdeploy endpoint list
    """
    from rpdeploy.runpod.deployment import connect

    cfg = load(config)
    with connect(cfg) as cp:
        endpoints = cp.list_endpoints()
    rows = [
        {"id": e.id, "name": e.name, "template_id": e.template_id, "workers_min": e.workers_min,
         "workers_max": e.workers_max, "gpu_ids": e.raw.get("gpuIds")}
        for e in endpoints
    ]  # fmt: skip
    text = "\n".join(
        f"{r['id']}  {r['name']}  workers {r['workers_min']}..{r['workers_max']}  {r['gpu_ids']}" for r in rows
    )
    emit(json_output, {"endpoints": rows}, text or "No endpoints.")


def delete(
    config: ConfigOption = DEFAULT_CONFIG,
    yes: YesOption = False,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    """Delete the endpoint and its template (scaling it to zero workers first).

    Asks for confirmation on a terminal; in CI pass --yes. Running it again when nothing
    is left is fine.

    Examples:

    \b
      rpdeploy endpoint delete --dry-run
      rpdeploy endpoint delete --yes
    """
    from rpdeploy.runpod.deployment import connect, delete_deployment, plan_delete

    cfg = load(config)
    with connect(cfg) as cp:
        _, _, operations = plan_delete(cp, cfg)
        if dry_run or not operations:
            if not operations and not dry_run:
                _forget_deleted(cfg)  # gone already (deleted in the console?): so is our record of it
            text = (
                "Nothing to delete."
                if not operations
                else "Would send:\n" + "\n".join(f"  {o.describe()}" for o in operations)
            )
            emit(
                json_output,
                {"dry_run": dry_run, "operations": [{"kind": o.kind, "target": o.target} for o in operations]},
                text,
            )
            return
        if not yes:
            if not can_prompt():
                raise MissingValueError("confirmation", flag="--yes")
            typer.confirm(printable(f"Delete endpoint {cfg.endpoint.name!r} and its template on RunPod?"), abort=True)
        result = delete_deployment(cp, cfg, reporter())
    _forget_deleted(cfg)
    emit(
        json_output,
        {"deleted": result, "operations": [{"kind": o.kind, "target": o.target} for o in result.operations]},
        "Deleted:\n" + "\n".join(f"  {o.kind} {o.target}" for o in result.operations),
    )
