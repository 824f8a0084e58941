"""`rpdeploy backend configure | restart | check | rollback | properties`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rpdeploy.commands._common import (
    DEFAULT_CONFIG,
    ConfigOption,
    JsonOption,
    VerboseOption,
    YesOption,
    emit,
    load,
    reporter,
)
from rpdeploy.errors import BackendError
from rpdeploy.output import can_prompt, printable
from rpdeploy.secrets import redact

if TYPE_CHECKING:
    from rpdeploy.backend import BackendValues, CheckResult, ConfigureResult, RestartResult
    from rpdeploy.config import Config
    from rpdeploy.output import Reporter


def _endpoint_id(value: str | None) -> str | None:
    from rpdeploy.backend import check_endpoint_id

    if value is None:
        return None
    try:
        return check_endpoint_id(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


EndpointIdOption = Annotated[
    str | None,
    typer.Option(
        "--endpoint-id",
        help="RunPod endpoint id the backend should call [default: the one this project deployed: the ledger's, "
        "else the endpoint named in deploy.yaml].",
        callback=_endpoint_id,
        show_default=False,
    ),
]


def _project_endpoint(cfg: Config, given: str | None, out: Reporter, *, backend: bool = True) -> str:
    """--endpoint-id, else the endpoint this project deployed (said on stderr)."""
    if given:
        return given
    if backend and cfg.backend is None:  # said first: finding the endpoint would not help
        from rpdeploy.errors import ConfigError

        raise ConfigError(
            f"{cfg.path} has no backend: section",
            hint="add one (host, mode, service, health_url...); `rpdeploy init --backend-host user@host` writes it",
        )
    from rpdeploy.deploy.project import deployed_endpoint

    found = deployed_endpoint(cfg)
    out.info(f"Using {found.describe()}")
    return found.endpoint_id


DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show the change to the env file (secrets as ****); write nothing.")
]


def _values(cfg: Config, endpoint_id: str) -> BackendValues:
    from rpdeploy.backend import BackendValues, backend_key

    return BackendValues.for_endpoint(cfg, endpoint_id, backend_key(cfg))


def _configured_text(result: ConfigureResult) -> str:
    if result.dry_run:
        if not result.changed:
            return f"{result.env_file} on {result.host}: already up to date, nothing would change"
        return result.diff.rstrip("\n")
    if not result.changed:
        return f"{result.env_file} on {result.host}: already up to date, nothing written"
    width = max(len(k.name) for k in result.keys)
    lines = [f"{result.env_file} on {result.host}:"]
    lines += [f"  {k.name:<{width}}  {k.action:<9}  {k.new}" for k in result.keys]
    if result.dropin_changed:
        lines.append(f"  drop-in {result.dropin} written" + (", systemd reloaded" if result.reloaded else ""))
    lines.append(f"backup: {result.backup}")
    return "\n".join(lines)


def _restarted_text(result: RestartResult) -> str:
    state = result.state or "no systemd"
    health = f", health {result.health_status}" if result.health_status is not None else ""
    return f"{result.service} on {result.host}: healthy ({state}{health}) after {result.seconds:.1f} s"


def configure(
    endpoint_id: EndpointIdOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
    dry_run: DryRunOption = False,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart", help="Then restart the service and wait for it; roll back if it does not come back healthy."
        ),
    ] = False,
    yes: YesOption = False,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Point the backend at an endpoint: set its URL, id and API key in the service's env file.

    The endpoint is the one this project deployed unless --endpoint-id names another. Other
    lines of the env file are kept; the write is atomic, 0600, and the previous file is kept
    as a timestamped backup next to it. The API key travels to the host on stdin, never on a
    command line. In a terminal you see the change and confirm it first (--yes skips that; in
    CI nothing is asked).

    Examples:

    \b
      rpdeploy backend configure --dry-run
      rpdeploy backend configure --restart
      rpdeploy backend configure --endpoint-id abc123xyz --yes --json
    """
    from rpdeploy import backend

    cfg = load(config)
    out = reporter(verbose=verbose)
    values = _values(cfg, _project_endpoint(cfg, endpoint_id, out))
    if dry_run:
        planned = backend.configure(cfg, values, reporter=out, dry_run=True)
        emit(json_output, {"configure": planned}, _configured_text(planned))
        return
    if can_prompt() and not yes:
        planned = backend.configure(cfg, values, reporter=out, dry_run=True)
        if planned.changed:
            typer.echo(printable(redact(planned.diff.rstrip("\n"))), err=True)
            then = " and restart " + cfg.backend.service if restart and cfg.backend else ""
            typer.confirm(printable(f"Write {planned.env_file} on {planned.host}{then}?"), abort=True, err=True)
    if restart:
        applied = backend.apply(cfg, values, reporter=out)
        text = _configured_text(applied.configure)
        if applied.restart is not None:
            text += "\n" + _restarted_text(applied.restart)
        emit(json_output, {"configure": applied.configure, "restart": applied.restart}, text)
        return
    result = backend.configure(cfg, values, reporter=out)
    emit(json_output, {"configure": result}, _configured_text(result))


