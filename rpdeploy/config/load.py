"""Reading deploy.yaml: every problem at once, each pointing at ``deploy.yaml:LINE:COL``.

Owns: :func:`parse_config` / :func:`load_config`, the YAML line/column map (``_Marks``), the
translation of pydantic's errors into messages with valid values and "did you mean", the rules
that span fields (methods, workers, env, weights, HF token), :func:`field_location` and
:func:`config_json_schema`.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from rpdeploy.config.document import DEFAULT_CONFIG, Config
from rpdeploy.config.refs import _ENV_NAME
from rpdeploy.config.sections import MANAGED_ENV, WeightsSource
from rpdeploy.errors import ConfigError, ConfigIssue, Location
from rpdeploy.limits import DEPLOY_YAML, compose_yaml, decode_text, read_limited, shorten
from rpdeploy.runpod.models import SECRET_REFERENCE
from rpdeploy.secrets import SECRET_NAME

_Path = tuple[str | int, ...]


class _Marks:
    """Line/column of every key and value in a YAML document, by field path."""

    def __init__(self) -> None:
        self.keys: dict[_Path, yaml.Mark] = {}
        self.values: dict[_Path, yaml.Mark] = {}
        self.duplicates: list[tuple[_Path, yaml.Mark]] = []

    def walk(self, node: yaml.Node, path: _Path = ()) -> None:
        self.values[path] = node.start_mark
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                if key in seen:
                    self.duplicates.append((child, key_node.start_mark))
                seen.add(key)
                self.keys[child] = key_node.start_mark
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))

    def locate(self, path: _Path, *, key: bool = False) -> tuple[int | None, int | None]:
        """Best line/column for ``path``: the exact node, else its nearest ancestor."""
        probe = path
        while True:
            table = self.keys if key and probe in self.keys else self.values
            mark = table.get(probe)
            if mark is not None:
                return mark.line + 1, mark.column + 1
            if not probe:
                return None, None
            probe = probe[:-1]


def _field_path(loc: tuple[Any, ...]) -> _Path:
    # pydantic inserts the name of the union member or validator into loc ("str", "SecretRef",
    # "function-before[...]"): those are not keys of the document.
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, int):
            out.append(part)
        elif isinstance(part, str) and (part in ("str", "SecretRef", "ApiKeyRef") or "[" in part):
            continue
        else:
            out.append(part)
    return tuple(out)


def _dotted(path: _Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_for(path: _Path) -> type[BaseModel] | None:
    """The pydantic model that owns the mapping at ``path`` (for valid-field hints)."""
    model: type[BaseModel] = Config
    for part in path:
        if isinstance(part, int):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nested is None:
            return None
        model = nested
    return model


def _describe_error(error: Any, path: _Path) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_for(path[:-1])
        name = str(path[-1])
        if parent is not None:
            valid = list(parent.model_fields)
            guess = difflib.get_close_matches(name, valid, n=1)
            suggestion = f" (did you mean {guess[0]!r}?)" if guess else ""
            return f"unknown field {shorten(name)}{suggestion}; valid fields here: {', '.join(valid)}"
        return f"unknown field {shorten(name)}"
    if kind == "missing":
        return "required field is missing"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if kind in ("enum", "literal_error") and isinstance(error.get("input"), str):
        # The valid values are in the message ('a', 'b' or 'c'): suggest the nearest one.
        valid = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
        guess = difflib.get_close_matches(error["input"], valid, n=1)
        if guess:
            return f"{message} (got {shorten(error['input'])}; did you mean {guess[0]!r}?)"
    if kind.startswith(("int_", "float_", "bool_", "string_", "greater", "less", "literal", "enum", "list_", "dict_")):
        value = error.get("input")
        if not isinstance(value, (dict, list)):
            message = f"{message} (got {shorten(value)})"
    return message


def _semantic_issues(config: Config) -> list[tuple[_Path, str, bool]]:
    """Rules that span fields. (path, message, point at key?)"""
    issues: list[tuple[_Path, str, bool]] = []
    method = config.method
    if method.builds_image and config.image is None:
        issues.append(
            (
                ("method",),
                f"method {method.value} builds our own image: add an image: section (registry, repository)",
                False,
            )
        )
    if not method.builds_image and config.image is not None:
        issues.append(
            (("image",), "image: is only used by methods custom-handler and fastapi; remove it for worker-vllm", True)
        )
    if not method.builds_image and config.model.bake:
        issues.append((("model", "bake"), "bake needs our own image (methods custom-handler and fastapi)", True))
    if config.endpoint.workers_min > config.endpoint.workers_max:
        issues.append(
            (
                ("endpoint", "workers_min"),
                f"workers_min ({config.endpoint.workers_min}) is larger than "
                f"workers_max ({config.endpoint.workers_max})",
                False,
            )
        )
    for key, item in config.endpoint.env.items():
        key_path: _Path = ("endpoint", "env", key)
        if not _ENV_NAME.match(key):
            issues.append((key_path, f"{shorten(key)} is not a valid environment variable name", True))
        elif key.upper() in MANAGED_ENV:
            issues.append(
                (key_path, f"{key} is set by rpdeploy from the model: and endpoint: sections; set it there", True)
            )
        elif isinstance(item, str) and item and SECRET_NAME.search(key) and not SECRET_REFERENCE.match(item):
            issues.append(
                (
                    key_path,
                    f"{key} looks like a credential but has a literal value; write {key}: {{env: NAME}} so the value "
                    "stays out of deploy.yaml (or a RunPod secret reference: '{{ RUNPOD_SECRET_name }}')",
                    False,
                )
            )
    backend = config.backend
    if backend is not None:
        names = [backend.env_names.endpoint_url, backend.env_names.api_key, backend.env_names.endpoint_id]
        if len(set(names)) != len(names):
            issues.append((("backend", "env_names"), "the env var names must be different from each other", True))
        test = backend.integration_test
        if test is not None and test.expect.json_path is None and test.expect.contains is None:
            issues.append(
                (
                    ("backend", "integration_test", "expect"),
                    "give json_path or contains: a status alone does not show that the model answered",
                    True,
                )
            )
    issues.extend(_weights_issues(config))
    return issues


def _weights_issues(config: Config) -> list[tuple[_Path, str, bool]]:
    """model.weights, the network volume it may need, and the HF token's secret."""
    issues: list[tuple[_Path, str, bool]] = []
    model, endpoint = config.model, config.endpoint
    chosen = model.weights
    where: _Path = ("model", "weights")
    if chosen is WeightsSource.BAKE and not config.method.builds_image:
        issues.append((where, "weights: bake needs our own image (methods custom-handler and fastapi)", False))
    if model.bake and chosen not in (None, WeightsSource.BAKE):
        issues.append((where, f"bake: true puts the weights in the image, but weights is {chosen.value}", False))
    if model.is_path and chosen not in (None, WeightsSource.BAKE):
        issues.append(
            (
                where,
                f"{model.name} is a folder inside the image: its weights come with the image (weights: bake)",
                False,
            )
        )
    source = model.weights_source
    if source is WeightsSource.NETWORK_VOLUME and endpoint.network_volume_id is None:
        issues.append(
            (
                where,
                "weights: network-volume needs endpoint.network_volume_id (a volume in the endpoint's region)",
                False,
            )
        )
    if endpoint.network_volume_id is not None and source is not WeightsSource.NETWORK_VOLUME:
        issues.append(
            (
                ("endpoint", "network_volume_id"),
                f"a network volume is only used with model.weights: network-volume (weights is {source.value}; "
                "RunPod mounts its model cache at the same path, /runpod-volume)",
                True,
            )
        )
    if source is WeightsSource.CACHED:
        # "Each endpoint is currently limited to one cached model at a time." (docs
        # serverless/endpoints/model-caching.mdx): a second repo would be downloaded by every worker.
        tokenizer = endpoint.env.get("TOKENIZER_NAME")
        if isinstance(tokenizer, str) and tokenizer and tokenizer != model.name:
            issues.append(
                (
                    ("endpoint", "env", "TOKENIZER_NAME"),
                    f"RunPod caches one model per endpoint, and TOKENIZER_NAME names a second repo ({tokenizer}) "
                    "that every cold start would download; drop it, or set model.weights: download",
                    False,
                )
            )
    if model.hf_token is None:
        for key in ("hf_token_secret", "hf_token_delivery"):
            if key in model.model_fields_set:
                issues.append((("model", key), "there is no model.hf_token to deliver", True))
    return issues


