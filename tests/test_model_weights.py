"""model.weights: cold starts without downloads (issue 12, item 3).

deploy.yaml chooses where a new worker gets the weights; an un-baked Hugging Face model is a
RunPod cached model by default, for all three methods: the endpoint carries its reference in
RunPod's own form. `check` and `plan` show the cold start of the chosen strategy and the
others, and RUNPOD_INIT_TIMEOUT goes into the template env when the estimate is longer than
RunPod's 7 minutes. What reaches RunPod is read from the emulator's state and request log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rpdeploy.config import WeightsSource, parse_config
from rpdeploy.emulator import Emulator
from rpdeploy.errors import ConfigError
from rpdeploy.worker.render import WorkerContext, render_worker
from tests.conftest import CliRunnerFn, mutations

MODEL = "Qwen/Qwen2.5-7B-Instruct"
REFERENCE = f"https://huggingface.co/{MODEL}:main"
IMAGE = "registry.example/acme/worker@sha256:" + "ab" * 32


def document(method: str = "worker-vllm", **model: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "method": method,
        "model": {"name": MODEL, "max_model_len": 8192, **model},
        "endpoint": {"name": "qwen", "gpu": "L4", "workers_max": 2},
    }
    if method != "worker-vllm":
        data["image"] = {"registry": "registry.example", "repository": "acme/worker"}
    return data


def write(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "deploy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, display="deploy.yaml")
    return [str(issue) for issue in caught.value.issues]


# --- deploy.yaml ------------------------------------------------------------------------------


def test_a_hub_model_is_cached_by_default_and_bake_stays_bake() -> None:
    assert parse_config(yaml.safe_dump(document())).model.weights_source is WeightsSource.CACHED
    baked = parse_config(yaml.safe_dump(document("custom-handler", bake=True))).model
    assert baked.weights_source is WeightsSource.BAKE and baked.downloads_at_build
    folder = parse_config(yaml.safe_dump(document("custom-handler", name="/models/qwen"))).model
    assert folder.weights_source is WeightsSource.BAKE and not folder.downloads_at_build
    assert (
        parse_config(yaml.safe_dump(document(revision="v1.0"))).model.reference
        == f"https://huggingface.co/{MODEL}:v1.0"
    )
    # weights: bake is bake: true (the Dockerfile downloads the model at build time).
    chosen = WorkerContext.from_config(parse_config(yaml.safe_dump(document("custom-handler", weights="bake"))))
    assert chosen.bake and "snapshot_download" in render_worker(chosen)["Dockerfile"]


METHOD_1 = """\
method: worker-vllm
model:
  name: Qwen/Qwen2.5-7B-Instruct
  weights: {weights}
