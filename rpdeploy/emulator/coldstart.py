"""How long a simulated worker takes to start, by where it gets the model's weights.

A new worker waits ``FleetConfig.cold_start`` seconds (the image pull and engine start every
start has) plus the time its weights take, times ``FleetConfig.weights_scale`` (0 turns the
weights part off; 1 is RunPod's speed as rpdeploy estimates it; the emulator command uses a
small scale so a "download" is visibly slower without real minutes). The figures are
:mod:`rpdeploy.preflight.cost`'s, each with its source there; what decides the strategy follows RunPod:

* the endpoint names the model in ``modelReferences`` (RunPod's model cache): the weights are
  on the host before the worker starts (docs serverless/endpoints/model-caching.mdx: "Runpod
  automatically tries to start your workers on hosts that already contain the selected
  model"), so only the load from local disk is left. The slow path, no host holding it yet,
  delays the start by RunPod's own download, unbilled; the emulator does not model it;
* ``MODEL_PATH`` in the env names a folder (a model baked into the image): a bigger image pull;
* a network volume: the first worker downloads the model onto it, later ones read it at the
  volume's speed (docs storage/network-volumes.mdx);
* otherwise every worker downloads the weights from the Hub.

The model's size comes from rpdeploy's built-in table of ``config.json`` values
(:mod:`rpdeploy.preflight.models_table`); a model it does not know counts as ``UNKNOWN_MODEL_BYTES``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from rpdeploy.emulator.state import EmulatorState, Endpoint
from rpdeploy.preflight import cost

#: The size assumed for a model the built-in table does not know.
UNKNOWN_MODEL_BYTES = 1_000_000_000
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
#: ``{{ RUNPOD_SECRET_name }}`` in a template env value (docs pods/templates/secrets.mdx).
_SECRET_REFERENCE = re.compile(r"\{\{ RUNPOD_SECRET_([A-Za-z0-9_]+) \}\}")


@dataclass(frozen=True)
class WorkerStart:
    """What a new worker starts with: its env (secrets substituted), where its weights come from
    and the seconds that add to the cold start; ``error`` when RunPod could not start it."""

    env: dict[str, str]
    weights: str
    weights_seconds: float
    error: str | None = None


@cache
def model_bytes(name: str) -> int:
    """The weights' size of a model rpdeploy's table knows (parameters x bytes per parameter)."""
    from rpdeploy.preflight import models_table
    from rpdeploy.preflight.arch import arch_from_config

    found = models_table.find_builtin(name)
    if found is None:
        return UNKNOWN_MODEL_BYTES
    key, data = found
    arch = arch_from_config(data, name=key, source="built-in table")
    per_parameter = arch.quantization.bytes_per_param if arch.quantization else _DTYPE_BYTES.get(arch.torch_dtype, 2)
    return int(arch.parameter_count * per_parameter)


def substitute_secrets(env: Mapping[str, str], secrets: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """The env a worker sees: each ``{{ RUNPOD_SECRET_name }}`` replaced by the secret's value
    ("substitute the encrypted secret value when the Pod starts", docs pods/templates/secrets.mdx).
    A reference to a secret that does not exist is an error ("Make sure no active templates or Pods
    are using the secret before deletion, as this will cause those deployments to fail")."""
    missing: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in secrets:
            missing.append(name)
            return match.group(0)
        return secrets[name]

    resolved = {key: _SECRET_REFERENCE.sub(value, text) for key, text in env.items()}
    if missing:
        return resolved, f"the template references RunPod secrets that do not exist: {', '.join(sorted(set(missing)))}"
    return resolved, None


def _repo(reference: str) -> str:
    """``https://huggingface.co/ORG/NAME:REF`` -> ``org/name``."""
    path = reference.removeprefix("https://huggingface.co/")
    return path.rpartition(":")[0].lower() if ":" in path else path.lower()


def worker_start(state: EmulatorState, endpoint: Endpoint, now: float, scale: float) -> WorkerStart:
    """How the next worker of ``endpoint`` starts at ``now`` (state lock held)."""
    template = state.templates.get(endpoint.template_id)
    env, error = substitute_secrets(
        template.env_dict() if template else {}, {s.name: s.value for s in state.secrets.values()}
    )
    model = env.get("MODEL_NAME", "").strip()
    weights = float(model_bytes(model)) if model and not model.startswith("/") else float(UNKNOWN_MODEL_BYTES)
    load = weights / cost.LOAD_BYTES_PER_SECOND
    download = weights / cost.HUB_DOWNLOAD_BYTES_PER_SECOND
    baked = env.get("MODEL_PATH", "").startswith("/") or model.startswith("/")
    volumes = [v for v in (endpoint.network_volume_id, *endpoint.network_volume_ids) if v in state.network_volumes]
    if baked:
        kind, seconds = "bake", weights / cost.IMAGE_PULL_BYTES_PER_SECOND + load
    elif model and model.lower() in {_repo(r) for r in endpoint.model_references}:
        kind, seconds = "cached", load
    elif volumes:
        volume = state.network_volumes[volumes[0]]
        read = weights / cost.VOLUME_READ_BYTES_PER_SECOND
        ready = volume.models.get(model)
        if ready is not None and ready <= now:
            kind, seconds = "network-volume", read
        else:
            # The first worker downloads it onto the volume; workers started before it is
            # complete download it too (each its own copy, as huggingface_hub would).
            kind, seconds = "network-volume (first download)", download + read
            if ready is None:
                volume.models[model] = now + (download + read) * scale
    else:
        kind, seconds = "download", download + load
    return WorkerStart(env=env, weights=kind, weights_seconds=seconds * scale, error=error)