def parse_config(text: str, *, path: Path = DEFAULT_CONFIG, display: str | None = None) -> Config:
    """Validate deploy.yaml's text. Raises ConfigError listing every problem with its location."""
    shown = display or str(path)
    try:
        node, data = compose_yaml(text, DEPLOY_YAML)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = Location(shown, mark.line + 1, mark.column + 1) if mark else Location(shown)
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        if "'\\t'" in problem or "\t" in problem:
            problem += " (YAML indents with spaces, not tabs: replace the tab with spaces)"
        raise ConfigError(
            f"{shown} is not valid YAML", issues=(ConfigIssue(location, "", problem or "syntax error"),)
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown} is not valid YAML: {exc}") from None

    if node is None or data is None:
        raise ConfigError(f"{shown} is empty", hint="run `rpdeploy init` to write one")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{shown} must be a mapping of sections (method:, model:, endpoint:, ...)",
            issues=(
                ConfigIssue(Location(shown, node.start_mark.line + 1, node.start_mark.column + 1), "", "not a mapping"),
            ),
        )

    marks = _Marks()
    marks.walk(node)
    issues: list[ConfigIssue] = []
    for dup_path, mark in marks.duplicates:
        issues.append(
            ConfigIssue(
                Location(shown, mark.line + 1, mark.column + 1),
                _dotted(dup_path),
                "duplicate key (a second value would silently win)",
            )
        )
    if issues:
        raise ConfigError(f"{shown} has {len(issues)} problem(s)", issues=tuple(issues))

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            field_path = _field_path(error["loc"])
            on_key = error["type"] in ("extra_forbidden",)
            line, column = marks.locate(field_path, key=on_key)
            issues.append(
                ConfigIssue(
                    Location(shown, line, column), _dotted(field_path), _bounded(_describe_error(error, field_path))
                )
            )
        raise ConfigError(f"{shown} has {len(issues)} problem(s)", issues=tuple(_unique(issues))) from None

    for field_path, message, on_key in _semantic_issues(config):
        line, column = marks.locate(field_path, key=on_key)
        issues.append(ConfigIssue(Location(shown, line, column), _dotted(field_path), message))
    if issues:
        raise ConfigError(f"{shown} has {len(issues)} problem(s)", issues=tuple(issues))

    config._path = path
    config._text_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return config


