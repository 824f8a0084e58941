"""`rpdeploy init` and `rpdeploy render`: write generated files without ever losing an edit.

rpdeploy remembers the hash of every file it writes (``.rpdeploy/generated.json``). A file
may be replaced only while it still has that hash, meaning nobody changed it since. A file
the user edited, or one rpdeploy never wrote, is the user's: we refuse and list it, and
with ``--force`` we first copy it to ``<name>.bak-<timestamp>``. All files are planned
before any is written, so a refusal leaves the folder exactly as it was.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rpdeploy.errors import FileConflictError
from rpdeploy.fsutil import atomic_write, sha256_bytes, sha256_text
from rpdeploy.methods import Method
from rpdeploy.output import NullReporter, Reporter

if TYPE_CHECKING:
    from rpdeploy.config import Config

MANIFEST_NAME = "generated.json"
_MANIFEST_VERSION = 1

Action = Literal["created", "updated", "unchanged", "overwritten", "kept"]


@dataclass(frozen=True)
class FileResult:
    path: str  # relative to the project folder
    action: Action
    backup: str | None = None


@dataclass(frozen=True)
class WriteResult:
    files: tuple[FileResult, ...]

    @property
    def changed(self) -> tuple[FileResult, ...]:
        return tuple(f for f in self.files if f.action != "unchanged")


@dataclass(frozen=True)
class InitResult:
    config_path: str
    method: Method
    write: WriteResult
    next_steps: tuple[str, ...] = field(default_factory=tuple)
    #: The method deploy.yaml had when `init --method` moved an existing project to another one.
    switched_from: Method | None = None


def _manifest_path(base_dir: Path) -> Path:
    return base_dir / ".rpdeploy" / MANIFEST_NAME


def _load_manifest(base_dir: Path) -> dict[str, str]:
    from rpdeploy.errors import ConfigError
    from rpdeploy.limits import MANIFEST_BYTES, MANIFEST_DEPTH, loads_json, read_limited

    path = _manifest_path(base_dir)
    try:
        data = loads_json(
            read_limited(path, MANIFEST_BYTES, what="rpdeploy's list of generated files", regular_only=True),
            depth=MANIFEST_DEPTH,
            what=str(path),
        )
    except FileNotFoundError:
        return {}
    except ConfigError:
        # A damaged manifest must not make us overwrite anything: treat every existing
        # file as the user's (the conflict check below then protects it).
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _inside(base_dir: Path, rel: str) -> Path:
    """``base_dir / rel``, refused when it resolves (symlinks followed) outside the project folder.

    deploy.yaml's ``image.worker_dir`` is checked when it is read; this also catches a
    ``worker`` folder that is a symlink to elsewhere, or a path planted on disk.
    """
    from rpdeploy.errors import ConfigError

    root = base_dir.resolve()
    target = (base_dir / rel).resolve()
    if target != root and root not in target.parents:
        raise ConfigError(
            f"{rel} would be written outside the project folder {root} (to {target})",
            hint="image.worker_dir must be a folder inside the project, and not a symlink that leads out of it",
        )
    return base_dir / rel


def conflicting(base_dir: Path, rel: str) -> str | None:
    """``rel`` when writing it would be refused (it exists and is not as rpdeploy wrote it), else None."""
    target = base_dir / rel
    if not target.is_file():
        return None
    return None if _load_manifest(base_dir).get(rel) == sha256_bytes(target.read_bytes()) else rel


def write_generated(
    base_dir: Path,
    files: dict[str, str],
    *,
    force: bool = False,
    keep_edited: bool = False,
    executable: frozenset[str] = frozenset(),
    reporter: Reporter | None = None,
) -> WriteResult:
    """Write ``files`` ({path relative to base_dir: text}) under the edit-protection rule.

    An edited file is refused (FileConflictError), overwritten after a backup (``force``),
    or left alone and reported as "kept" (``keep_edited``: deploy's own scaffolding stages,
    for which a user's edits are the whole point).
    """
    reporter = reporter or NullReporter()
    manifest = _load_manifest(base_dir)
    plan: list[tuple[str, Path, str, Action]] = []
    conflicts: list[str] = []
    for rel, text in files.items():
        target = _inside(base_dir, rel)
        if not target.exists():
            plan.append((rel, target, text, "created"))
            continue
        if target.is_dir():
            raise FileConflictError(f"{rel} is a folder; rpdeploy wants to write a file there", hint="move it away")
        current = target.read_bytes()
        if current == text.encode("utf-8"):
            plan.append((rel, target, text, "unchanged"))
        elif manifest.get(rel) == sha256_bytes(current):
            plan.append((rel, target, text, "updated"))
        elif keep_edited and not force:
            plan.append((rel, target, text, "kept"))
        else:
            conflicts.append(rel)
            plan.append((rel, target, text, "overwritten"))
    if conflicts and not force:
        listed = ", ".join(conflicts)
        raise FileConflictError(
            f"not overwriting {listed}: changed since rpdeploy wrote it (or not written by rpdeploy)",
        )

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    results: list[FileResult] = []
    for rel, target, text, action in plan:
        backup = None
        if action == "overwritten":
            backup_path = target.with_name(f"{target.name}.bak-{stamp}")
            shutil.copy2(target, backup_path)
            backup = str(backup_path.relative_to(base_dir))
            reporter.warn(f"{rel} was edited: kept a copy as {backup}")
        if action == "kept":
            results.append(FileResult(rel, action))
            continue
        if action != "unchanged":
            mode = 0o755 if rel in executable else 0o644
            atomic_write(target, text, mode=mode)
        manifest[rel] = sha256_text(text)
        results.append(FileResult(rel, action, backup))
    atomic_write(
        _manifest_path(base_dir),
        json.dumps({"version": _MANIFEST_VERSION, "files": dict(sorted(manifest.items()))}, indent=2) + "\n",
    )
    return WriteResult(tuple(results))


# --- init ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class InitOptions:
    method: Method
    model: str
    name: str
    gpu: str = "L4"
    registry: str = "docker.io"
    repository: str | None = None
    backend_host: str | None = None
    backend_mode: str = "dotenv"
    #: The env var that holds the Hugging Face token (gated models), or None.
    hf_token: str | None = None


PLACEHOLDER_NAMESPACE = "change-me"


def endpoint_name_for(model: str) -> str:
    """A readable endpoint name from a model id: Qwen/Qwen2.5-7B-Instruct -> qwen2-5-7b-instruct."""
    tail = model.rstrip("/").split("/")[-1]
    name = re.sub(r"[^a-z0-9]+", "-", tail.lower()).strip("-")
    return name if len(name) >= 3 else f"{name or 'model'}-endpoint"


def default_repository(name: str) -> str:
    """A repository that validates but says it must be changed (build refuses to push it)."""
    return f"{PLACEHOLDER_NAMESPACE}/{name}-worker"


def init_project(
    base_dir: Path, options: InitOptions, *, force: bool = False, reporter: Reporter | None = None
) -> InitResult:
    """Write deploy.yaml (and the worker folder for methods 2/3); validate what was written."""
    from rpdeploy.config import parse_config
    from rpdeploy.worker.render import WorkerContext, render_worker

    repository = options.repository or default_repository(options.name)
    text = _init_text(options, deployment_id=_existing_deployment_id(base_dir) or secrets.token_hex(8))
    # Validate before writing anything: a bad --model or --name is reported with the
    # same messages as a hand-written file, and nothing is left half-done.
    config = parse_config(text, path=(base_dir / "deploy.yaml").absolute(), display="deploy.yaml (from your answers)")
    files = {"deploy.yaml": text}
    if config.method.builds_image:
        assert config.image is not None
        for rel, body in render_worker(WorkerContext.from_config(config)).items():
            files[f"{config.image.worker_dir}/{rel}"] = body
    result = write_generated(base_dir, files, force=force, reporter=reporter)
    steps = ["rpdeploy validate"]
    if not config.method.builds_image:
        steps.append("rpdeploy deploy --emulator     # try it first: no account, no GPU")
    steps.append("export RUNPOD_API_KEY=...   # from the RunPod console, or your CI's secrets")
    if config.model.hf_token is not None and config.model.hf_token.env:
        steps.append(f"export {config.model.hf_token.env}=...   # a Hugging Face token with access to the model")
    if config.method.builds_image:
        if repository.startswith(f"{PLACEHOLDER_NAMESPACE}/"):
            steps.insert(0, "edit image.repository in deploy.yaml (your registry namespace)")
        steps.append("python worker/handler.py --rp_serve_api   # try the worker locally")
        steps.append("rpdeploy build --push")
    steps.append("rpdeploy deploy")
    return InitResult(config_path="deploy.yaml", method=config.method, write=result, next_steps=tuple(steps))


def _init_text(options: InitOptions, *, deployment_id: str) -> str:
    from rpdeploy.worker.render import InitContext, render_deploy_yaml

    return render_deploy_yaml(
        InitContext(
            method=options.method.value,
            model_name=options.model,
            endpoint_name=options.name,
            gpu=options.gpu,
            registry=options.registry,
            repository=options.repository or default_repository(options.name),
            backend_host=options.backend_host,
            backend_mode=options.backend_mode,
            hf_token=options.hf_token,
            deployment_id=deployment_id,
        )
    )


def answer_problem(options: InitOptions, field: str) -> str | None:
    """What is wrong with the answer for ``field`` (e.g. "image.repository"), judged as deploy.yaml
    would judge it: the same message a hand-written file gets, or None when it is fine."""
    from rpdeploy.config import parse_config
    from rpdeploy.errors import ConfigError

    try:
        parse_config(_init_text(options, deployment_id="check"), display="deploy.yaml")
    except ConfigError as exc:
        for issue in exc.issues:
            if issue.field == field or issue.field.startswith(f"{field}.") or issue.field.startswith(f"{field}["):
                return issue.message
        return None
    return None


def _existing_deployment_id(base_dir: Path) -> str | None:
    """The deployment id of a deploy.yaml already there: a re-run of init must keep it, or the
    objects the deployment made on RunPod would no longer carry its mark.

    A new one is random (not derived from the names), so two projects that pick the same
    endpoint name still tell their objects apart.
    """
    import yaml

    try:
        document = yaml.safe_load((base_dir / "deploy.yaml").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    value = document.get("deployment_id") if isinstance(document, dict) else None
    return value if isinstance(value, str) and value else None


def worker_files(config: Config, *, only: frozenset[str] | None = None) -> dict[str, str]:
    """The worker folder's rendered files, keyed by path relative to deploy.yaml's folder."""
    from rpdeploy.worker.render import WorkerContext, render_worker

    if not config.method.builds_image or config.image is None:
        return {}
    rendered = render_worker(WorkerContext.from_config(config))
    return {f"{config.image.worker_dir}/{rel}": body for rel, body in rendered.items() if only is None or rel in only}


def render_project(config: Config, *, force: bool = False, reporter: Reporter | None = None) -> WriteResult:
    """Re-render the worker folder after deploy.yaml changed (methods 2/3)."""
    files = worker_files(config)
    if not files:
        return WriteResult(())
    return write_generated(config.base_dir, files, force=force, reporter=reporter)


# --- switching an existing project to another method ---------------------------------------

#: The line above an image: section that a switch to worker-vllm commented out.
KEPT_IMAGE_MARK = "# rpdeploy: the image: section of methods 2 and 3, kept for switching back"


def existing_method(path: Path) -> Method | None:
    """The method of the valid deploy.yaml at ``path``; None when there is none or it does not validate."""
    from rpdeploy.config import parse_config
    from rpdeploy.errors import ConfigError

    try:
        return parse_config(path.read_text(encoding="utf-8"), path=path.absolute()).method
    except (OSError, UnicodeDecodeError, ConfigError):
        return None


def _top_level_keys(text: str) -> dict[str, tuple[int, int, int]]:
    """{key: (line of the key, start and end offset of its value)} of deploy.yaml's top mapping."""
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    out: dict[str, tuple[int, int, int]] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[str(key.value)] = (key.start_mark.line, value.start_mark.index, value.end_mark.index)
    return out


def _section_lines(lines: list[str], first: int) -> int:
    """The end (exclusive) of the block section whose key is on line ``first``: its indented lines."""
    end = first + 1
    while end < len(lines) and (not lines[end].strip() or lines[end][:1] in (" ", "\t")):
        end += 1
    while end > first + 1 and not lines[end - 1].strip():
        end -= 1
    return end


def retarget_config(text: str, method: Method, *, registry: str | None, repository: str | None, name: str) -> str:
    """deploy.yaml's text moved to ``method``, everything else kept (comments included).

    ``method:`` gets the new name. Leaving methods 2/3 for worker-vllm comments the image:
    section out under KEPT_IMAGE_MARK (worker-vllm has no image of ours); coming back restores
    it, or writes a new one from ``registry``/``repository``.
    """
    from rpdeploy.worker.render import yaml_scalar

    keys = _top_level_keys(text)
    _, start, end = keys["method"]
    text = text[:start] + method.value + text[end:]
    lines = text.splitlines(keepends=True)
    if not method.builds_image:
        if "image" in keys:
            first = _top_level_keys(text)["image"][0]
            stop = _section_lines(lines, first)
            kept = [f"# {line}" if line.strip() else line for line in lines[first:stop]]
            lines[first:stop] = [KEPT_IMAGE_MARK + "\n", *kept]
        return "".join(lines)
    if "image" in keys:
        return "".join(lines)
    mark = next((i for i, line in enumerate(lines) if line.rstrip("\n") == KEPT_IMAGE_MARK), None)
    if mark is not None:
        stop = mark + 1
        while stop < len(lines) and lines[stop].startswith("# "):
            stop += 1
        if registry is None and repository is None:
            lines[mark:stop] = [line[2:] for line in lines[mark + 1 : stop]]
            return "".join(lines)
        del lines[mark:stop]  # a new registry or repository was given: a fresh section replaces it
        keys = _top_level_keys("".join(lines))
    section = [
        "image:\n",
        f"  registry: {yaml_scalar(registry or 'docker.io')}\n",
        f"  repository: {yaml_scalar(repository or default_repository(name))}\n",
        "\n",
    ]
    at = keys["endpoint"][0] if "endpoint" in keys else len(lines)
    if at == len(lines) and lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines[at:at] = section
    return "".join(lines)


def switch_method(
    base_dir: Path,
    method: Method,
    *,
    registry: str | None = None,
    repository: str | None = None,
    backend_host: str | None = None,
    backend_mode: str = "dotenv",
    hf_token: str | None = None,
    force: bool = False,
    reporter: Reporter | None = None,
) -> InitResult:
    """Move the project in ``base_dir`` to ``method``: deploy.yaml edited in place, the worker rendered.

    ``backend_host`` and ``hf_token`` are set in the same edit (see :func:`edit_project`).

    The endpoint, the template and the backend settings in deploy.yaml are kept, so the next
    deploy updates the same endpoint in place (same id, same URL): the backend needs no change.
    Nothing is written unless everything validates and no edited worker file is in the way.
    """
    from rpdeploy.config import parse_config
    from rpdeploy.errors import ConfigError

    path = base_dir / "deploy.yaml"
    text = path.read_text(encoding="utf-8")
    current = parse_config(text, path=path.absolute())
    if not method.builds_image and current.model.bake:
        raise ConfigError(
            "model.bake needs our own image: worker-vllm downloads the model when a worker starts",
            hint="remove bake: from deploy.yaml, then run `rpdeploy init --method 1` again",
        )
    moved = retarget_config(text, method, registry=registry, repository=repository, name=current.endpoint.name)
    if backend_host is not None:
        moved = set_backend_host(moved, backend_host, backend_mode)
    if hf_token is not None:
        moved = set_hf_token(moved, hf_token)
    config = parse_config(moved, path=path.absolute(), display="deploy.yaml (moved to the new method)")
    files: dict[str, str] = {}
    if config.method.builds_image:
        files = worker_files(config)
    # The worker files first: a conflict stops everything before deploy.yaml changes.
    written = write_generated(base_dir, files, force=force, reporter=reporter) if files else WriteResult(())
    atomic_write(path, moved)
    result = WriteResult((FileResult("deploy.yaml", "updated"), *written.files))
    steps = []
    if config.image is not None and config.image.repository.startswith(f"{PLACEHOLDER_NAMESPACE}/"):
        steps.append("edit image.repository in deploy.yaml (your registry namespace)")
    steps += [
        "rpdeploy plan      # the switch: same endpoint, updated in place; the backend is unchanged",
        "rpdeploy deploy",
    ]
    return InitResult("deploy.yaml", config.method, result, tuple(steps), switched_from=current.method)


# --- editing an existing deploy.yaml in place ----------------------------------------------


#: The backend section init writes (the same lines as templates/deploy.yaml.j2's).
def _backend_section(host: str, mode: str) -> list[str]:
    from rpdeploy.worker.render import yaml_scalar

    return [
        "backend:\n",
        f"  host: {yaml_scalar(host)}      # user@host[:port], reached with your ssh config\n",
        f"  mode: {yaml_scalar(mode)}              # dotenv: edit an env file; systemd: a unit drop-in\n",
        "  service: spring-boot\n",
        "  # health_url: http://127.0.0.1:8080/actuator/health\n",
    ]


def _child_keys(text: str, section: str) -> dict[str, tuple[int, int, int]]:
    """{key: (line, value start, value end)} of a top-level mapping section's own keys."""
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    out: dict[str, tuple[int, int, int]] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == section and isinstance(value, yaml.MappingNode):
                for child_key, child in value.value:
                    out[str(child_key.value)] = (
                        child_key.start_mark.line,
                        child.start_mark.index,
                        child.end_mark.index,
                    )
    return out


def set_backend_host(text: str, host: str, mode: str = "dotenv") -> str:
    """deploy.yaml with ``backend.host`` set, everything else (comments included) as it was.

    An existing backend: section gets the host (replaced or added); otherwise init's commented
    example section is replaced by a real one, or one is added before smoke_test: (or at the end).
    """
    from rpdeploy.worker.render import yaml_scalar

    keys = _top_level_keys(text)
    lines = text.splitlines(keepends=True)
    if "backend" in keys:
        children = _child_keys(text, "backend")
        if "host" in children:
            _, start, end = children["host"]
            return text[:start] + yaml_scalar(host) + text[end:]
        line = keys["backend"][0]
        if children:
            first = min(at for at, _, _ in children.values())
            indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
            lines.insert(first, f"{indent}host: {yaml_scalar(host)}\n")
        else:  # "backend:" with nothing under it
            lines[line : _section_lines(lines, line)] = _backend_section(host, mode)
        return "".join(lines)
    section = _backend_section(host, mode)
    commented = next((i for i, line in enumerate(lines) if line.startswith("# backend:")), None)
    if commented is not None:
        stop = commented + 1
        while stop < len(lines) and lines[stop].startswith("#   "):
            stop += 1
        lines[commented:stop] = section
        return "".join(lines)
    at = keys["smoke_test"][0] if "smoke_test" in keys else len(lines)
    if at == len(lines) and lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines[at:at] = [*section, "\n"] if at < len(lines) else ["\n", *section]
    return "".join(lines)


def set_hf_token(text: str, variable: str) -> str:
    """deploy.yaml with ``model.hf_token`` naming ``variable``, everything else as it was."""
    from rpdeploy.worker.render import yaml_scalar

    children = _child_keys(text, "model")
    if "hf_token" in children:
        _, start, end = children["hf_token"]
        return text[:start] + yaml_scalar(variable) + text[end:]
    lines = text.splitlines(keepends=True)
    line = f"  hf_token: {yaml_scalar(variable)}  # env var holding a Hugging Face token with access\n"
    model_line = _top_level_keys(text)["model"][0]
    stop = _section_lines(lines, model_line)
    commented = next((i for i in range(model_line + 1, stop) if lines[i].lstrip().startswith("# hf_token:")), None)
    if commented is not None:
        lines[commented] = line
        return "".join(lines)
    after = children["name"][0] + 1 if "name" in children else model_line + 1
    lines.insert(after, line)
    return "".join(lines)


def edit_project(
    base_dir: Path,
    *,
    backend_host: str | None = None,
    backend_mode: str = "dotenv",
    hf_token: str | None = None,
    text: str | None = None,
    previous: Method | None = None,
    reporter: Reporter | None = None,
) -> InitResult:
    """Set the backend host and/or the HF token variable in the project's deploy.yaml, in place.

    The method, the image: section, comments and everything else stay as they are: what
    `rpdeploy init --backend-host user@host` does in a project that has a deploy.yaml.
    Nothing is written unless the result validates.
    """
    from rpdeploy.config import parse_config

    path = base_dir / "deploy.yaml"
    original = path.read_text(encoding="utf-8")
    edited = original if text is None else text
    if backend_host is not None:
        edited = set_backend_host(edited, backend_host, backend_mode)
    if hf_token is not None:
        edited = set_hf_token(edited, hf_token)
    config = parse_config(edited, path=path.absolute(), display="deploy.yaml (edited)")
    if edited != original:
        atomic_write(path, edited)
    steps = ["rpdeploy plan      # what the next deploy changes"]
    if backend_host is not None:
        steps.insert(0, "rpdeploy doctor    # can rpdeploy reach the backend host over SSH?")
    if hf_token is not None:
        steps.insert(0, f"export {hf_token}=...   # a Hugging Face token with access to the model")
    steps.append("rpdeploy deploy")
    action: Action = "updated" if edited != original else "unchanged"
    return InitResult("deploy.yaml", config.method, WriteResult((FileResult("deploy.yaml", action),)), tuple(steps),
                      switched_from=previous)  # fmt: skip
