"""`rpdeploy init`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rpdeploy.commands._common import ForceOption, JsonOption, YesOption, emit, reporter
from rpdeploy.errors import ConfigError, MissingValueError
from rpdeploy.methods import Method
from rpdeploy.output import can_prompt

if TYPE_CHECKING:
    from rpdeploy.config import Config
    from rpdeploy.output import Reporter
    from rpdeploy.worker.scaffold import InitOptions, InitResult

DEFAULT_MODEL = "Qwen/Qwen2.5-7B-Instruct"
DEFAULT_HF_TOKEN = "HF_TOKEN"
#: Answers a prompt takes before giving up (each wrong one is explained and asked again).
TRIES = 3


class _Asker:
    """A value from its flag, else a prompt (people), else its default (--yes), else an error (CI).

    A prompt checks each answer as deploy.yaml would and asks again, up to three times,
    keeping every earlier answer.
    """

    def __init__(self, *, interactive: bool, yes: bool, out: Reporter) -> None:
        self.interactive = interactive
        self.yes = yes
        self.out = out

    def __call__(
        self,
        name: str,
        flag: str,
        given: str | None,
        default: str | None,
        text: str,
        check: Callable[[str], str | None] = lambda _: None,
        *,
        optional: bool = False,
    ) -> str | None:
        if given is not None:
            return given
        if not self.interactive:
            if self.yes or optional:
                return default
            raise MissingValueError(name, flag=flag)
        problem = ""
        for attempt in range(1, TRIES + 1):
            answer = str(typer.prompt(text, default=default or "", show_default=bool(default))).strip()
            if optional and not answer:
                return None
            problem = check(answer) or ""
            if not problem:
                return answer
            left = TRIES - attempt
            self.out.warn(f"{problem}" + (f" (try again: {left} more)" if left else ""))
        raise ConfigError(
            f"{name}: no valid answer in {TRIES} tries: {problem}",
            hint=f"run `rpdeploy init` again, or pass {flag}",
        )


def _method_problem(answer: str) -> str | None:
    try:
        Method.parse(answer)
    except ValueError as exc:
        return str(exc)
    return None


def _parse_method(value: str) -> Method:
    try:
        return Method.parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--method") from None


def _existing(path: Path) -> Config | None:
    """The project's deploy.yaml when there is a valid one."""
    from rpdeploy.config import parse_config

    try:
        return parse_config(path.read_text(encoding="utf-8"), path=path.absolute())
    except (OSError, UnicodeDecodeError, ConfigError):
        return None