def _bounded(message: str, limit: int = 600) -> str:
    """A message cut to ``limit`` characters: values in it are shortened already, this is the backstop."""
    return message if len(message) <= limit else message[:limit] + "..."


def _unique(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: set[str] = set()
    out = []
    for issue in issues:
        key = str(issue)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


def load_config(path: Path = DEFAULT_CONFIG) -> Config:
    """Read and validate deploy.yaml."""
    try:
        raw = read_limited(path, DEPLOY_YAML.size, what="")
    except FileNotFoundError:
        raise ConfigError(f"{path} not found", hint="run `rpdeploy init` to create it, or pass --config PATH") from None
    text = decode_text(raw, what="", path=path)
    return parse_config(text, path=path.absolute(), display=str(path))


def field_location(config: Config, *path: str, display: str | None = None) -> Location:
    """Where ``path`` (e.g. "image", "repository") is in the file ``config`` was read from."""
    shown = display or str(config.path)
    try:
        node, _ = compose_yaml(config.path.read_text(encoding="utf-8"), DEPLOY_YAML)
    except (OSError, ValueError, yaml.YAMLError, ConfigError):
        return Location(shown)
    if node is None:
        return Location(shown)
    marks = _Marks()
    marks.walk(node)
    line, column = marks.locate(tuple(path))
    return Location(shown, line, column)


def config_json_schema() -> dict[str, Any]:
    """JSON Schema of deploy.yaml, for editors (yaml-language-server)."""
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rpdeploy deploy.yaml"
    return schema
