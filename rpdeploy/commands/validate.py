"""`rpdeploy validate` and `rpdeploy schema`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rpdeploy.commands._common import DEFAULT_CONFIG, ConfigOption, JsonOption, config_path, emit, load, reporter
from rpdeploy.output import print_json

if TYPE_CHECKING:
    from rpdeploy.config import Config


def validate(config: ConfigOption = DEFAULT_CONFIG, json_output: JsonOption = False) -> None:
    """Check deploy.yaml and do nothing else: every problem, with its line and field.

    Examples:

    \b
      rpdeploy validate
      rpdeploy validate -c staging/deploy.yaml --json
    """
    path = config_path(config)
    cfg = load(path)
    warnings = _warnings(cfg, str(path))
    out = reporter()
    for warning in warnings:
        out.warn(warning)
    summary = {
        "config": str(path),
        "method": cfg.method.value,
        "model": cfg.model.name,
        "endpoint": cfg.endpoint.name,
        "gpu": cfg.endpoint.gpu_type.id,
        "backend": cfg.backend.host or "this machine" if cfg.backend else None,
        "warnings": warnings,
    }
    emit(json_output, summary, f"{path}: valid ({cfg.method.value}, {cfg.model.name} on {cfg.endpoint.gpu})")


def _warnings(cfg: Config, shown: str) -> list[str]:
    """What deploy.yaml allows but a deploy would trip on, each at its line (no network: the
    gated-model check uses the built-in table here; `check` and `doctor` ask the Hub)."""
    from rpdeploy.config import field_location
    from rpdeploy.preflight.hub import token_problem
    from rpdeploy.worker.scaffold import PLACEHOLDER_NAMESPACE

    out = []
    if cfg.image is not None and cfg.image.repository.startswith(f"{PLACEHOLDER_NAMESPACE}/"):
        where = field_location(cfg, "image", "repository", display=shown)
        out.append(
            f"{where}: image.repository: {cfg.image.repository!r} is the placeholder `rpdeploy init` wrote; set "
            "it to your registry namespace (build --push and deploy refuse it)"
        )
    problem = token_problem(cfg, offline=True)
    if problem is not None:
        out.append(f"{field_location(cfg, 'model', 'name', display=shown)}: {problem}")
    return out


def schema() -> None:
    """Print the JSON Schema of deploy.yaml, for editor completion.

    Example (for yaml-language-server):

    \b
      rpdeploy schema > deploy.schema.json
      # and as the first line of deploy.yaml:
      # yaml-language-server: $schema=./deploy.schema.json
    """
    from rpdeploy.config import config_json_schema

    print_json(config_json_schema())
