"""Options and helpers every command shares (defined once, used by all)."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rpdeploy.output import ConsoleReporter, print_json, print_result

if TYPE_CHECKING:
    from rpdeploy.config import Config

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


def reporter(*, verbose: bool = False, events: bool = False) -> ConsoleReporter:
    """The console reporter: stderr for people; NDJSON events on stdout when ``events``."""
    return ConsoleReporter(verbose=verbose, events_to_stdout=events)


def load(path: Path) -> Config:
    from rpdeploy.config import load_config

    return load_config(path)


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
