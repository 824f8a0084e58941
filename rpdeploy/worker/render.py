"""Rendering of templates/: typed context in, text out.

Rendering is pure: it reads no environment variables and no clock, so the same deploy.yaml
always renders the same bytes (golden-file tests pin them). One Jinja environment, with
``StrictUndefined`` so a missing value fails loudly instead of rendering as nothing, and
autoescape off because none of the targets is HTML. Every value from deploy.yaml reaches a
template through a filter that escapes it for the grammar it lands in:

    py          a Python literal               handler.py, app.py
    dockerfile  a double-quoted Dockerfile word ARG/ENV lines
    sh          one POSIX shell word           commands
    dockerfile_sh  a shell word on one line    RUN lines
    json        a JSON value                   test_input.json, exec-form arrays
    yaml        a YAML double-quoted scalar    deploy.yaml
    inline      text on one line, escaped      comments and docstrings
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpdeploy import __version__, versions
from rpdeploy.errors import TemplateError
from rpdeploy.methods import Method

if TYPE_CHECKING:
    import jinja2

    from rpdeploy.config import Config


def templates_dir() -> Path:
    """Where templates/ is: inside the installed package, else at the top of a source checkout."""
    packaged = resources.files("rpdeploy") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "templates"
    if checkout.is_dir():
        return checkout
    raise TemplateError(
        "rpdeploy's templates/ folder is missing from this installation",
        hint="reinstall rpdeploy (pip install --force-reinstall rpdeploy)",
    )


# --- escaping filters ---------------------------------------------------------------------


def py_literal(value: Any) -> str:
    """A Python literal for ``value``. ``repr`` of str/int/float/bool/None is always a valid,
    inert literal (quotes, backslashes, newlines and non-ASCII are escaped by Python itself)."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TemplateError(f"cannot render {value!r} as a Python literal")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(v)}" for k, v in value.items()) + "}"
    raise TemplateError(f"cannot render a {type(value).__name__} as a Python literal")


def dockerfile_word(value: Any) -> str:
    """A double-quoted word for ARG/ENV/LABEL lines.

    Inside double quotes the Dockerfile lexer treats ``\\`` as an escape and expands ``$``
    (moby/buildkit ``shell/lex.go``, processDoubleQuote), so both are escaped, as is ``"``.
    A Dockerfile instruction cannot contain a raw newline and has no escape for one, so
    control characters are refused rather than silently changed.
    """
    text = _one_dockerfile_line(value)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


# Characters some tool may take as the end of a line; none of them belongs in a Dockerfile.
_LINE_BREAKERS = frozenset({"\x85", "\u2028", "\u2029"})


def _one_dockerfile_line(value: Any) -> str:
    text = str(value)
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c in _LINE_BREAKERS for c in text):
        raise TemplateError(f"value {text[:40]!r} contains control characters that a Dockerfile line cannot hold")
    return text


def dockerfile_shell_word(value: Any) -> str:
    """One shell word on a Dockerfile RUN line: :func:`shell_word`, on one line."""
    return shell_word(_one_dockerfile_line(value))


def shell_word(value: Any) -> str:
    """One POSIX shell word (single-quoted unless plainly safe): for RUN lines and commands."""
    text = str(value)
    if "\0" in text:
        raise TemplateError("a shell word cannot contain a NUL byte")
    return shlex.quote(text)


def json_value(value: Any) -> str:
    """A JSON value (ASCII-only, so any byte survives any file encoding)."""
    return json.dumps(value, ensure_ascii=True)


def yaml_scalar(value: Any) -> str:
    """A YAML scalar that reads back as exactly ``value`` (strings double-quoted)."""
    import yaml

    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    text = str(value)

    def dump(style: str | None) -> str:
        out = yaml.safe_dump(text, default_style=style, allow_unicode=True, width=1 << 30)
        return out.removesuffix("\n").removesuffix("\n...").strip()

    # Plain when that reads back as the same string ("Qwen/Qwen2.5-7B-Instruct"), quoted
    # otherwise ("yes", "1.0", "a: b", anything with a newline or a '#').
    plain = dump(None)
    if "\n" not in plain and not plain.startswith(("'", '"')) and "#" not in plain and yaml.safe_load(plain) == text:
        return plain
    return dump('"')


def inline_text(value: Any) -> str:
    """Free text for a comment or docstring: one line, ASCII, no quote that could close it.

    JSON's string escapes are also valid Python escapes, so inside a docstring ``\"\"\"``
    still reads as three quotes without ending the docstring, and a newline cannot start
    a new line of code or of a Dockerfile.
    """
    return json.dumps(str(value), ensure_ascii=True)[1:-1]