def restart(
    config: ConfigOption = DEFAULT_CONFIG, json_output: JsonOption = False, verbose: VerboseOption = False
) -> None:
    """Restart the backend service and wait until it is active and its health URL answers.

    Runs backend.restart (default: sudo systemctl restart <service>) on the host, then polls
    `systemctl is-active` and backend.health_url from the host itself, up to
    backend.health_timeout seconds. Exits 9 when the service does not come back.

    Example:

    \b
      rpdeploy backend restart
    """
    from rpdeploy import backend

    cfg = load(config)
    result = backend.restart(cfg, reporter=reporter(verbose=verbose))
    emit(json_output, {"restart": result}, _restarted_text(result))


def _checked_text(result: CheckResult) -> str:
    lines = [
        f"host:          {result.host}",
        f"service:       {result.service} ({result.state or 'no systemd'})",
        f"health:        {result.health_status if result.health_status is not None else 'no health_url'}",
        f"env file:      {result.env_file}" + ("" if result.env_file_exists else " (missing)"),
        f"endpoint id:   {result.endpoint_id or '-'}",
        f"endpoint url:  {result.endpoint_url or '-'}",
        f"api key:       {result.api_key or '-'}",
        f"backups:       {len(result.backups)}" + (f" (newest {result.backups[-1]})" if result.backups else ""),
    ]
    if result.drift:
        lines.append(f"differs from --endpoint-id: {', '.join(result.drift)}")
    lines.append("healthy" if result.healthy else "NOT healthy")
    return "\n".join(lines)


def check(
    config: ConfigOption = DEFAULT_CONFIG,
    endpoint_id: Annotated[
        str | None,
        typer.Option("--endpoint-id", help="Also check that the env file points at this endpoint.", show_default=False),
    ] = None,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Show what the backend points at (API key masked) and whether it is up; exit 9 if it is not.

    Examples:

    \b
      rpdeploy backend check
      rpdeploy backend check --endpoint-id abc123xyz --json
    """
    from rpdeploy import backend

    cfg = load(config)
    checked = _endpoint_id(endpoint_id)
    expected = _values(cfg, checked) if checked else None
    out = reporter(verbose=verbose)
    result = backend.check(cfg, reporter=out, expected=expected)
    for note in result.notes:
        out.warn(note)
    good = result.healthy and not result.drift
    why = "differs from --endpoint-id" if result.healthy else "is NOT healthy"
    error = BackendError(f"{result.service} on {result.host} {why}", hint="the lines above say what was found")
    document: dict[str, object] = {"ok": good, "check": result}
    if not good:
        document["error"] = error.to_dict()  # the same error document as every other failure
    emit(json_output, document, _checked_text(result))
    if not good:
        if json_output:
            raise typer.Exit(BackendError.exit_code)
        raise error


def rollback(
    config: ConfigOption = DEFAULT_CONFIG,
    backup: Annotated[
        str | None,
        typer.Option("--backup", help="Timestamp of the backup to restore (default: the newest).", show_default=False),
    ] = None,
    yes: YesOption = False,
    json_output: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Put the previous env file back (the newest backup), restart the service and wait for it.

    Each rollback uses its backup up, so running it again steps one change further back.
    In a terminal it asks first (--yes skips that; in CI nothing is asked).

    Examples:

    \b
      rpdeploy backend rollback
      rpdeploy backend rollback --backup 20250101T120000.000000Z --yes
    """
    from rpdeploy import backend

    cfg = load(config)
    out = reporter(verbose=verbose)
    if can_prompt() and not yes:
        planned = backend.rollback(cfg, reporter=out, stamp=backup, dry_run=True)
        what = "remove" if planned.action == "removed" else "restore"
        source = "" if planned.action == "removed" else f" from {planned.backup}"
        typer.confirm(
            f"{what.capitalize()} {planned.env_file} on {planned.host}{source}, then restart?", abort=True, err=True
        )
    result = backend.rollback(cfg, reporter=out, stamp=backup)
    text = f"{result.action} {result.env_file} on {result.host} (backup {result.backup})"
    if result.restart is not None:
        text += "\n" + _restarted_text(result.restart)
    emit(json_output, {"rollback": result}, text)


def properties(
    endpoint_id: EndpointIdOption = None, config: ConfigOption = DEFAULT_CONFIG, json_output: JsonOption = False
) -> None:
    """Print the application.properties lines that read the endpoint from the environment.

    The URL is the endpoint's OpenAI base URL (.../openai/v1) for every method, so the same two
    lines serve methods 1, 2 and 3; the key stays a reference to the env var, never a value.

    Example:

    \b
      rpdeploy backend properties >> src/main/resources/application.properties
      rpdeploy backend properties --endpoint-id abc123xyz
    """
    from rpdeploy import backend

    cfg = load(config)
    endpoint_id = _project_endpoint(cfg, endpoint_id, reporter(), backend=False)
    text = backend.properties(cfg, endpoint_id)
    emit(json_output, {"properties": text, "endpoint_url": backend.endpoint_url(cfg, endpoint_id)}, text)