endpoint:
  name: qwen
{endpoint}"""


@pytest.mark.parametrize(
    ("weights", "endpoint", "expected"),
    [
        ("bake", "", "deploy.yaml:4:12: model.weights: weights: bake needs our own image"),
        (
            "network-volume",
            "",
            "deploy.yaml:4:12: model.weights: weights: network-volume needs endpoint.network_volume_id",
        ),
        (
            "fast",
            "",
            "deploy.yaml:4:12: model.weights: Input should be 'cached', 'network-volume', 'bake' or 'download'",
        ),
        (
            "cached",
            "  network_volume_id: vol0000001\n",
            "deploy.yaml:7:3: endpoint.network_volume_id: a network volume is only used with model.weights: "
            "network-volume",
        ),
        (
            "cached",
            "  env:\n    TOKENIZER_NAME: Qwen/Qwen2.5-0.5B-Instruct\n",
            "deploy.yaml:8:21: endpoint.env.TOKENIZER_NAME: RunPod caches one model per endpoint, and TOKENIZER_NAME "
            "names a second repo (Qwen/Qwen2.5-0.5B-Instruct)",
        ),
    ],
    ids=["bake without an image", "volume without its id", "unknown value", "volume not used", "a second model"],
)
def test_a_weights_mistake_names_its_line_and_field(weights: str, endpoint: str, expected: str) -> None:
    found = problems(METHOD_1.format(weights=weights, endpoint=endpoint))
    assert any(issue.startswith(expected) for issue in found), found


def test_conflicting_weights_settings_are_refused(cli: CliRunnerFn, project: Path) -> None:
    text = yaml.safe_dump(document("custom-handler", bake=True, weights="download", hf_token_secret="bad-name"))
    (project / "deploy.yaml").write_text(text)
    error = json.loads(cli("validate", "--json", expected_code=3).stdout)["error"]
    messages = {issue["field"]: issue["message"] for issue in error["issues"]}
    assert "letters, digits and _" in messages["model.hf_token_secret"]
    folder = yaml.safe_dump(document("custom-handler", name="/models/qwen", weights="cached"))
    assert any("is a folder inside the image" in p for p in problems(folder))
    both = yaml.safe_dump(document("custom-handler", bake=True, weights="download"))
    assert any("bake: true puts the weights in the image, but weights is download" in p for p in problems(both))
    orphan = yaml.safe_dump(document(hf_token_secret="my_token"))
    assert any(
        p.startswith("deploy.yaml:") and "model.hf_token_secret: there is no model.hf_token" in p
        for p in problems(orphan)
    )
    # A RunPod secret reference is not a literal secret in endpoint.env.
    data = document()
    data["endpoint"]["env"] = {"OTHER_API_KEY": "{{ RUNPOD_SECRET_other_key }}"}
    assert parse_config(yaml.safe_dump(data)).endpoint.env["OTHER_API_KEY"] == "{{ RUNPOD_SECRET_other_key }}"


# --- what RunPod gets -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["worker-vllm", "custom-handler", "fastapi"])
def test_every_method_asks_for_the_cached_model_by_default(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, method: str
) -> None:
    write(project, document(method))
    image = [] if method == "worker-vllm" else ["--image", IMAGE]
    planned = json.loads(cli("endpoint", "create", "--dry-run", "--json", *image).stdout)
    [endpoint_op] = [op for op in planned["operations"] if op["kind"] == "create-endpoint"]
    assert {c["field"]: c["new"] for c in endpoint_op["changes"]}["model_references"] == [REFERENCE]
    cli("endpoint", "create", *image)
    [created] = runpod_emulator.requests.graphql("SaveEndpoint")
    assert created.variables is not None and created.variables["input"]["modelReferences"] == [REFERENCE]
    [stored] = runpod_emulator.state.snapshot()["endpoints"]
    assert stored["modelReferences"][0].rpartition(":")[0] == f"https://huggingface.co/{MODEL}"


def test_references_are_sent_only_when_they_must_change(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator
) -> None:
    write(project, document())
    cli("deploy")
    [endpoint] = runpod_emulator.state.snapshot()["endpoints"]
    runpod_emulator.requests.clear()
    cli("deploy", "--force")  # every stage again: RunPod's resolved commit still matches ":main"
    assert mutations(runpod_emulator) == []

    write(project, document(weights="download"))
    cli("deploy")
    [update] = runpod_emulator.requests.graphql("SaveEndpoint")
    assert update.variables is not None and update.variables["input"]["modelReferences"] == []
    [after] = runpod_emulator.state.snapshot()["endpoints"]
    assert after["id"] == endpoint["id"] and after["modelReferences"] == []

    runpod_emulator.requests.clear()
    write(project, document())
    cli("deploy")
    [update] = runpod_emulator.requests.graphql("SaveEndpoint")
    assert update.variables is not None and update.variables["input"]["modelReferences"] == [REFERENCE]
    assert runpod_emulator.state.snapshot()["endpoints"][0]["modelReferences"] == endpoint["modelReferences"]


def test_a_network_volume_keeps_the_model_for_our_workers(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator
) -> None:
    volume = runpod_emulator.state.add_network_volume("models", size=100)
    data = document("custom-handler", weights="network-volume")
    data["endpoint"]["network_volume_id"] = volume.id
    write(project, data)
    cli("endpoint", "create", "--image", IMAGE)
    [endpoint] = runpod_emulator.state.snapshot()["endpoints"]
    assert endpoint["networkVolumeIds"] == [{"networkVolumeId": volume.id, "dataCenterId": volume.data_center_id}]
    assert endpoint["modelReferences"] == []
    [template] = runpod_emulator.state.snapshot()["templates"]
    env = {item["key"]: item["value"] for item in template["env"]}
    # The worker downloads onto the volume, where the next one looks first.
    assert env["HF_HUB_CACHE"] == "/runpod-volume/huggingface-cache/hub" and "MODEL_PATH" not in env


def test_a_baked_model_is_loaded_from_the_image(cli: CliRunnerFn, project: Path, runpod_emulator: Emulator) -> None:
    write(project, document("custom-handler", bake=True))
    cli("endpoint", "create", "--image", IMAGE)
    [template] = runpod_emulator.state.snapshot()["templates"]
    assert {item["key"]: item["value"] for item in template["env"]}["MODEL_PATH"] == "/models/model"
    assert runpod_emulator.state.snapshot()["endpoints"][0]["modelReferences"] == []


# --- the estimate -----------------------------------------------------------------------------


def test_check_shows_the_chosen_strategy_the_others_and_the_figures(cli: CliRunnerFn, project: Path) -> None:
    write(project, document())
    lines = cli("check", "--offline").stdout.splitlines()
    text = "\n".join(lines)
    assert any(
        line.startswith(
            "  cold start (model.weights: cached): ~132 s (image pull 64 s, weight load 8 s, engine start 60 s)"
        )
        for line in lines
    ), text
    assert "    other strategies: network-volume ~200 s (first ~276 s), download ~208 s" in lines
    assert "    recommended: cached (the fastest here)" in lines
    assert "    RUNPOD_INIT_TIMEOUT: not needed (under RunPod's 7-minute limit)" in lines
    assert "      network volume read: 200 MB/s (docs storage/network-volumes.mdx: 200-400 MB/s (low end))" in lines
    assert any("docs serverless/development/optimization.mdx" in line for line in lines)

    write(project, document("custom-handler", weights="download"))
    lines = cli("check", "--offline").stdout.splitlines()
    assert "    recommended: model.weights: cached (~132 s instead of ~208 s)" in lines
    assert any(
        line.startswith("    other strategies: cached ~132 s, network-volume ~200 s") and "bake ~253 s" in line
        for line in lines
    )

    plan = json.loads(cli("check", "--offline", "--json").stdout)["check"]["cost"]["cold_start_plan"]
    assert plan["chosen"]["strategy"] == "download" and plan["recommended"] == "cached"
    assert [o["strategy"] for o in plan["options"]] == ["cached", "network-volume", "download", "bake"]
    assert plan["init_timeout"] is None and {f["name"] for f in plan["figures"]} >= {"image", "Hub download"}


def test_a_cold_start_over_seven_minutes_sets_runpod_init_timeout(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the built-in table, not the network
    data = document(name="Qwen/Qwen2.5-32B-Instruct", weights="download")
    data["endpoint"].update(gpu="H100", gpu_count=2)
    write(project, data)
    check = json.loads(cli("check", "--json").stdout)["check"]["cost"]["cold_start_plan"]
    longest = check["chosen"]["seconds"]
    assert longest > 420 and check["init_timeout"] >= 1.5 * longest and check["init_timeout"] % 60 == 0
    assert check["init_timeout_source"] == "estimate"
    plan = cli("plan").stdout
    assert f"env.RUNPOD_INIT_TIMEOUT: (unset) -> '{check['init_timeout']}'" in plan
    assert f"RUNPOD_INIT_TIMEOUT={check['init_timeout']}: the estimate" in plan

    cli("deploy")
    [template] = runpod_emulator.state.snapshot()["templates"]
    env = {item["key"]: item["value"] for item in template["env"]}
    assert env["RUNPOD_INIT_TIMEOUT"] == str(check["init_timeout"])

    # Cached instead: the download happens before the worker starts, the default is enough.
    data["model"]["weights"] = "cached"
    write(project, data)
    cli("deploy")
    [template] = runpod_emulator.state.snapshot()["templates"]
    assert "RUNPOD_INIT_TIMEOUT" not in {item["key"] for item in template["env"]}
    # deploy.yaml's own value wins, and a short one is warned about.
    data["endpoint"]["init_timeout"] = 120
    write(project, data)
    result = cli("deploy")
    assert "endpoint.init_timeout 120 s is shorter than the ~" in result.stderr
    [template] = runpod_emulator.state.snapshot()["templates"]
    assert {item["key"]: item["value"] for item in template["env"]}["RUNPOD_INIT_TIMEOUT"] == "120"


# --- the HF token's secret ----------------------------------------------------------------------


def test_a_refused_secret_operation_names_the_way_out(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_TEST_token_for_the_way_out_1234")
    write(project, document(hf_token="HF_TOKEN"))
    # As if RunPod did not answer `myself { secrets }` (only secretCreate/secretDelete are documented).
    runpod_emulator.faults.graphql_errors(
        count=None, message="Cannot query field 'secrets' on type 'User'.", operation="Secrets"
    )
    failed = json.loads(cli("endpoint", "create", "--json", expected_code=7).stdout)["error"]
    assert failed["message"].startswith("cannot keep model.hf_token in the RunPod secret 'rpdeploy_qwen_hf_token': ")
    assert "model.hf_token_delivery: template-env" in failed["hint"]
    assert runpod_emulator.state.snapshot()["templates"] == []  # nothing referring to a missing secret
    write(project, document(hf_token="HF_TOKEN", hf_token_delivery="template-env"))
    result = cli("endpoint", "create")
    [template] = runpod_emulator.state.snapshot()["templates"]
    assert {e["key"]: e["value"] for e in template["env"]}[
        "HUGGING_FACE_HUB_TOKEN"
    ] == "hf_TEST_token_for_the_way_out_1234"
    assert "hf_TEST_token_for_the_way_out_1234" not in result.stdout + result.stderr
