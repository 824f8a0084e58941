"""Release ids (rpdeploy/runpod/release.py): what makes one, how the template carries it, how answers name it.

The method-1 path is checked against the upstream code it relies on, run for real where it is
pure Python: worker-vllm's own ``build_vllm_args`` (at the pinned tag, from its git directory)
turns the template's env into `vllm serve` flags, and vLLM 0.27.1's own
``build_system_fingerprint`` (from the pinned wheel, never installed) turns those flags into
the ``system_fingerprint`` of every answer. Skipped when those sources are not on this machine
(CI's contracts phase fetches them).
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from typing import Any

import pytest

from rpdeploy.config import parse_config
from rpdeploy.runpod import release
from rpdeploy.runpod.deployment import desired_template
from rpdeploy.secrets import Secret

DIGEST_IMAGE = "registry.example/acme/worker@sha256:" + "ab" * 32


def _config(method: str, **endpoint_env: Any) -> Any:
    image = "image: {registry: registry.example, repository: acme/worker}\n" if method != "worker-vllm" else ""
    env = "".join(f"    {key}: {value!r}\n" for key, value in endpoint_env.items())
    return parse_config(
        f"method: {method}\nmodel: {{name: Qwen/Qwen2.5-7B-Instruct, max_model_len: 8192}}\n{image}"
        f"endpoint:\n  name: rel\n  env:\n    PLAIN: x\n{env}"
    )


def _env(spec: Any) -> dict[str, str]:
    return {var.key: var.reveal() for var in spec.env}


def test_the_release_id_is_the_image_digest_and_the_template_content() -> None:
    config = _config("custom-handler")
    spec = desired_template(config, image=DIGEST_IMAGE)
    assert release.is_release_id(spec.release) and spec.release.startswith("rel-abababababab-")
    assert _env(spec)[release.RELEASE_ENV] == spec.release
    assert desired_template(config, image=DIGEST_IMAGE).release == spec.release  # deterministic
    other_image = desired_template(config, image=DIGEST_IMAGE.replace("ab" * 32, "cd" * 32)).release
    other_env = desired_template(_config("custom-handler", EXTRA="1"), image=DIGEST_IMAGE).release
    other_disk = desired_template(config, image=DIGEST_IMAGE, registry_auth_id="auth1").release
    assert len({spec.release, other_image, other_env, other_disk}) == 4
    assert other_env.split("-")[1] == spec.release.split("-")[1]  # same image part, other content


def test_a_secret_changes_the_release_without_being_in_it() -> None:
    config = parse_config(
        "method: worker-vllm\nmodel: {name: Qwen/Qwen2.5-7B-Instruct, hf_token: HF_TOKEN}\nendpoint: {name: rel}\n"
    )
    one = desired_template(config, image="runpod/worker-v1-vllm:v2.25.2", environ={"HF_TOKEN": "hf_one_secret"})
    two = desired_template(config, image="runpod/worker-v1-vllm:v2.25.2", environ={"HF_TOKEN": "hf_two_secret"})
    assert one.release != two.release
    assert "hf_one_secret" not in one.release
    # Delivered as a RunPod secret (the default): the env holds the same reference for both values,
    # and the release still tells them apart, so a new token is a new release that replaces workers.
    token = "HUGGING_FACE_HUB_TOKEN"  # rpdeploy.runpod.deployment.HF_TOKEN_ENV
    assert _env(one)[token] == _env(two)[token] and "RUNPOD_SECRET" in _env(one)[token]
    assert _env(one)["RPDEPLOY_RELEASE"] == one.release != _env(two)["RPDEPLOY_RELEASE"]


def test_method_1_puts_vllms_fingerprint_flags_in_front_of_the_users() -> None:
    plain = desired_template(_config("worker-vllm"), image="runpod/worker-v1-vllm:v2.25.2")
    assert _env(plain)["VLLM_EXTRA_ARGS"] == f"--fingerprint-mode custom --fingerprint-value {plain.release}"
    users = desired_template(_config("worker-vllm", VLLM_EXTRA_ARGS="--max-num-batched-tokens 512"), image="x:1")
    assert _env(users)["VLLM_EXTRA_ARGS"] == (
        f"--fingerprint-mode custom --fingerprint-value {users.release} --max-num-batched-tokens 512"
    )
    assert "VLLM_EXTRA_ARGS" not in _env(desired_template(_config("fastapi"), image=DIGEST_IMAGE))
    assert release.overrides_fingerprint("--fingerprint-mode=none") and not release.overrides_fingerprint("--x 1")


def test_a_users_secret_extra_args_stay_secret() -> None:
    config = parse_config(
        "method: worker-vllm\nmodel: {name: Qwen/Qwen2.5-7B-Instruct}\n"
        "endpoint: {name: rel, env: {VLLM_EXTRA_ARGS: {env: EXTRA}}}\n"
    )
    spec = desired_template(config, image="x:1", environ={"EXTRA": "--hf-token hf_secret_in_args"})
    [extra] = [var for var in spec.env if var.key == "VLLM_EXTRA_ARGS"]
    assert isinstance(extra.value, Secret) and extra.secret
    assert extra.reveal().endswith("--hf-token hf_secret_in_args")


def test_answers_name_their_release_in_every_shape() -> None:
    rid = "rel-0123456789ab-cdef01234567"
    assert release.from_openai({"system_fingerprint": rid}) == rid
    assert release.from_openai({"system_fingerprint": "vllm-0.27.1-1a2b3c4d"}) is None  # vLLM's own default
    assert release.from_job_output([{"object": "chat.completion", "system_fingerprint": rid}]) == rid
    assert release.from_job_output([{"text": "a"}, {"text": "", "release": rid}]) == rid
    method3 = [{"status_code": 200, "headers": {"x-rpdeploy-release": rid}, "body": {}}]
    assert release.from_job_output(method3) == rid
    assert release.from_job_output([{"status_code": 200, "headers": {}, "body": {"system_fingerprint": rid}}]) == rid
    assert release.from_stream([{"choices": []}, {"choices": [], "system_fingerprint": rid}]) == rid
    assert release.from_job_output([{"text": "no release"}]) is None


# --- what method 1 relies on upstream -------------------------------------------------------------


def _worker_vllm_source(path: str) -> str:
    from tests.test_worker_vllm_env import _generator

    gen = _generator()
    git = os.environ.get("RPDEPLOY_WORKER_VLLM_GIT") or (
        str(gen.cache_dir() / "worker-vllm.git") if (gen.cache_dir() / "worker-vllm.git").is_dir() else None
    )
    if git is None:
        pytest.skip("no worker-vllm git directory here (set RPDEPLOY_WORKER_VLLM_GIT)")
    tag = gen.pinned_tag()
    done = subprocess.run(["git", "-C", git, "show", f"{tag}:{path}"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"{git} has no {tag}:{path}")
    return done.stdout


def _vllm_source(path: str) -> str:
    from tests.support.vllm_contract import generator

    gen = generator()
    cached = sorted(gen.cache_dir().glob(f"vllm-{gen.pinned_version()}-*.whl"))
    if not cached:
        pytest.skip("no pinned vLLM wheel cached: run scripts/contracts/vllm_surface.py --check once")
    with zipfile.ZipFile(cached[0]) as wheel:
        return wheel.read(path).decode("utf-8")


def test_worker_vllm_hands_the_flags_to_vllm_serve() -> None:
    """worker-vllm's own build_vllm_args, run on the env rpdeploy gives the template."""
    namespace: dict[str, Any] = {"__name__": "args_builder"}
    exec(compile(_worker_vllm_source("src/args_builder.py"), "args_builder.py", "exec"), namespace)
    spec = desired_template(_config("worker-vllm", VLLM_EXTRA_ARGS="--max-num-batched-tokens 512"), image="x:1")
    argv = namespace["build_vllm_args"](_env(spec))
    at = argv.index("--fingerprint-mode")
    assert argv[at : at + 4] == ["--fingerprint-mode", "custom", "--fingerprint-value", spec.release]
    assert argv[-2:] == ["--max-num-batched-tokens", "512"]  # the user's args last: argparse lets them win


def test_vllm_writes_the_custom_fingerprint_into_its_answers() -> None:
    """vLLM 0.27.1's own fingerprint code, and the CLI fields `vllm serve` reads it from."""
    namespace: dict[str, Any] = {"__name__": "fingerprint"}
    exec(compile(_vllm_source("vllm/entrypoints/serve/utils/fingerprint.py"), "fingerprint.py", "exec"), namespace)
    rid = "rel-0123456789ab-cdef01234567"
    assert namespace["build_system_fingerprint"](None, "custom", rid) == rid
    cli_args = _vllm_source("vllm/entrypoints/openai/cli_args.py")
    assert 'fingerprint_mode: Literal["full", "hash", "custom", "none"] = "full"' in cli_args
    assert "fingerprint_value: str | None = None" in cli_args
    router = _vllm_source("vllm/entrypoints/generate/api_router.py")
    assert (
        'getattr(args, "fingerprint_mode", "full")' in router and 'getattr(args, "fingerprint_value", None)' in router
    )