def _gated(model: str, out: Reporter) -> bool:
    from rpdeploy.preflight.hub import model_gating

    gating = model_gating(model)
    if gating.gated:
        out.info(f"{model} is {gating.describe()}: its workers need a Hugging Face token")
    return bool(gating.gated)


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
        str | None,
        typer.Option(
            "--backend-host",
            help="user@host[:port] of the Spring Boot backend (optional). In a project that has a deploy.yaml "
            "it is set in place, the rest of the file kept.",
        ),
    ] = None,
    backend_mode: Annotated[str, typer.Option("--backend-mode", help="dotenv or systemd.")] = "dotenv",
    hf_token: Annotated[
        str | None,
        typer.Option(
            "--hf-token",
            help="NAME of the env var holding a Hugging Face token (gated models) [default for a gated model: "
            f"{DEFAULT_HF_TOKEN}]. Never the token itself.",
            show_default=False,
        ),
    ] = None,
    directory: Annotated[
        Path, typer.Option("--dir", help="Folder to write into.", file_okay=False, show_default=True)
    ] = Path("."),
    yes: YesOption = False,
    force: ForceOption = False,
    json_output: JsonOption = False,
) -> None:
    """Write a commented deploy.yaml, and for methods 2 and 3 a worker/ folder you own.

    Asks for what is missing when run in a terminal (an answer deploy.yaml would refuse is
    explained and asked again), including the backend host and, for a gated model, the env
    var that holds your Hugging Face token. In CI (or with --yes) it takes the flags and the
    defaults, and never prompts. Files you have edited are never overwritten (--force keeps
    a .bak copy first).

    In a project that has a deploy.yaml, init edits it in place instead of starting over:
    --method N moves it to method N (method: changed, the rest of the file and your comments
    kept, the worker written for methods 2 and 3; the next deploy updates the same endpoint,
    so the backend keeps its URL), and --backend-host / --hf-token set those values.

    Examples:

    \b
      rpdeploy init                     # answer a few questions
      rpdeploy init --method 1 --yes    # worker-vllm, Qwen2.5-7B on an L4
      rpdeploy init -m 2 --registry ghcr.io --repository acme/qwen-worker --yes
      rpdeploy init -m 2 --repository acme/qwen-worker   # in a method-1 project: switch it
      rpdeploy init --backend-host ec2-user@10.0.0.5     # in a project: add the backend
    """
    from rpdeploy.worker.scaffold import InitOptions, conflicting, endpoint_name_for

    out = reporter()
    interactive = can_prompt() and not json_output and not yes
    ask = _Asker(interactive=interactive, yes=yes, out=out)
    existing = _existing(directory / "deploy.yaml")
    rewrite = any(value is not None for value in (model, name, gpu, registry, repository))
    if existing is not None and not rewrite:
        _show(_edit(existing, directory, method, backend_host, backend_mode, hf_token, ask, force, out), json_output)
        return
    if existing is not None and method is not None and _parse_method(method) is not existing.method:
        given = [flag for flag, value in (("--model", model), ("--name", name), ("--gpu", gpu)) if value is not None]
        if given:
            raise typer.BadParameter(
                f"{', '.join(given)}: deploy.yaml exists, and `init --method` only changes its method (and "
                "--backend-host, --hf-token, --registry, --repository); edit deploy.yaml for the rest",
                param_hint="--method",
            )
        _show(
            _edit(
                existing,
                directory,
                method,
                backend_host,
                backend_mode,
                hf_token,
                ask,
                force,
                out,
                registry=registry,
                repository=repository,
            ),
            json_output,
        )
        return
    if not force and (blocked := conflicting(directory, "deploy.yaml")):
        # Said before any question: the answers could not be written anyway.
        from rpdeploy.errors import FileConflictError

        raise FileConflictError(f"not overwriting {blocked}: changed since rpdeploy wrote it (or not written by it)")

    # A new project, or one whose deploy.yaml is rewritten from the flags (earlier values as defaults).
    from rpdeploy.worker.scaffold import answer_problem

    before = existing
    options = InitOptions(
        method=_parse_method(
            ask(
                "method",
                "--method",
                method,
                str(before.method.number) if before else "1",
                "Method: 1 worker-vllm, 2 custom-handler, 3 fastapi",
                _method_problem,
            )
            or "1"
        ),
        model=before.model.name if before else DEFAULT_MODEL,
        name="",
        gpu=before.endpoint.gpu if before else "L4",
        registry=before.image.registry if before and before.image else "docker.io",
        repository=before.image.repository if before and before.image else None,
        backend_host=before.backend.host if before and before.backend else None,
        hf_token=before.model.hf_token.env if before and before.model.hf_token else None,
    )

    def check(field: str, key: str) -> Callable[[str], str | None]:
        return lambda answer: answer_problem(_with(options, key, answer), field)

    options = _with(
        options,
        "model",
        ask("model", "--model", model, options.model, "Hugging Face model id", check("model.name", "model")),
    )
    if options.hf_token is None and (hf_token is not None or _gated(options.model, out)):
        options = _with(
            options,
            "hf_token",
            ask(
                "hf_token",
                "--hf-token",
                hf_token,
                DEFAULT_HF_TOKEN,
                "Env var holding your Hugging Face token (the model is gated; the token stays out of deploy.yaml)",
                check("model.hf_token", "hf_token"),
            ),
        )
    default_name = before.endpoint.name if before else endpoint_name_for(options.model)
    options = _with(
        options, "name", ask("name", "--name", name, default_name, "Endpoint name", check("endpoint.name", "name"))
    )
    options = _with(options, "gpu", ask("gpu", "--gpu", gpu, options.gpu, "GPU type", check("endpoint.gpu", "gpu")))
    if options.method.builds_image:
        options = _with(
            options,
            "registry",
            ask(
                "registry",
                "--registry",
                registry,
                options.registry,
                "Image registry host[:port]",
                check("image.registry", "registry"),
            ),
        )
        options = _with(
            options,
            "repository",
            ask(
                "repository",
                "--repository",
                repository,
                options.repository,
                "Image repository (e.g. acme/qwen-worker; empty: a placeholder to edit later)",
                check("image.repository", "repository"),
                optional=True,
            ),
        )
    host = ask(
        "backend host",
        "--backend-host",
        backend_host,
        options.backend_host,
        "Backend to point at the endpoint, user@host[:port] (empty: none)",
        check("backend.host", "backend_host"),
        optional=True,
    )
    options = _with(_with(options, "backend_host", host), "backend_mode", backend_mode)
    from rpdeploy.worker.scaffold import init_project

    result = init_project(directory, options, force=force, reporter=out)
    _show(result, json_output)


