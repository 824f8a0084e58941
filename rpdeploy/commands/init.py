"""`rpdeploy init`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rpdeploy.commands._common import ForceOption, JsonOption, YesOption, emit, reporter
from rpdeploy.errors import MissingValueError
from rpdeploy.methods import Method
from rpdeploy.output import can_prompt

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

    Examples:

    \b
      rpdeploy init                     # answer a few questions
      rpdeploy init --method 1 --yes    # worker-vllm, Qwen2.5-7B on an L4
      rpdeploy init -m 2 --registry ghcr.io --repository acme/qwen-worker --yes
    """
    from rpdeploy.scaffold import InitOptions, endpoint_name_for, init_project

    interactive = can_prompt() and not json_output
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
    out = reporter()
    result = init_project(directory, options, force=force, reporter=out)
    lines = [f"{f.action:>11}  {f.path}" + (f"  (backup: {f.backup})" if f.backup else "") for f in result.write.files]
    lines += ["", "Next:"] + [f"  {step}" for step in result.next_steps]
    emit(
        json_output,
        {"method": result.method.value, "files": result.write.files, "next_steps": result.next_steps},
        "\n".join(lines),
    )
