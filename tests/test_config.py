"""deploy.yaml: valid files load; malformed and hostile ones give exit 3 and a located message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rpdeploy.config import SecretRef, load_config, parse_config
from rpdeploy.errors import ConfigError
from rpdeploy.methods import Method
from tests.conftest import ROOT, CliRunnerFn

REFERENCE = """\
method: worker-vllm
model:
  name: Qwen/Qwen2.5-7B-Instruct
  max_model_len: 8192
  gpu_memory_utilization: 0.9
endpoint:
  name: qwen25-7b-instruct
  gpu: L4
  workers_min: 0
  workers_max: 2
"""

METHOD2 = """\
method: 2
model:
  name: Qwen/Qwen2.5-7B-Instruct
image:
  registry: 127.0.0.1:5000
  repository: acme/qwen-worker
endpoint:
  name: qwen-worker
"""


def test_reference_deployment_is_ten_lines_with_the_right_defaults() -> None:
    assert len(REFERENCE.splitlines()) == 10
    config = parse_config(REFERENCE)
    assert config.method is Method.WORKER_VLLM
    assert config.model.max_model_len == 8192
    assert config.model.gpu_memory_utilization == 0.9
    assert config.endpoint.gpu_type.id == "NVIDIA L4"
    assert (config.endpoint.workers_min, config.endpoint.workers_max) == (0, 2)
    assert config.endpoint.flashboot is True
    assert config.runpod.api_key.env == "RUNPOD_API_KEY" and config.runpod.api_key.file is None
    assert config.backend is None
    assert config.cuda_versions() == ["13.0"]


def test_the_repository_deploy_yaml_is_the_reference() -> None:
    config = load_config(ROOT / "deploy.yaml")
    reference = parse_config(REFERENCE)
    assert config.model_dump() == reference.model_dump()


@pytest.mark.parametrize("value", [2, "2", "custom-handler"])
def test_method_by_number_or_name(value: object) -> None:
    config = parse_config(METHOD2.replace("method: 2", f"method: {value!r}" if isinstance(value, str) else "method: 2"))
    assert config.method is Method.CUSTOM_HANDLER
    assert config.image is not None and config.image.name == "127.0.0.1:5000/acme/qwen-worker"


def test_secret_references_resolve_from_env_and_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("hf_from_file\n")
    by_env = SecretRef.model_validate("HF_TOKEN").resolve(base_dir=tmp_path, environ={"HF_TOKEN": "hf_from_env"})
    by_file = SecretRef.model_validate({"file": "token"}).resolve(base_dir=tmp_path, environ={})
    assert by_env.reveal() == "hf_from_env"
    assert by_file.reveal() == "hf_from_file"
    assert "hf_from" not in repr(by_env) + str(by_file)
    with pytest.raises(ConfigError, match="HF_TOKEN is not set"):
        SecretRef(env="HF_TOKEN").resolve(base_dir=tmp_path, environ={})


# Each case: (name, deploy.yaml text, expected (line, column, field) of the first issue).
BAD_CASES: list[tuple[str, str, tuple[int, int, str]]] = [
    ("yaml syntax", "method: 1\nmodel: [unclosed\n", (3, 1, "")),
    ("tab indentation", "method: 1\nmodel:\n\tname: x\n", (3, 1, "")),
    ("not a mapping", "- method: 1\n", (1, 1, "")),
    ("duplicate key", REFERENCE + "method: fastapi\n", (11, 1, "method")),
    ("unknown top-level key", REFERENCE + "endpoints: {}\n", (11, 1, "endpoints")),
    ("typo in nested key", REFERENCE.replace("  gpu: L4", "  gpu_cout: 1"), (8, 3, "endpoint.gpu_cout")),
    ("missing method", REFERENCE.replace("method: worker-vllm\n", ""), (1, 1, "method")),
    ("missing model", "method: 1\nendpoint:\n  name: abc\n", (1, 1, "model")),
    ("missing model name", REFERENCE.replace("  name: Qwen/Qwen2.5-7B-Instruct\n", ""), (3, 3, "model.name")),
    ("method 4", REFERENCE.replace("method: worker-vllm", "method: 4"), (1, 9, "method")),
    ("method bool", REFERENCE.replace("method: worker-vllm", "method: yes"), (1, 9, "method")),
    (
        "model name with shell",
        REFERENCE.replace("Qwen/Qwen2.5-7B-Instruct", '"Qwen/x; rm -rf /"'),
        (3, 9, "model.name"),
    ),
    (
        "model name with newline",
        REFERENCE.replace("Qwen/Qwen2.5-7B-Instruct", '"Qwen/x\\nRUN evil"'),
        (3, 9, "model.name"),
    ),
    (
        "model name with quote",
        REFERENCE.replace("Qwen/Qwen2.5-7B-Instruct", '"Qwen/x\'); import os #"'),
        (3, 9, "model.name"),
    ),
    ("model name with dollar", REFERENCE.replace("Qwen/Qwen2.5-7B-Instruct", '"Qwen/$(id)"'), (3, 9, "model.name")),
    (
        "model name path traversal",
        REFERENCE.replace("Qwen/Qwen2.5-7B-Instruct", "../../etc/passwd"),
        (3, 9, "model.name"),
    ),
    (
        "max_model_len text",
        REFERENCE.replace("max_model_len: 8192", "max_model_len: lots"),
        (4, 18, "model.max_model_len"),
    ),
    (
        "max_model_len zero",
        REFERENCE.replace("max_model_len: 8192", "max_model_len: 0"),
        (4, 18, "model.max_model_len"),
    ),
    ("utilization over 1", REFERENCE.replace("0.9", "1.5"), (5, 27, "model.gpu_memory_utilization")),
    (
        "utilization british",
        REFERENCE.replace("gpu_memory_utilization", "gpu_memory_utilisation"),
        (5, 3, "model.gpu_memory_utilisation"),
    ),
    ("dtype unknown", REFERENCE.replace("  max_model_len: 8192", "  dtype: fp64"), (4, 10, "model.dtype")),
    (
        "quantization unknown",
        REFERENCE.replace("  max_model_len: 8192", "  quantization: int3"),
        (4, 17, "model.quantization"),
    ),
    (
        "literal hf token",
        REFERENCE.replace("  max_model_len: 8192", "  hf_token: hf_AbCdEf123456"),
        (4, 13, "model.hf_token"),
    ),
    (
        "hf token both env and file",
        REFERENCE.replace("  max_model_len: 8192", "  hf_token: {env: A, file: b}"),
        (4, 13, "model.hf_token"),
    ),
    ("gpu unknown", REFERENCE.replace("gpu: L4", "gpu: L5"), (8, 8, "endpoint.gpu")),
    ("gpu count zero", REFERENCE.replace("  gpu: L4", "  gpu_count: 0"), (8, 14, "endpoint.gpu_count")),
    ("workers negative", REFERENCE.replace("workers_min: 0", "workers_min: -1"), (9, 16, "endpoint.workers_min")),
    ("workers min above max", REFERENCE.replace("workers_min: 0", "workers_min: 3"), (9, 16, "endpoint.workers_min")),
    ("idle timeout too long", REFERENCE + "  idle_timeout: 7200\n", (11, 17, "endpoint.idle_timeout")),
    ("endpoint name too short", REFERENCE.replace("name: qwen25-7b-instruct", "name: qw"), (7, 9, "endpoint.name")),
    (
        "endpoint name not a string",
        REFERENCE.replace("name: qwen25-7b-instruct", "name: [a, b]"),
        (7, 9, "endpoint.name"),
    ),
    (
        "literal secret in env",
        REFERENCE + "  env:\n    OPENAI_API_KEY: sk-live-123\n",
        (12, 21, "endpoint.env.OPENAI_API_KEY"),
    ),
    ("managed env key", REFERENCE + "  env:\n    MAX_MODEL_LEN: '4096'\n", (12, 5, "endpoint.env.MAX_MODEL_LEN")),
    ("bad env name", REFERENCE + '  env:\n    "BAD-NAME": x\n', (12, 5, "endpoint.env.BAD-NAME")),
    ("image for method 1", REFERENCE + "image:\n  repository: acme/x\n", (11, 1, "image")),
    (
        "method 2 without image",
        METHOD2.replace("image:\n  registry: 127.0.0.1:5000\n  repository: acme/qwen-worker\n", ""),
        (1, 9, "method"),
    ),
    ("registry with scheme", METHOD2.replace("127.0.0.1:5000", "https://ghcr.io"), (5, 13, "image.registry")),
    ("repository uppercase", METHOD2.replace("acme/qwen-worker", "Acme/Qwen"), (6, 15, "image.repository")),
    (
        "tag latest",
        METHOD2.replace("  repository: acme/qwen-worker\n", "  repository: acme/qwen-worker\n  tag: latest\n"),
        (7, 8, "image.tag"),
    ),
    ("bake for method 1", REFERENCE.replace("  max_model_len: 8192", "  bake: true"), (4, 3, "model.bake")),
    ("backend host with space", REFERENCE + "backend:\n  host: bad host\n", (12, 9, "backend.host")),
    ("backend mode unknown", REFERENCE + "backend:\n  mode: docker\n", (12, 9, "backend.mode")),
    ("backend relative env file", REFERENCE + "backend:\n  env_file: app/.env\n", (12, 13, "backend.env_file")),
    ("backend health url", REFERENCE + "backend:\n  health_url: ftp://x\n", (12, 15, "backend.health_url")),
    ("api url not http", REFERENCE + "runpod:\n  api_url: 'javascript:alert(1)'\n", (12, 12, "runpod.api_url")),
    ("smoke max tokens zero", REFERENCE + "smoke_test:\n  max_tokens: 0\n", (12, 15, "smoke_test.max_tokens")),
    ("version 2", "version: 2\n" + REFERENCE, (1, 10, "version")),
    (
        "cuda version text",
        REFERENCE + "  allowed_cuda_versions: [thirteen]\n",
        (11, 26, "endpoint.allowed_cuda_versions"),
    ),
]


@pytest.mark.parametrize(("name", "text", "where"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_config_is_located_and_exits_3(
    cli: CliRunnerFn, project: Path, name: str, text: str, where: tuple[int, int, str]
) -> None:
    (project / "deploy.yaml").write_text(text, encoding="utf-8")
    result = cli("validate", "--json", expected_code=3)
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "ConfigError"
    first = error["issues"][0]
    assert (first["line"], first["column"], first["field"]) == where, error["issues"]
    assert first["path"] == "deploy.yaml"
    assert "Traceback" not in result.stderr
    line, column, field = where
    prefix = f"deploy.yaml:{line}:{column}: {field + ': ' if field else ''}"
    assert any(row.strip().startswith(prefix) for row in result.stderr.splitlines()), result.stderr


def test_errors_list_valid_values_and_suggest(cli: CliRunnerFn, project: Path) -> None:
    (project / "deploy.yaml").write_text(REFERENCE.replace("gpu: L4", "gpu: L5").replace("0.9", "0.9\n  dtyp: auto"))
    result = cli("validate", expected_code=3)
    lines = [row.strip() for row in result.stderr.splitlines()]
    assert (
        "deploy.yaml:6:3: model.dtyp: unknown field 'dtyp' (did you mean 'dtype'?); valid fields here: name, revision, "
        "max_model_len, gpu_memory_utilization, dtype, quantization, kv_cache_dtype, max_num_seqs, served_model_name, "
        "trust_remote_code, enforce_eager, hf_token, hf_token_secret, hf_token_delivery, bake, weights, config_file"
    ) in lines
    gpu_line = next(row for row in lines if row.startswith("deploy.yaml:9:8: endpoint.gpu:"))
    assert "(did you mean 'L4'?)" in gpu_line and "valid: A4000" in gpu_line


def test_every_problem_is_reported_at_once(cli: CliRunnerFn, project: Path) -> None:
    text = REFERENCE.replace("max_model_len: 8192", "max_model_len: -1").replace("gpu: L4", "gpu: nope")
    (project / "deploy.yaml").write_text(text)
    error = json.loads(cli("validate", "--json", expected_code=3).stdout)["error"]
    assert [issue["field"] for issue in error["issues"]] == ["model.max_model_len", "endpoint.gpu"]


def test_missing_and_unreadable_files(cli: CliRunnerFn, project: Path) -> None:
    result = cli("validate", expected_code=3)
    assert "deploy.yaml not found" in result.stderr and "rpdeploy init" in result.stderr
    (project / "deploy.yaml").write_bytes(b"\xff\xfe binary")
    assert "not UTF-8" in cli("validate", expected_code=3).stderr
    (project / "deploy.yaml").write_text("")
    assert "is empty" in cli("validate", expected_code=3).stderr


def test_hostile_values_that_are_allowed_round_trip(project: Path) -> None:
    hostile_name = 'qwen "prod" $HOME `id` ; é日本 \\ end'
    text = REFERENCE.replace("name: qwen25-7b-instruct", f"name: {json.dumps(hostile_name)}")
    text += "  env:\n    GREETING: " + json.dumps("a'b\"c\n$(id)\\x") + "\n"
    config = parse_config(text)
    assert config.endpoint.name == hostile_name
    assert config.endpoint.env["GREETING"] == "a'b\"c\n$(id)\\x"


def test_schema_is_valid_json_schema_and_covers_every_section(cli: CliRunnerFn) -> None:
    schema = json.loads(cli("schema").stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["properties"]) == {
        "version",
        "deployment_id",
        "method",
        "model",
        "image",
        "endpoint",
        "runpod",
        "backend",
        "smoke_test",
    }
    assert schema["additionalProperties"] is False
