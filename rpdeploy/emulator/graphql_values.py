"""Values and shapes the GraphQL control plane's resolvers share (``control.py`` and the
resolver modules ``graphql_templates.py``, ``graphql_endpoints.py``).

It owns the resolver-side error (:func:`fail`: a ``GraphQLError``, which graphql-core answers
as RunPod does, ``errors[]`` with ``message`` and ``path``), reading optional input fields
with their defaults, the release diffs a change records (``releases.py``), the CUDA version
list, and the GPU catalogue's answer shape (``gpuTypes``). Sources are tagged as in
``control.py``'s docstring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rpdeploy.emulator.state import Endpoint, EnvVar, Template
from rpdeploy.preflight import gpus

CUDA_VERSIONS = ("11.8", *(f"12.{minor}" for minor in range(10)), "13.0")


def template_diff(old: Template, new: Template) -> list[tuple[str, Any, Any]]:
    """A bound template's change as the endpoint's release diff, in REST v2's names."""
    pairs = (
        ("image", old.image_name, new.image_name),
        ("env", old.env_dict(), new.env_dict()),
        ("disk", old.container_disk_in_gb, new.container_disk_in_gb),
        ("registry", old.container_registry_auth_id or None, new.container_registry_auth_id or None),
        ("args", old.docker_args, new.docker_args),
    )
    return [(field, a, b) for field, a, b in pairs if a != b]


def endpoint_diff(old: Endpoint, new: Endpoint) -> list[tuple[str, Any, Any]]:
    pairs = (
        ("gpu.pools", old.gpu_ids, new.gpu_ids),
        ("templateId", old.template_id, new.template_id),
        ("networkVolumes", old.network_volume_ids, new.network_volume_ids),
        ("modelReferences", old.model_references, new.model_references),
        ("requestTTL", old.request_ttl, new.request_ttl),
    )
    return [(field, a, b) for field, a, b in pairs if a != b]


def fail(message: str) -> Exception:
    from graphql import GraphQLError

    return GraphQLError(message)


def root_fields(operation: Any) -> tuple[str, ...]:
    from graphql import FieldNode

    if operation is None:
        return ()
    return tuple(s.name.value for s in operation.selection_set.selections if isinstance(s, FieldNode))


def is_query(operation: Any) -> bool:
    from graphql import OperationType

    return operation is not None and operation.operation is OperationType.QUERY


def required_text(data: Mapping[str, Any], key: str, *, prefix: str = "") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise fail(f"{prefix}{key} is required")
    return value


def text_or(data: Mapping[str, Any], key: str, default: str) -> str:
    value = data.get(key)
    return default if value is None else str(value)


def bool_or(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key)
    return default if value is None else bool(value)


def int_or(data: Mapping[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = data.get(key)
    if value is None:
        return default
    if value < minimum:
        raise fail(f"{key} must be at least {minimum}, got {value}")
    return int(value)


def env_vars(items: Any) -> list[EnvVar]:
    env = []
    for item in items or ():
        if item is None:
            continue
        if not item["key"]:
            raise fail("env keys must not be empty")
        env.append(EnvVar(key=item["key"], value=item["value"]))
    return env


def check_cuda_versions(value: str, field: str, *, single: bool = False) -> None:
    versions = [v.strip() for v in value.split(",")]
    if single and len(versions) != 1:
        raise fail(f"{field} takes one CUDA version, got {value!r}")
    for version in versions:
        if version not in CUDA_VERSIONS:
            raise fail(f"Invalid {field}: {version!r} is not a CUDA version ({', '.join(CUDA_VERSIONS)})")


def display_name(gpu: gpus.GpuType) -> str:
    """RunPod's display name: the type id without the vendor, e.g. "RTX 3090", "L4"."""
    return gpu.id.removeprefix("NVIDIA ").removeprefix("GeForce ")


def gpu_type_dict(gpu: gpus.GpuType) -> dict[str, Any]:
    pool = gpus.POOLS.get(gpu.pool)
    # Nominal memory: the pool's size, unless the card is bigger than its pool's label.
    memory = max(pool.memory_gb if pool else 0, math.ceil(gpu.memory_gib))
    return {
        "id": gpu.id,
        "displayName": display_name(gpu),
        "manufacturer": "Nvidia",
        "memoryInGb": memory,
        "maxGpuCount": 8,
        "cudaCores": None,
        "secureCloud": True,
        "communityCloud": True,
        # Pod prices are not part of the table the emulator knows; RunPod's are live data.
        "securePrice": None,
        "communityPrice": None,
        "oneMonthPrice": None,
        "threeMonthPrice": None,
        "oneWeekPrice": None,
        "communitySpotPrice": None,
        "secureSpotPrice": None,
        "lowestPrice": lambda _info, input=None: {
            "gpuName": display_name(gpu),
            "gpuTypeId": gpu.id,
            "minimumBidPrice": None,
            "uninterruptablePrice": None,
            "stockStatus": "High",
        },
    }