def _with(options: InitOptions, key: str, value: str | None) -> InitOptions:
    import dataclasses

    changed: InitOptions = dataclasses.replace(options, **{key: value})  # type: ignore[arg-type]
    return changed


def _edit(
    existing: Config,
    directory: Path,
    method: str | None,
    backend_host: str | None,
    backend_mode: str,
    hf_token: str | None,
    ask: _Asker,
    force: bool,
    out: Reporter,
    *,
    registry: str | None = None,
    repository: str | None = None,
) -> InitResult:
    """A project with a deploy.yaml: change what was asked in place (method, backend host, HF
    token variable), keep everything else, and bring the worker files up to date."""
    from rpdeploy.worker.scaffold import (
        FileResult,
        InitResult,
        WriteResult,
        edit_project,
        render_project,
        switch_method,
    )

    current = existing.method
    now = str(current.number)
    chosen = ask(
        "method",
        "--method",
        method,
        now,
        f"Method (deploy.yaml has {now} {current.value}): 1 worker-vllm, 2 custom-handler, 3 fastapi",
        _method_problem,
        optional=True,
    )
    wanted = _parse_method(chosen or now)
    host_now = existing.backend.host if existing.backend else None
    if backend_host is None and ask.interactive:
        backend_host = ask(
            "backend host",
            "--backend-host",
            None,
            host_now,
            "Backend to point at the endpoint, user@host[:port] (empty: none)",
            optional=True,
        )
        backend_host = None if backend_host == host_now else backend_host
    if hf_token is None and existing.model.hf_token is None and ask.interactive and _gated(existing.model.name, out):
        hf_token = ask(
            "hf_token",
            "--hf-token",
            None,
            DEFAULT_HF_TOKEN,
            "Env var holding your Hugging Face token (the model is gated)",
        )
    if wanted is not current:
        return switch_method(
            directory,
            wanted,
            registry=registry,
            repository=repository,
            backend_host=backend_host,
            backend_mode=backend_mode,
            hf_token=hf_token,
            force=force,
            reporter=out,
        )
    edited = edit_project(directory, backend_host=backend_host, backend_mode=backend_mode, hf_token=hf_token)
    from rpdeploy.config import load_config

    rendered = render_project(load_config(directory / "deploy.yaml"), force=force, reporter=out)
    files: tuple[FileResult, ...] = (*edited.write.files, *rendered.files)
    return InitResult(edited.config_path, edited.method, WriteResult(files), edited.next_steps)


def _show(result: InitResult, json_output: bool) -> None:
    lines = []
    if result.switched_from is not None:
        lines += [
            f"Moved to method {result.method.number} ({result.method.value}) from {result.switched_from.number} "
            f"({result.switched_from.value}): the endpoint and the backend's URL stay the same.",
            "",
        ]
    lines += [f"{f.action:>11}  {f.path}" + (f"  (backup: {f.backup})" if f.backup else "") for f in result.write.files]
    commands = [step.split("  #", 1) for step in result.next_steps]
    width = max((len(parts[0].rstrip()) for parts in commands if len(parts) == 2), default=0)
    lines += ["", "Next:"] + [
        f"  {parts[0].rstrip():<{width}}   #{parts[1]}" if len(parts) == 2 else f"  {parts[0]}" for parts in commands
    ]
    document = {"method": result.method.value, "files": result.write.files, "next_steps": result.next_steps}
    if result.switched_from is not None:
        document["switched_from"] = result.switched_from.value
    emit(json_output, document, "\n".join(lines))
