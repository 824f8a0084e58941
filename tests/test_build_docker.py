"""`rpdeploy build --push` for real: the Docker engine, the htpasswd registry on 127.0.0.1, the
rendered method-2 and method-3 Dockerfiles on the local stand-in for vllm/vllm-openai.

Needs scripts/services.sh (fails in CI, skips elsewhere when the services are missing).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpdeploy.build.engine import connect
from rpdeploy.build.push import RetryPolicy, push_image
from rpdeploy.build.registry_auth import RegistryAuth
from rpdeploy.config import Config
from rpdeploy.deploy.ledger import Ledger
from rpdeploy.errors import RegistryError
from rpdeploy.output import RecordingReporter
from rpdeploy.secrets import Secret
from tests.support.services import BaseImages, Registry
from tests.test_build import BuildCli, build_cli, no_docker_login, write_project  # noqa: F401  # noqa: F811

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.slow]

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
ENTRYPOINT = ["python3", "-u", "/app/handler.py"]
CREDENTIALS = {"username": "REG_USER", "password": "REG_PASS"}


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def base_image(test_images: BaseImages) -> str:
    """The stand-in for vllm/vllm-openai, keyed by this checkout's inputs (another session cannot retag it)."""
    return test_images.python


@pytest.fixture
def reg_env(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The test registry's credentials in REG_USER/REG_PASS, which deploy.yaml references."""
    monkeypatch.setenv("REG_USER", registry.username)
    monkeypatch.setenv("REG_PASS", registry.password)
    return registry


@pytest.fixture
def repository(request: pytest.FixtureRequest, docker_client: Any, registry: Registry) -> Iterator[str]:
    """A fresh repository name; the test's local images of it are removed afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    name = f"rpdeploy-build-test/{slug}-{uuid.uuid4().hex[:6]}"
    yield name
    for image in docker_client.images.list(name=f"{registry.host}/{name}"):
        for ref in image.tags:
            docker_client.images.remove(ref, force=True)


def project_for(
    folder: Path,
    registry_host: str,
    repository: str,
    base: str,
    *,
    method: int = 2,
    image: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
) -> Config:
    settings: dict[str, Any] = {"base_image": base, "credentials": CREDENTIALS}
    settings.update(image or {})
    return write_project(folder, method, registry=registry_host, repository=repository, image=settings, model=model)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# The file holds "yes" without a newline; the engine here (docker.io 20.10) drops an unterminated
# last line from the container's logs in about one run of three, so the line is ended first.
_CAT_TOKEN_SEEN = "cat /models/model/token_seen; echo"


def run_in(docker_client: Any, image: str, *argv: str) -> str:
    output = docker_client.containers.run(image, list(argv), entrypoint=[], remove=True, network_disabled=True)
    return bytes(output).decode()


# --- build and push the rendered workers ----------------------------------------------------


@pytest.mark.parametrize("method", [2, 3])
def test_build_push_and_pull_back_by_digest(
    build_cli: BuildCli,  # noqa: F811
    project: Path,
    reg_env: Registry,
    base_image: str,
    repository: str,
    docker_client: Any,
    method: int,
) -> None:
    project_for(project, reg_env.host, repository, base_image, method=method)
    result = build_cli("--push", "--json")
    document = json.loads(result.stdout)
    build, push = document["build"], document["push"]
    # The --json contract (README): these keys, no more, no fewer.
    assert set(document) == {"ok", "built", "build", "push"} and document["ok"] is True and document["built"] is True
    assert set(build) == {
        "image", "image_id", "tags", "size", "context_hash", "tag_source", "platform", "skipped", "seconds",
        "steps", "cached_steps",
    }  # fmt: skip
    assert set(push) == {
        "image", "tag", "digest", "size", "bytes_pushed", "layers_pushed", "layers_present", "attempts", "seconds",
    }  # fmt: skip
    name = f"{reg_env.host}/{repository}"
    assert build["skipped"] is False and build["image"] == f"{name}:{push['tag']}"
    assert DIGEST.match(push["digest"]) and push["image"] == f"{name}@{push['digest']}"
    assert push["tag"].startswith("c-") and push["tag"] != "latest"  # tmp folders are not in git
    assert push["layers_pushed"] + push["layers_present"] >= 5 and push["attempts"] == 1

    ledger = Ledger.load(project / ".rpdeploy")
    assert ledger.output("push", "image") == push["image"]  # what `rpdeploy endpoint create` deploys
    assert ledger.output("push", "digest") == push["digest"]
    assert ledger.output("build", "context_hash") == build["context_hash"] == ledger.output("push", "context_hash")
    assert "Pushed  " + push["image"] in build_cli("--push").stdout  # the summary, for people

    # Forget the image locally, then pull it back from the registry by digest.
    docker_client.images.remove(build["image_id"], force=True)
    pulled = docker_client.images.pull(name, tag=push["digest"], auth_config=reg_env.auth_config)
    assert pulled.id == build["image_id"]
    config = pulled.attrs["Config"]
    assert config["Entrypoint"] == ENTRYPOINT and config["WorkingDir"] == "/app"
    ref = f"{name}@{push['digest']}"
    code = "import os, runpod, vllm; print(runpod.__version__, sorted(os.listdir('/app')))"
    output = run_in(docker_client, ref, "python3", "-c", code)
    files = ["app.py", "handler.py", "requirements.txt"] if method == 3 else ["handler.py", "requirements.txt"]
    assert output.strip() == f"1.12.0 {files}"


def test_unchanged_context_skips_the_build(
    build_cli: BuildCli,  # noqa: F811
    project: Path,
    reg_env: Registry,
    base_image: str,
    repository: str,
    docker_client: Any,
) -> None:
    project_for(project, reg_env.host, repository, base_image)
    first = json.loads(build_cli("--json").stdout)["build"]
    images_before = {image.id for image in docker_client.images.list(name=f"{reg_env.host}/{repository}")}

    again = build_cli("--json")
    second = json.loads(again.stdout)["build"]
    assert second["skipped"] is True and second["steps"] == 0
    assert second["image_id"] == first["image_id"] and second["image"] == first["image"]
    assert "Step 1/" not in again.stderr and "Build skipped" in again.stderr
    assert {image.id for image in docker_client.images.list(name=f"{reg_env.host}/{repository}")} == images_before
    record = Ledger.load(project / ".rpdeploy").stages["build"]
    assert record.status == "done" and record.outputs["skipped"] is True

    forced = json.loads(build_cli("--no-cache", "--json").stdout)["build"]
    assert forced["skipped"] is False and forced["cached_steps"] == 0 and forced["steps"] >= 8

    # The image of the last build is gone: build again even though nothing changed.
    docker_client.images.remove(forced["image_id"], force=True)
    rebuilt = json.loads(build_cli("--json").stdout)["build"]
    assert rebuilt["skipped"] is False


def test_editing_handler_rebuilds_and_pushes_only_the_code_layer(
    build_cli: BuildCli,  # noqa: F811
    project: Path,
    reg_env: Registry,
    base_image: str,
    repository: str,
) -> None:
    config = project_for(project, reg_env.host, repository, base_image)
    first = json.loads(build_cli("--push", "--json").stdout)
    assert config.worker_dir is not None
    handler = config.worker_dir / "handler.py"
    handler.write_text(handler.read_text() + "\n# a one-line change\n")

    second = json.loads(build_cli("--push", "--json").stdout)
    build, push = second["build"], second["push"]
    assert build["skipped"] is False and build["image_id"] != first["build"]["image_id"]
    # Only COPY handler.py and the two metadata steps after it run again.
    assert build["steps"] - build["cached_steps"] <= 3, build
    assert (
        push["layers_pushed"] == 1
        and push["layers_present"] == first["push"]["layers_pushed"] + first["push"]["layers_present"] - 1
    )
    assert push["bytes_pushed"] < build["size"] / 100
    assert push["digest"] != first["push"]["digest"] and push["tag"] != first["push"]["tag"]


# --- failures, each with its exit code ------------------------------------------------------


def test_wrong_password_exits_6_with_a_hint_before_building(
    build_cli: BuildCli,  # noqa: F811
    project: Path,
    reg_env: Registry,
    base_image: str,
    repository: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project_for(project, reg_env.host, repository, base_image)
    wrong = f"wrong-{uuid.uuid4().hex}"
    monkeypatch.setenv("REG_PASS", wrong)
    result = build_cli("--push", expected_code=6)
    assert f"the registry {reg_env.host} refused the credentials" in result.stderr
    assert f"docker login {reg_env.host}" in result.stderr and "env:REG_PASS" in result.stderr
    assert "Step 1/" not in result.stderr  # refused before a slow build
    assert wrong not in result.stdout + result.stderr


def test_unreachable_registry_exits_6_naming_it(
    build_cli: BuildCli,  # noqa: F811
    project: Path,
    reg_env: Registry,
    base_image: str,
    repository: str,
) -> None:
    host = f"127.0.0.1:{closed_port()}"
    project_for(project, host, repository, base_image)
    result = build_cli("--push", expected_code=6)
    assert f"cannot reach the registry {host}" in result.stderr
    assert "connection refused" in result.stderr and result.stderr.count("retrying in") == 3
    assert f"check image.registry in deploy.yaml ({host})" in result.stderr


def test_failing_run_exits_5_naming_the_step(
    build_cli: BuildCli,  # noqa: F811
    project: Path,
    reg_env: Registry,
    base_image: str,
    repository: str,
) -> None:
    config = project_for(project, reg_env.host, repository, base_image)
    assert config.worker_dir is not None
    dockerfile = config.worker_dir / "Dockerfile"
    text = dockerfile.read_text().replace(
        "ENTRYPOINT", 'RUN echo "[about to fail]" && echo "last words" && exit 3\nENTRYPOINT', 1
    )
    dockerfile.write_text(text)
    result = build_cli("--json", expected_code=5)
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "DockerError" and error["exit_code"] == 5
    assert re.search(
        r"failed at step \d+/\d+ \(RUN echo \"\[about to fail\]\" && echo \"last words\"", error["message"]
    )
    assert "returned a non-zero code: 3" in error["message"]
    assert "  | [about to fail]" in error["message"] and "  | last words" in error["message"]
    assert str(dockerfile) in error["hint"]
    assert Ledger.load(project / ".rpdeploy").output("build", "image_id") is None


def test_unpullable_base_image_exits_5_naming_it(
    build_cli: BuildCli,  # noqa: F811
    project: Path,
    reg_env: Registry,
    repository: str,
) -> None:
    base = f"127.0.0.1:{closed_port()}/nowhere/base:1"
    project_for(project, reg_env.host, repository, base)
    result = build_cli(expected_code=5)
    assert f"the base image {base} is not on this machine and cannot be pulled" in result.stderr
    assert "image.base_image" in result.stderr


def test_not_enough_disk_exits_5_before_building(
    build_cli: BuildCli,  # noqa: F811
    project: Path,
    reg_env: Registry,
    base_image: str,
    repository: str,
) -> None:
    # ~900 T parameters baked: more than any disk here, so the check must stop the build.
    project_for(project, reg_env.host, repository, base_image, model={"name": "acme/huge-900000B", "bake": True})
    result = build_cli(expected_code=5)
    assert "not enough free disk for the build" in result.stderr and "free, the build needs about" in result.stderr
    assert "docker system prune" in result.stderr and "Step 1/" not in result.stderr


# --- secrets ---------------------------------------------------------------------------------


def _exported_filesystem_contains(docker_client: Any, image: str, needle: bytes) -> bool:
    container = docker_client.containers.create(image, ["true"], entrypoint=[])
    try:
        tail = b""
        for chunk in container.export():
            if needle in tail + chunk:
                return True
            tail = chunk[-len(needle) :]
        return False
    finally:
        container.remove(force=True)


def test_baked_hf_token_is_in_no_layer_history_or_output(
    build_cli: BuildCli,  # noqa: F811
    project: Path,
    reg_env: Registry,
    base_image: str,
    repository: str,
    docker_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = f"hf_rpdeployBuildTest{uuid.uuid4().hex}"
    monkeypatch.setenv("HF_BUILD_TOKEN", token)
    project_for(
        project, reg_env.host, repository, base_image, model={"bake": True, "hf_token": {"env": "HF_BUILD_TOKEN"}}
    )
    result = build_cli("--push", "--json", "--verbose")
    assert token not in result.stdout + result.stderr
    push = json.loads(result.stdout)["push"]
    assert token not in (project / ".rpdeploy" / "state.json").read_text()

    pulled = docker_client.images.pull(
        f"{reg_env.host}/{repository}", tag=push["digest"], auth_config=reg_env.auth_config
    )
    ref = push["image"]
    # The build had the token: the stand-in snapshot_download saw it ...
    assert run_in(docker_client, ref, "sh", "-c", _CAT_TOKEN_SEEN).strip() == "yes"
    assert run_in(docker_client, ref, "sh", "-c", "test -s /models/model/model.safetensors && echo ok").strip() == "ok"
    # ... and the pushed image keeps it nowhere: not in its history, its config, or any file.
    history = json.dumps(pulled.history())
    assert "HF_TOKEN" not in history and token not in history
    assert token not in json.dumps(pulled.attrs)
    assert not _exported_filesystem_contains(docker_client, ref, token.encode())
    assert token.encode() not in b"".join(pulled.save(named=False))  # every layer and the config, as pushed


def test_registry_password_is_in_no_argv_and_no_output(
    build_cli: BuildCli,  # noqa: F811
    project: Path,
    reg_env: Registry,
    base_image: str,
    repository: str,
) -> None:
    project_for(project, reg_env.host, repository, base_image)
    needle = reg_env.password.encode()
    seen: list[str] = []
    samples = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal samples
        while not stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                        argv = handle.read()
                except OSError:
                    continue
                if needle in argv:
                    seen.append(argv.replace(needle, b"****").decode(errors="replace"))
            samples += 1
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = build_cli("--push", "--no-cache", "--verbose")
    finally:
        stop.set()
        sampler.join()
    assert samples > 20
    assert seen == []
    assert reg_env.password not in result.stdout + result.stderr
    assert "Pushed  " in result.stdout


def test_push_with_credentials_from_docker_config(
    build_cli: BuildCli,  # noqa: F811
    project: Path,
    registry: Registry,
    base_image: str,
    repository: str,
    no_docker_login: Path,  # noqa: F811
) -> None:
    import base64

    secret = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    (no_docker_login / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": secret}}}))
    project_for(project, registry.host, repository, base_image, image={"credentials": None})
    result = build_cli("--push")
    assert f"docker config {no_docker_login / 'config.json'}" in result.stderr
    assert f"{registry.host}/{repository}@sha256:" in result.stdout
    assert registry.password not in result.stdout + result.stderr


def test_a_broken_credential_helper_does_not_hide_explicit_credentials(
    build_cli: BuildCli,  # noqa: F811
    tmp_path: Path,
    reg_env: Registry,
    base_image: str,
    repository: str,
    no_docker_login: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (no_docker_login / "config.json").write_text(json.dumps({"credsStore": "rpd-missing"}))
    # With --push, rpdeploy logs in with deploy.yaml's credentials only: the broken helper is never asked.
    project_for(tmp_path / "push", reg_env.host, repository, base_image)
    monkeypatch.chdir(tmp_path / "push")
    assert f"{reg_env.host}/{repository}@sha256:" in build_cli("--push").stdout
    # Without a login the SDK sends the engine every login of the docker config, so the helper runs.
    project_for(tmp_path / "local", reg_env.host, repository, base_image)
    monkeypatch.chdir(tmp_path / "local")
    result = build_cli(expected_code=5)
    assert "a docker credential helper failed" in result.stderr and "docker-credential-rpd-missing" in result.stderr
    assert "credsStore/credHelpers" in result.stderr


# --- transient failures, injected on the wire --------------------------------------------------


class FlakyProxy:
    """A TCP proxy to the registry that hangs up on its first ``fail`` connections (a network blip)."""

    def __init__(self, target: tuple[str, int], fail: int) -> None:
        self.target = target
        self.fail = fail
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = int(self.server.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.fail > 0:
                self.fail -= 1
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()


def test_push_retries_a_dropped_connection_and_gives_up_in_bounds(
    registry: Registry,
    test_images: BaseImages,
    docker_client: Any,
) -> None:
    host, port = registry.host.split(":")
    api = connect()
    # The engine may spend one or two connections per attempt (HTTPS first, then plain HTTP for
    # 127.0.0.1), so two dropped connections cost one or two failed attempts.
    for fail, attempts in ((2, 4), (1000, 3)):
        proxy = FlakyProxy((host, int(port)), fail)
        name = f"127.0.0.1:{proxy.port}/rpdeploy-build-test/flaky-{uuid.uuid4().hex[:6]}"
        api.tag(test_images.busybox, name, "1")
        auth = RegistryAuth(f"127.0.0.1:{proxy.port}", "test", registry.username, Secret(registry.password, "test"))
        reporter = RecordingReporter()
        try:
            if fail < 1000:
                result = push_image(api, name, "1", auth, reporter=reporter, retry=RetryPolicy(attempts, delay=0.1))
                assert 2 <= result.attempts <= 3 and DIGEST.match(result.digest)
                assert result.layers_pushed + result.layers_present == 1
                assert any(level == "warn" and "retrying in" in text for level, text in reporter.messages)
            else:
                with pytest.raises(RegistryError, match=f"gave up after {attempts} attempts"):
                    push_image(api, name, "1", auth, reporter=reporter, retry=RetryPolicy(attempts, delay=0.1))
        finally:
            proxy.close()
            docker_client.images.remove(f"{name}:1")
    api.close()