FILTERS = {
    "py": py_literal,
    "dockerfile": dockerfile_word,
    "sh": shell_word,
    "dockerfile_sh": dockerfile_shell_word,
    "json": json_value,
    "yaml": yaml_scalar,
    "inline": inline_text,
}


@cache
def _environment(root: str) -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # no HTML anywhere; each value is escaped by its own filter
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def render_template(name: str, context: dict[str, Any]) -> str:
    """Render one template (path relative to templates/)."""
    import jinja2

    try:
        return _environment(str(templates_dir())).get_template(name).render(**context)
    except TemplateError:
        raise
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {exc.name} is missing from this installation") from None
    except jinja2.UndefinedError as exc:
        # A bug in a template, not in the user's input: say which template.
        raise TemplateError(f"template {name}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {name}: {exc}") from exc


# --- contexts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerContext:
    """Everything the worker templates (methods 2 and 3) may use."""

    method: str
    model_name: str
    served_model_name: str
    revision: str
    max_model_len: int
    gpu_memory_utilization: float
    dtype: str
    quantization: str | None
    kv_cache_dtype: str
    max_num_seqs: int | None
    tensor_parallel_size: int
    trust_remote_code: bool
    enforce_eager: bool
    max_concurrency: int
    bake: bool
    base_image: str
    smoke_prompt: str
    smoke_max_tokens: int
    runpod_version: str = versions.RUNPOD_SDK_VERSION
    vllm_version: str = versions.VLLM_BASE_IMAGE.rpartition(":")[2].removeprefix("v")
    rpdeploy_version: str = __version__

    @classmethod
    def from_config(cls, config: Config) -> WorkerContext:
        model = config.model
        assert config.image is not None
        return cls(
            method=config.method.value,
            model_name=model.name,
            served_model_name=model.public_name,
            revision=model.revision or "",
            max_model_len=model.max_model_len,
            gpu_memory_utilization=model.gpu_memory_utilization,
            dtype=model.dtype.value,
            quantization=model.quantization.value if model.quantization else None,
            kv_cache_dtype=model.kv_cache_dtype.value,
            max_num_seqs=model.max_num_seqs,
            tensor_parallel_size=config.endpoint.gpu_count,
            trust_remote_code=model.trust_remote_code,
            enforce_eager=model.enforce_eager,
            max_concurrency=config.endpoint.max_concurrency,
            bake=model.downloads_at_build,
            base_image=config.image.base_image,
            smoke_prompt=config.smoke_test.prompt,
            smoke_max_tokens=config.smoke_test.max_tokens,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InitContext:
    """What ``rpdeploy init`` writes into deploy.yaml."""

    method: str
    model_name: str
    endpoint_name: str
    gpu: str = "L4"
    registry: str = "docker.io"
    repository: str = ""
    backend_host: str | None = None
    backend_mode: str = "dotenv"
    #: The env var holding the Hugging Face token (a gated model), or None.
    hf_token: str | None = None
    deployment_id: str = ""
    rpdeploy_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Worker files per method: (template, output path relative to the worker folder).
WORKER_FILES: dict[Method, tuple[tuple[str, str], ...]] = {
    Method.CUSTOM_HANDLER: (
        ("worker/custom-handler/handler.py.j2", "handler.py"),
        ("worker/common/Dockerfile.j2", "Dockerfile"),
        ("worker/common/requirements.txt.j2", "requirements.txt"),
        ("worker/common/dockerignore.j2", ".dockerignore"),
        ("worker/custom-handler/test_input.json.j2", "test_input.json"),
    ),
    Method.FASTAPI: (
        ("worker/fastapi/app.py.j2", "app.py"),
        ("worker/fastapi/handler.py.j2", "handler.py"),
        ("worker/common/Dockerfile.j2", "Dockerfile"),
        ("worker/common/requirements.txt.j2", "requirements.txt"),
        ("worker/common/dockerignore.j2", ".dockerignore"),
        ("worker/fastapi/test_input.json.j2", "test_input.json"),
    ),
}


def render_worker(context: WorkerContext) -> dict[str, str]:
    """The worker folder's files for ``context.method``: {relative path: text}."""
    method = Method(context.method)
    files = WORKER_FILES.get(method)
    if files is None:
        return {}
    data = context.as_dict()
    return {out: render_template(template, data) for template, out in files}


def render_deploy_yaml(context: InitContext) -> str:
    """A commented deploy.yaml for ``rpdeploy init``."""
    return render_template("deploy.yaml.j2", context.as_dict())
