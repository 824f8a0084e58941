"""L4 means L4: gpuIds from RunPod's live pools only, compared as sets.

RunPod ignores a gpuIds exclusion it does not recognise, so an exclusion list built from a
stale table lets other cards in without a word. rpdeploy reads ``serverlessGpuPools`` on
every deploy, excludes every other member of the L4's pool (known to it or not), stops when
the pools cannot be read, and treats a reordered answer as no change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rpdeploy.emulator import Emulator
from rpdeploy.preflight import gpus
from rpdeploy.preflight.gpus import GpuSelection
from tests.conftest import CliRunnerFn, mutations
from tests.test_endpoint import errors_in, write_config

L4 = "NVIDIA L4"
PUBLISHED = [
    ("AMPERE_16", ["NVIDIA RTX A4000", "NVIDIA RTX A4500"]),
    ("AMPERE_24", ["NVIDIA L4", "NVIDIA RTX A5000", "NVIDIA GeForce RTX 3090"]),
    ("ADA_24", ["NVIDIA GeForce RTX 4090"]),
]


@pytest.fixture
def emulator(runpod_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    from tests.test_endpoint import APP_SECRET, HF_TOKEN

    monkeypatch.setenv("HF_TOKEN", HF_TOKEN)
    monkeypatch.setenv("APP_SECRET", APP_SECRET)
    runpod_emulator.set_gpu_pools(PUBLISHED)
    return runpod_emulator


def live_pools(emulator: Emulator) -> dict[str, tuple[str, ...]]:
    return {pool: tuple(types) for pool, types in emulator.control.pools}


def allowed(emulator: Emulator) -> tuple[str, ...]:
    """The GPU types RunPod would run the one endpoint on."""
    [endpoint] = emulator.state.snapshot()["endpoints"]
    return GpuSelection.parse(endpoint["gpuIds"]).allowed(live_pools(emulator))


def test_a_reordered_pool_answer_is_no_change(cli: CliRunnerFn, project: Path, emulator: Emulator) -> None:
    write_config(project)
    cli("deploy")
    assert allowed(emulator) == (L4,)
    version = emulator.state.snapshot()["endpoints"][0]["version"]

    emulator.set_gpu_pools([(pool, list(reversed(types))) for pool, types in reversed(PUBLISHED)])
    with emulator.state.lock:  # and RunPod answers gpuIds in another order than it was sent
        [stored] = emulator.state.endpoints.values()
        stored.gpu_ids = "-NVIDIA RTX A5000, AMPERE_24,-NVIDIA GeForce RTX 3090"
    emulator.requests.clear()
    plan = cli("plan", "--detailed-exitcode")
    cli("deploy")
    cli("endpoint", "update")

    assert "RunPod: no changes" in plan.stdout
    assert mutations(emulator) == []
    assert emulator.state.snapshot()["endpoints"][0]["version"] == version


def test_a_card_rpdeploy_never_saw_is_excluded_and_only_the_l4_is_kept(
    cli: CliRunnerFn, project: Path, emulator: Emulator
) -> None:
    write_config(project)
    cli("deploy")
    new_card = "NVIDIA RTX B7000 Ultra"  # in no table of rpdeploy's
    assert gpus.find_gpu(new_card) is None
    emulator.set_gpu_pools([(p, [*t, new_card] if p == "AMPERE_24" else t) for p, t in PUBLISHED])

    emulator.requests.clear()
    cli("deploy")

    [sent] = emulator.requests.graphql("SaveEndpoint")
    assert sent.variables is not None
    assert GpuSelection.parse(sent.variables["input"]["gpuIds"]) == GpuSelection(
        frozenset({"AMPERE_24"}), frozenset({"NVIDIA RTX A5000", "NVIDIA GeForce RTX 3090", new_card})
    )
    assert allowed(emulator) == (L4,)
    emulator.requests.clear()
    cli("deploy")
    assert mutations(emulator) == []  # and then it is settled


def test_the_pool_is_the_one_runpod_names_now(cli: CliRunnerFn, project: Path, emulator: Emulator) -> None:
    # RunPod's docs disagree on L4's pool (AMPERE_24 mostly, ADA_24 in one page): the live list decides.
    emulator.set_gpu_pools(
        [("AMPERE_24", ["NVIDIA RTX A5000", "NVIDIA GeForce RTX 3090"]), ("ADA_24", ["NVIDIA GeForce RTX 4090", L4])]
    )
    write_config(project)
    cli("endpoint", "create")

    [endpoint] = emulator.state.snapshot()["endpoints"]
    assert endpoint["gpuIds"] == "ADA_24,-NVIDIA GeForce RTX 4090"
    assert allowed(emulator) == (L4,)


@pytest.mark.parametrize("fault", ["errors", "empty"])
def test_unreadable_pools_stop_the_deploy_with_a_clear_error(
    cli: CliRunnerFn, project: Path, emulator: Emulator, fault: str
) -> None:
    write_config(project)
    if fault == "errors":
        emulator.faults.graphql_errors(count=None, operation="ServerlessGpuPools")
    else:
        emulator.set_gpu_pools([])  # an answer with no pools at all

    result = cli("deploy", expected_code=7)

    [error] = errors_in(result)
    assert "the endpoint cannot be pinned to NVIDIA L4" in error
    assert emulator.state.snapshot()["endpoints"] == []
    assert "SaveEndpoint" not in mutations(emulator)


def test_a_gpu_in_no_pool_is_refused(cli: CliRunnerFn, project: Path, emulator: Emulator) -> None:
    emulator.set_gpu_pools([(p, [t for t in types if t != L4]) for p, types in PUBLISHED])
    write_config(project)
    result = cli("endpoint", "create", expected_code=7)
    assert errors_in(result) == ["Error: RunPod lists no serverless pool with NVIDIA L4"]
    assert "AMPERE_16, AMPERE_24, ADA_24" in result.stderr or "ADA_24, AMPERE_16, AMPERE_24" in result.stderr


def test_get_shows_the_gpu_by_name_beside_the_raw_value(cli: CliRunnerFn, project: Path, emulator: Emulator) -> None:
    write_config(project)
    cli("endpoint", "create")
    emulator.faults.graphql_errors(count=None, operation="ServerlessGpuPools")
    text = cli("endpoint", "get").stdout
    assert "gpu types              (unknown: RunPod's GPU pools could not be read)" in text


# --- GpuSelection ----------------------------------------------------------------------------


def test_selection_is_a_set_of_pools_and_a_set_of_exclusions() -> None:
    one = GpuSelection.parse("AMPERE_24,-NVIDIA RTX A5000,-NVIDIA GeForce RTX 3090")
    other = GpuSelection.parse(" -NVIDIA GeForce RTX 3090, AMPERE_24 ,-NVIDIA RTX A5000,")
    assert one == other and one.text() == other.text()
    assert one.text() == "AMPERE_24,-NVIDIA GeForce RTX 3090,-NVIDIA RTX A5000"
    assert one != GpuSelection.parse("AMPERE_24,-NVIDIA RTX A5000")


def test_gpu_ids_for_uses_only_the_live_pools() -> None:
    gpu = gpus.find_gpu("L4")
    assert gpu is not None
    pools = {"AMPERE_24": ("NVIDIA RTX A5000", "NVIDIA L4", "NVIDIA Brand New"), "ADA_24": ("NVIDIA L4",)}
    selection = GpuSelection.parse(gpus.gpu_ids_for(gpu, pools))
    # In two pools at once: both, with every other card of both excluded.
    assert selection == GpuSelection(
        frozenset({"AMPERE_24", "ADA_24"}), frozenset({"NVIDIA RTX A5000", "NVIDIA Brand New"})
    )
    assert selection.allowed(pools) == (L4,)
    with pytest.raises(gpus.PoolError):
        gpus.gpu_ids_for(gpu, {"AMPERE_24": ("NVIDIA RTX A5000",)})
