"""`rpdeploy init`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rpdeploy.commands._common import ForceOption, JsonOption, YesOption, emit, reporter
from rpdeploy.errors import MissingValueError
from rpdeploy.methods import Method
from rpdeploy.output import can_prompt

if TYPE_CHECKING:
    from rpdeploy.scaffold import InitResult

DEFAULT_MODEL = "Qwen/Qwen2.5-7B-Instruct"


def _ask(name: str, flag: str, given: Any, default: Any, *, yes: bool, interactive: bool, text: str) -> Any:
    """A value from its flag, else a prompt (people), else its default (--yes), else an error (CI)."""
    if given is not None:
        return given
    if interactive and not yes:
        return typer.prompt(text, default=default)
    if yes:
        return default
    raise MissingValueError(name, flag=flag)


def init(
    method: Annotated[
        str | None,
        typer.Option("--method", "-m", help="1 worker-vllm, 2 custom-handler, 3 fastapi.", show_default=False),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help=f"Hugging Face model id [default: {DEFAULT_MODEL}].")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Endpoint name [default: from the model].")] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", help="GPU type [default: L4].")] = None,
    registry: Annotated[
        str | None, typer.Option("--registry", help="Image registry host[:port] (methods 2, 3).")
    ] = None,
    repository: Annotated[
        str | None, typer.Option("--repository", help="Image repository, e.g. acme/qwen-worker (methods 2, 3).")
    ] = None,
    backend_host: Annotated[
        str | None, typer.Option("--backend-host", help="user@host[:port] of the Spring Boot backend (optional).")
    ] = None,
    backend_mode: Annotated[str, typer.Option("--backend-mode", help="dotenv or systemd.")] = "dotenv",
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder to write into.", file_okay=False, show_default=True)
    ] = Path("."),
    yes: YesOption = False,
    force: ForceOption = False,
    json_output: JsonOption = False,
) -> None:
    """Write a commented deploy.yaml, and for methods 2 and 3 a worker/ folder you own.

    Asks for what is missing when run in a terminal; in CI (or with --yes) it takes the
    flags and the defaults, and never prompts. Files you have edited are never overwritten
    (--force keeps a .bak copy first).

    In a project that has a deploy.yaml, --method N moves it to method N instead: method: is
    changed in place (the rest of the file, your comments included, is kept), the worker is
    written for methods 2 and 3, and the next deploy updates the same endpoint, so the backend
    keeps its URL. `rpdeploy plan` shows the switch; switching back works the same way.

    Examples:

    \b
      rpdeploy init                     # answer a few questions
      rpdeploy init --method 1 --yes    # worker-vllm, Qwen2.5-7B on an L4
      rpdeploy init -m 2 --registry ghcr.io --repository acme/qwen-worker --yes
      rpdeploy init -m 2 --repository acme/qwen-worker   # in a method-1 project: switch it
    """
    from rpdeploy.scaffold import InitOptions, endpoint_name_for, existing_method, init_project, switch_method

    interactive = can_prompt() and not json_output
    current = existing_method(directory / "deploy.yaml") if method is not None else None
    if current is not None:
        try:
            wanted = Method.parse(method)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--method") from None
        if wanted is not current:
            # An existing project moves to another method: same endpoint, same backend settings.
            given = [
                flag
                for flag, value in (
                    ("--model", model),
                    ("--name", name),
                    ("--gpu", gpu),
                    ("--backend-host", backend_host),
                )
                if value is not None
            ]
            if given:
                raise typer.BadParameter(
                    f"{', '.join(given)}: deploy.yaml exists, and `init --method` only changes its method "
                    "(edit deploy.yaml for the rest)",
                    param_hint="--method",
                )
            moved = switch_method(
                directory, wanted, registry=registry, repository=repository, force=force, reporter=reporter()
            )
            _show(moved, json_output)
            return
    chosen = _ask(
        "method",
        "--method",
        method,
        "1",
        yes=yes,
        interactive=interactive,
        text="Method: 1 worker-vllm, 2 custom-handler, 3 fastapi",
    )
    try:
        parsed = Method.parse(chosen)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--method") from None
    model_id = _ask(
        "model", "--model", model, DEFAULT_MODEL, yes=yes, interactive=interactive, text="Hugging Face model id"
    )
    endpoint = _ask(
        "name", "--name", name, endpoint_name_for(model_id), yes=yes, interactive=interactive, text="Endpoint name"
    )
    gpu_type = _ask("gpu", "--gpu", gpu, "L4", yes=yes, interactive=interactive, text="GPU type")
    image_registry, image_repository = "docker.io", None
    if parsed.builds_image:
        image_registry = _ask(
            "registry",
            "--registry",
            registry,
            "docker.io",
            yes=yes,
            interactive=interactive,
            text="Image registry host[:port]",
        )
        if repository is not None or (interactive and not yes):
            image_repository = _ask(
                "repository",
                "--repository",
                repository,
                None,
                yes=yes,
                interactive=interactive,
                text="Image repository (e.g. acme/qwen-worker)",
            )
    options = InitOptions(
        method=parsed,
        model=model_id,
        name=endpoint,
        gpu=gpu_type,
        registry=image_registry,
        repository=image_repository,
        backend_host=backend_host,
        backend_mode=backend_mode,
    )
    result = init_project(directory, options, force=force, reporter=reporter())
    _show(result, json_output)


def _show(result: InitResult, json_output: bool) -> None:
    lines = []
    if result.switched_from is not None:
        lines += [
            f"Moved to method {result.method.number} ({result.method.value}) from {result.switched_from.number} "
            f"({result.switched_from.value}): the endpoint and the backend's URL stay the same.",
            "",
        ]
    lines += [f"{f.action:>11}  {f.path}" + (f"  (backup: {f.backup})" if f.backup else "") for f in result.write.files]
    lines += ["", "Next:"] + [f"  {step}" for step in result.next_steps]
    document = {"method": result.method.value, "files": result.write.files, "next_steps": result.next_steps}
    if result.switched_from is not None:
        document["switched_from"] = result.switched_from.value
    emit(json_output, document, "\n".join(lines))
