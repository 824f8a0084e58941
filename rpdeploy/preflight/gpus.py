"""RunPod GPU types and serverless pools: names, memory sizes and list prices.

This table is what deploy.yaml's GPU names (``L4``) mean, the source of memory sizes (fit
check) and of list prices (cost preview). Sources: RunPod docs ``references/gpu-types.mdx``
and the serverless pricing table (flex price per second, dated in
``versions.PRICE_TABLE_DATE``). It never decides which cards an endpoint may run on: a pool
can gain a card the table does not know, and RunPod ignores an exclusion it does not
recognise, so a ``gpuIds`` built from a stale table quietly lets other cards in. ``gpuIds``
is built only from RunPod's live pool list (:func:`gpu_ids_for`). (RunPod's docs disagree
on where the L4 sits, ``AMPERE_24`` in most pages and ``ADA_24`` in one; the live list
settles it.)
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuType:
    """One GPU type as RunPod names it."""

    id: str  # RunPod's GPU type id, e.g. "NVIDIA L4"
    short: str  # what deploy.yaml says, e.g. "L4"
    pool: str  # serverless pool id, e.g. "AMPERE_24"
    memory_gib: float  # memory CUDA reports as total (what vLLM's utilisation is a fraction of)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class GpuPool:
    id: str
    memory_gb: int
    price_per_second: float | None  # USD, flex workers; None where RunPod publishes none


POOLS: dict[str, GpuPool] = {
    pool.id: pool
    for pool in (
        GpuPool("AMPERE_16", 16, 0.00016),
        GpuPool("AMPERE_24", 24, 0.00019),
        GpuPool("ADA_24", 24, 0.00031),
        GpuPool("ADA_32_PRO", 32, None),
        GpuPool("AMPERE_48", 48, 0.00034),
        GpuPool("ADA_48_PRO", 48, 0.00053),
        GpuPool("AMPERE_80", 80, 0.00076),
        GpuPool("ADA_80_PRO", 80, 0.00116),
        GpuPool("BLACKWELL_96", 96, 0.00111),
        GpuPool("HOPPER_141", 141, 0.00155),
        GpuPool("BLACKWELL_180", 180, 0.00240),
    )
}

# memory_gib: the total torch.cuda reports. For the L4 that is 22.04 GiB (measured in public
# vLLM logs), less than its nominal 24 GB; others are their MiB capacity / 1024, rounded down.
GPU_TYPES: tuple[GpuType, ...] = (
    GpuType("NVIDIA RTX A4000", "A4000", "AMPERE_16", 15.7),
    GpuType("NVIDIA RTX A4500", "A4500", "AMPERE_16", 19.7),
    GpuType("NVIDIA RTX 4000 Ada Generation", "RTX4000-ADA", "AMPERE_16", 19.7),
    GpuType("NVIDIA RTX 2000 Ada Generation", "RTX2000-ADA", "AMPERE_16", 15.7),
    GpuType("NVIDIA L4", "L4", "AMPERE_24", 22.04),
    GpuType("NVIDIA RTX A5000", "A5000", "AMPERE_24", 23.6),
    GpuType("NVIDIA GeForce RTX 3090", "RTX3090", "AMPERE_24", 23.6, ("3090",)),
    GpuType("NVIDIA GeForce RTX 4090", "RTX4090", "ADA_24", 23.6, ("4090",)),
    GpuType("NVIDIA GeForce RTX 5090", "RTX5090", "ADA_32_PRO", 31.3, ("5090",)),
    GpuType("NVIDIA A40", "A40", "AMPERE_48", 44.3),
    GpuType("NVIDIA RTX A6000", "A6000", "AMPERE_48", 47.4),
    GpuType("NVIDIA L40", "L40", "ADA_48_PRO", 44.3),
    GpuType("NVIDIA L40S", "L40S", "ADA_48_PRO", 44.3),
    GpuType("NVIDIA RTX 6000 Ada Generation", "RTX6000-ADA", "ADA_48_PRO", 47.4),
    GpuType("NVIDIA A100 80GB PCIe", "A100", "AMPERE_80", 79.1, ("A100-80GB",)),
    GpuType("NVIDIA A100-SXM4-80GB", "A100-SXM", "AMPERE_80", 79.1),
    GpuType("NVIDIA H100 80GB HBM3", "H100", "ADA_80_PRO", 79.1, ("H100-SXM",)),
    GpuType("NVIDIA H100 PCIe", "H100-PCIE", "ADA_80_PRO", 79.1),
    GpuType("NVIDIA H100 NVL", "H100-NVL", "ADA_80_PRO", 93.1),
    GpuType("NVIDIA RTX PRO 6000 Blackwell Server Edition", "RTXPRO6000", "BLACKWELL_96", 94.9),
    GpuType("NVIDIA H200", "H200", "HOPPER_141", 139.8),
    GpuType("NVIDIA B200", "B200", "BLACKWELL_180", 178.4),
)

_BY_NAME: dict[str, GpuType] = {}
for _gpu in GPU_TYPES:
    for _name in (_gpu.id, _gpu.short, *_gpu.aliases):
        _BY_NAME[_name.upper()] = _gpu


def find_gpu(name: str) -> GpuType | None:
    """The GPU type for a short name ("L4"), an alias or a RunPod id ("NVIDIA L4")."""
    return _BY_NAME.get(name.strip().upper())


def gpu_choices() -> list[str]:
    return [gpu.short for gpu in GPU_TYPES]


def suggest_gpu(name: str) -> str | None:
    """The closest known short name, for "did you mean" hints."""
    matches = difflib.get_close_matches(name.upper(), [g.short.upper() for g in GPU_TYPES], n=1, cutoff=0.5)
    if not matches:
        return None
    gpu = find_gpu(matches[0])
    return gpu.short if gpu else None


def pool_members(pool_id: str) -> tuple[str, ...]:
    """GPU type ids this table places in a pool (for the emulator's default pool answer)."""
    return tuple(gpu.id for gpu in GPU_TYPES if gpu.pool == pool_id)


@dataclass(frozen=True)
class GpuSelection:
    """A ``gpuIds`` value as what it means: pools allowed, GPU types excluded from them.

    Order carries no meaning to RunPod, so two values with the same sets are the same
    selection (runpod flash normalises ``gpuIds`` "for stable comparisons" the same way).
    """

    pools: frozenset[str]
    exclusions: frozenset[str]

    @classmethod
    def parse(cls, gpu_ids: str) -> GpuSelection:
        tokens = [token.strip() for token in gpu_ids.split(",") if token.strip()]
        return cls(
            pools=frozenset(t for t in tokens if not t.startswith("-")),
            exclusions=frozenset(t[1:].strip() for t in tokens if t.startswith("-")),
        )

    def text(self) -> str:
        """The canonical ``gpuIds`` string (GraphQL's form): pools, then exclusions, each sorted."""
        return ",".join([*sorted(self.pools), *(f"-{t}" for t in sorted(self.exclusions))])

    def to_dict(self) -> dict[str, list[str]]:
        """rpdeploy's own form (plan, ledger, ``endpoint get``): REST v2's ``pools`` and ``excludedTypes``."""
        return {"pools": sorted(self.pools), "excluded": sorted(self.exclusions)}

    def describe(self) -> str:
        """For people: "AMPERE_24 without NVIDIA GeForce RTX 3090, NVIDIA RTX A5000"."""
        pools = ", ".join(sorted(self.pools)) or "(no pool)"
        return pools if not self.exclusions else f"{pools} without {', '.join(sorted(self.exclusions))}"

    @classmethod
    def from_dict(cls, data: dict[str, list[str]]) -> GpuSelection:
        return cls(frozenset(data.get("pools") or ()), frozenset(data.get("excluded") or ()))

    def allowed(self, pools: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
        """The GPU type ids this selection lets RunPod use, given the live pool membership."""
        members = [t for pool in sorted(self.pools) for t in pools.get(pool, ())]
        return tuple(dict.fromkeys(t for t in members if t not in self.exclusions))


class PoolError(ValueError):
    """The live pool list does not hold the GPU type."""


def gpu_ids_for(gpu: GpuType, pools: dict[str, tuple[str, ...]]) -> str:
    """:func:`selection_for` as GraphQL's ``gpuIds`` text."""
    return selection_for(gpu, pools).text()


def selection_for(gpu: GpuType, pools: dict[str, tuple[str, ...]]) -> GpuSelection:
    """The selection that lets RunPod use exactly this GPU type and nothing else.

    ``gpuIds`` takes pool ids, plus ``-<type id>`` exclusions: "AMPERE_24,-NVIDIA GeForce
    RTX 3090,-NVIDIA RTX A5000" means "an L4". ``pools`` is RunPod's live answer
    (``serverlessGpuPools``): the pools are the ones holding the type now (normally one),
    and every other member of them, including types this table has never heard of, is
    excluded.
    """
    holders = frozenset(pool_id for pool_id, members in pools.items() if gpu.id in members)
    if not holders:
        raise PoolError(f"RunPod lists no serverless pool with {gpu.id}")
    others = frozenset(member for pool in holders for member in pools[pool] if member != gpu.id)
    return GpuSelection(holders, others)
