"""The rpdeploy command line: every command is registered here, behind one error boundary.

Command modules never import this file. The boundary turns an ``RpdeployError`` into its
message, hint and exit code (and a JSON error document with ``--json``); anything else is a
bug and crashes with a traceback that shows no local variables (they may hold secrets) and
passes through the same redaction as all other output.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from typer.core import TyperGroup

from rpdeploy import __version__
from rpdeploy.errors import EXIT_INTERRUPTED, ConfigError, DeclinedError, Interrupted, RpdeployError

F = TypeVar("F", bound=Callable[..., Any])

# Click's exception classes, wherever this typer takes Click from (its own copy since 0.28).
_UsageError: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_ClickException: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _Group(TyperGroup):
    """The root command group: under ``--json`` a usage error is the JSON error document too.

    Click reports a bad option or argument before any command runs (so before ``boundary``)
    as plain text; with ``--json`` anywhere on the command line, stdout then also gets
    ``{"ok": false, "error": {"type": "UsageError", "exit_code": 2, ...}}``.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except _ClickException as exc:
            if "--json" in argv:
                from rpdeploy.output import print_json

                usage = isinstance(exc, _UsageError)
                kind = "UsageError" if usage else type(exc).__name__
                error = {"type": kind, "exit_code": exc.exit_code, "message": exc.format_message()}
                hint = "see --help" if usage else None
                print_json({"ok": False, "error": {**error, "hint": hint}}, compact=True)
            exc.show()
            code: Any = exc.exit_code
        except typer.Abort:  # outside any command (the error boundary handles those)
            sys.stderr.write("Aborted.\n")
            code = 1
        else:
            code = result if isinstance(result, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(
    cls=_Group,
    name="rpdeploy",  # its help is _root's docstring, examples included
    no_args_is_help=True,
    add_completion=True,
    # Plain Click help: rich's help renderer (markdown, pygments) costs ~150 ms at every
    # start, and `rpdeploy --help` must stay fast.
    rich_markup_mode=None,
    # Locals in a traceback print every variable of every frame, API keys included.
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _annotate_for_github(error: RpdeployError, json_output: bool) -> None:
    """Under GitHub Actions, errors also become annotations on the deploy.yaml lines.

    Actions reads workflow commands from stdout; with --json, stdout belongs to the JSON
    document, so they go to stderr there.
    """
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return
    from rpdeploy.ci import annotation_escape, annotation_property
    from rpdeploy.output import printable
    from rpdeploy.secrets import redact

    stream = sys.stderr if json_output else sys.stdout
    issues = error.issues if isinstance(error, ConfigError) else ()
    if not issues:
        stream.write(f"::error title=rpdeploy::{annotation_escape(printable(redact(error.message)))}\n")
        return
    for issue in issues:
        loc = issue.location
        props = [f"file={annotation_property(printable(loc.path))}"]
        if loc.line is not None:
            props.append(f"line={loc.line}")
        if loc.column is not None:
            props.append(f"col={loc.column}")
        props.append(f"title={annotation_property(printable(issue.field or 'deploy.yaml'))}")
        stream.write(f"::error {','.join(props)}::{annotation_escape(printable(redact(issue.message)))}\n")
    stream.flush()


def _report(error: RpdeployError, json_output: bool) -> None:
    from rpdeploy.output import colour_on, fit_to_terminal, paint, print_json, printable
    from rpdeploy.secrets import redact

    if json_output:
        # One line: a valid document for one-shot commands and a valid last event for NDJSON ones.
        print_json({"ok": False, "error": error.to_dict()}, compact=True)
    text = fit_to_terminal(printable(redact(f"Error: {error}")), sys.stderr)
    if colour_on(sys.stderr):
        text = paint("Error:", "bold red") + text.removeprefix("Error:")
    sys.stderr.write(text + "\n")
    if error.hint:
        sys.stderr.write(fit_to_terminal(printable(redact(f"Hint: {error.hint}")), sys.stderr) + "\n")
    _annotate_for_github(error, json_output)


def _interrupted() -> Interrupted:
    return Interrupted("Interrupted. Nothing is left half-written; run the command again to resume.", hint="")


def boundary(fn: F) -> F:
    """Run a command; map our errors to their exit codes, a "no" to a question to 14, and Ctrl-C to 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rpdeploy.secrets import register_environment

        register_environment(os.environ)
        json_output = bool(kwargs.get("json_output", False))
        try:
            return fn(*args, **kwargs)
        except RpdeployError as exc:
            _report(exc, json_output)
            raise typer.Exit(exc.exit_code) from None
        except typer.Abort as exc:
            # Click answers Ctrl-C and end of input at a prompt, and "no" to confirm(abort=True),
            # with Abort; the first two keep the original exception as the context.
            if isinstance(exc.__context__, KeyboardInterrupt):
                error: RpdeployError = _interrupted()
            else:
                error = DeclinedError("not confirmed: nothing was changed")
            _report(error, json_output)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            _report(_interrupted(), json_output)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rpdeploy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Show the version and exit.", callback=_version, is_eager=True
    ),
) -> None:
    """Deploy vLLM models to RunPod Serverless and point your backend at them.

    Start with `rpdeploy init`, then `rpdeploy deploy`. Every command finds deploy.yaml in
    this folder or a parent folder (--config PATH names another). Results go to stdout (one
    JSON document with --json); progress and errors go to stderr. Exit codes are listed in
    the README.

    Examples:

    \b
      rpdeploy deploy --emulator        # try it: no account, no GPU
      rpdeploy status --emulator
      rpdeploy init                     # your own deploy.yaml
      rpdeploy doctor && rpdeploy deploy
      rpdeploy COMMAND --help           # each command, with examples
    """


endpoint_app = typer.Typer(
    name="endpoint",
    help="""Create, inspect, update and delete the RunPod endpoint.

    Examples:

    \b
      rpdeploy endpoint get
      rpdeploy endpoint list              # every endpoint on the account (no deploy.yaml needed)
      rpdeploy endpoint create --dry-run
    """,
    no_args_is_help=True,
)


backend_app = typer.Typer(
    name="backend",
    help="""Point the backend service at the endpoint: env file, restart, check, rollback.

    The endpoint is the one this project deployed unless --endpoint-id says otherwise.

    Examples:

    \b
      rpdeploy backend configure --dry-run
      rpdeploy backend configure --restart
      rpdeploy backend check
    """,
    no_args_is_help=True,
)


def _register() -> None:
    from rpdeploy.commands import (
        backend,
        build,
        check,
        completion,
        deploy,
        doctor,
        emulator,
        endpoint,
        init,
        logs,
        render,
        smoke,
        validate,
    )

    # The order of `rpdeploy --help`: the everyday workflow first, then the parts on their own.
    app.command("init")(boundary(init.init))
    app.command("validate")(boundary(validate.validate))
    app.command("check")(boundary(check.check))
    app.command("doctor")(boundary(doctor.doctor))
    app.command("plan")(boundary(deploy.plan))
    app.command("deploy")(boundary(deploy.deploy))
    app.command("status")(boundary(deploy.status))
    app.command("logs")(boundary(logs.logs))
    app.command("smoke-test")(boundary(smoke.smoke_test))
    app.command("rollback")(boundary(deploy.rollback))
    app.command("destroy")(boundary(deploy.destroy))
    app.command("build")(boundary(build.build))
    for name, command in (
        ("create", endpoint.create),
        ("update", endpoint.update),
        ("get", endpoint.get),
        ("list", endpoint.list_endpoints),
        ("delete", endpoint.delete),
    ):
        endpoint_app.command(name)(boundary(command))
    app.add_typer(endpoint_app)
    for name in ("configure", "restart", "check", "rollback", "properties"):
        backend_app.command(name)(boundary(getattr(backend, name)))
    app.add_typer(backend_app)
    app.command("render")(boundary(render.render))
    app.command("schema")(boundary(validate.schema))
    app.command("completion")(boundary(completion.completion))
    app.command("emulator")(boundary(emulator.emulator))


_register()


def _register_config_secrets() -> None:
    """Best effort, for a crash report: resolve deploy.yaml's secret references so they are masked."""
    from pathlib import Path

    try:
        from rpdeploy.config import load_config
        from rpdeploy.deploy.project import find_config

        given = os.environ.get("RPDEPLOY_CONFIG")
        path = Path(given) if given else find_config(Path.cwd())
        if path is None:
            return
        config = load_config(path)
    except Exception:  # a crash report must not crash on a broken config
        return
    refs = [config.runpod.api_key, config.model.hf_token]
    refs += [v for v in config.endpoint.env.values() if not isinstance(v, str)]
    if config.image is not None and config.image.credentials is not None:
        refs += [config.image.credentials.username, config.image.credentials.password]
    for ref in refs:
        if ref is None:
            continue
        try:
            ref.resolve(base_dir=config.base_dir)
        except Exception:  # unset references simply have nothing to mask
            continue


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(EXIT_INTERRUPTED)
    except BaseException as exc:  # a bug: show where, without locals, redacted
        from rpdeploy.output import printable
        from rpdeploy.secrets import redact, register_environment

        register_environment(os.environ)
        _register_config_secrets()
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        sys.stderr.write(printable(redact(text)))
        sys.stderr.write("rpdeploy crashed (a bug). Please report the traceback above.\n")
        sys.exit(1)
