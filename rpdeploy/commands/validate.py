"""`rpdeploy validate` and `rpdeploy schema`."""

from __future__ import annotations

from rpdeploy.commands._common import DEFAULT_CONFIG, ConfigOption, JsonOption, emit, load
from rpdeploy.output import print_json


def validate(config: ConfigOption = DEFAULT_CONFIG, json_output: JsonOption = False) -> None:
    """Check deploy.yaml and do nothing else: every problem, with its line and field.

    Examples:

    \b
      rpdeploy validate
      rpdeploy validate -c staging/deploy.yaml --json
    """
    cfg = load(config)
    summary = {
        "config": str(config),
        "method": cfg.method.value,
        "model": cfg.model.name,
        "endpoint": cfg.endpoint.name,
        "gpu": cfg.endpoint.gpu_type.id,
        "backend": cfg.backend.host or "this machine" if cfg.backend else None,
    }
    emit(json_output, summary, f"{config}: valid ({cfg.method.value}, {cfg.model.name} on {cfg.endpoint.gpu})")


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
