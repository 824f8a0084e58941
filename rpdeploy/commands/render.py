"""`rpdeploy render`."""

from __future__ import annotations

from rpdeploy.commands._common import DEFAULT_CONFIG, ConfigOption, ForceOption, JsonOption, emit, load, reporter


def render(config: ConfigOption = DEFAULT_CONFIG, force: ForceOption = False, json_output: JsonOption = False) -> None:
    """Re-render the worker files (handler.py, Dockerfile, ...) after deploy.yaml changed.

    Files you have edited since rpdeploy wrote them are left alone and reported; --force
    overwrites them after keeping a .bak copy. Method 1 has no worker files.

    Example:

    \b
      rpdeploy render
    """
    from rpdeploy.worker.scaffold import render_project

    cfg = load(config)
    result = render_project(cfg, force=force, reporter=reporter())
    text = "\n".join(f"{f.action:>11}  {f.path}" for f in result.files) or "nothing to render for worker-vllm"
    emit(json_output, {"files": result.files}, text)
