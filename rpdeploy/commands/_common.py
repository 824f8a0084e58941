"""Options and helpers every command shares (defined once, used by all)."""

from __future__ import annotations

import dataclasses
import enum
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from rpdeploy.output import ConsoleReporter, print_json, print_result

if TYPE_CHECKING:
    from rpdeploy.config import Config

T = TypeVar("T")

#: Where commands look for deploy.yaml (same as rpdeploy.config.DEFAULT_CONFIG, which this
#: module must not import: pydantic would slow every `--help` down).
DEFAULT_CONFIG = Path("deploy.yaml")
#: The emulator's cold starts differ by where the weights come from, quickly: at 1/100 of
#: RunPod's speed (rpdeploy.emulator.coldstart).
EMULATOR_WEIGHTS_SCALE = 0.01

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        help="Path of deploy.yaml.",
        envvar="RPDEPLOY_CONFIG",
        show_default=True,
        dir_okay=False,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print a machine-readable JSON result on stdout (progress stays on stderr)."),
]
YesOption = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Do not ask for confirmation; accept defaults for anything not given."),
]
AdoptOption = Annotated[
    bool,
    typer.Option(
        "--adopt",
        help="Take over an endpoint/template with deploy.yaml's names that does not carry this deployment's "
        "mark (env RPDEPLOY_DEPLOYMENT in its container env), e.g. one made before rpdeploy marked its objects.",
    ),
]
WaitOption = Annotated[
    float,
    typer.Option(
        "--wait",
        min=0,
        help="Seconds to wait for RunPod to release the template once the endpoint is deleted "
        "(RunPod: up to 2 minutes); a re-run finishes what is left.",
    ),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show more detail on stderr.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite files you edited (a backup is kept).")]


def keep_open(manager: AbstractContextManager[T]) -> T:
    """Enter ``manager`` for the rest of the command: Click closes it when the command ends."""
    from importlib import import_module

    click = typer.Context.__mro__[1].__module__.rsplit(".", 1)[0]
    ctx = import_module(f"{click}.globals").get_current_context(silent=True)
    if ctx is None:  # called outside a command (library use): the caller's process owns it
        return manager.__enter__()
    value: T = ctx.with_resource(manager)
    return value


def reporter(*, verbose: bool = False, events: bool = False) -> ConsoleReporter:
    """The console reporter: stderr for people; NDJSON events on stdout when ``events``."""
    return ConsoleReporter(verbose=verbose, events_to_stdout=events)


def _searches(path: Path) -> bool:
    """Whether ``path`` is the --config default (not given on the command line or in RPDEPLOY_CONFIG)."""
    from importlib import import_module

    if path.is_absolute() or path.parent != Path("."):
        return False
    # Click itself, or the copy typer >= 0.28 ships: wherever typer.Context comes from.
    click = typer.Context.__mro__[1].__module__.rsplit(".", 1)[0]
    ctx = import_module(f"{click}.globals").get_current_context(silent=True)
    source = ctx.get_parameter_source("config") if ctx is not None else None
    return source is None or source.name in ("DEFAULT", "DEFAULT_MAP")


def config_path(path: Path) -> Path:
    """Which deploy.yaml a command uses.

    ``--config PATH`` (or ``RPDEPLOY_CONFIG``) is taken as given. Left at its default, the
    nearest deploy.yaml in this folder or a parent folder is used, the way git finds its
    repository (``rpdeploy.deploy.project.find_config``); when there is none, the default path stays.
    """
    if not _searches(path):
        return path
    from rpdeploy.deploy.project import display_path, find_config

    found = find_config(Path.cwd(), path.name)
    return Path(display_path(found)) if found is not None else path


def load(path: Path) -> Config:
    """deploy.yaml, validated: the one --config names, else the nearest one here or above."""
    from rpdeploy.config import load_config
    from rpdeploy.errors import ConfigError

    chosen = config_path(path)
    if _searches(chosen) and not chosen.exists():
        raise ConfigError(
            f"{chosen} not found in {Path.cwd()} or any folder above it",
            hint="run `rpdeploy init` to create one here, or pass --config PATH",
        )
    return load_config(chosen)


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums and paths as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return value


def emit(json_output: bool, document: dict[str, Any], text: str | None = None) -> None:
    """Print a command's result: JSON on stdout, or ``text`` for people (also on stdout)."""
    if json_output:
        print_json({"ok": True, **to_jsonable(document)})
    elif text:
        print_result(text)
