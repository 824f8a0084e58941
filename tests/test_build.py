"""`rpdeploy build`: what is decided before the engine builds anything.

The context hash against the SDK's own tar of the context, the tag rule against real git
repositories, credentials from deploy.yaml, env and real docker config files (and a real
credential helper program), the error classification, and the CLI's exits that need no
engine. The builds and pushes themselves are in test_build_docker.py.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from rpdeploy.build.context import BuildContext, build_context, context_hash, read_dockerignore
from rpdeploy.build.image import estimate_model_bytes
from rpdeploy.build.progress import BuildLog
from rpdeploy.build.push import RetryPolicy, classify_failure
from rpdeploy.build.registry_auth import require_registry_auth, resolve_registry_auth
from rpdeploy.build.tags import choose_tag
from rpdeploy.config import Config, load_config
from rpdeploy.errors import ConfigError, DockerError, RegistryError
from rpdeploy.methods import Method
from rpdeploy.output import RecordingReporter
from rpdeploy.secrets import MASK, redact
from rpdeploy.worker.scaffold import InitOptions, init_project, render_project
from tests.conftest import CliRunnerFn

BuildCli = Callable[..., Result]


# --- helpers shared with test_build_docker.py ------------------------------------------------


@pytest.fixture
def build_cli(cli: CliRunnerFn) -> BuildCli:
    """``build_cli("--push", expected_code=6)`` runs `rpdeploy build --push`; fails with the output otherwise."""

    def run(*args: object, expected_code: int = 0, env: dict[str, str] | None = None) -> Result:
        return cli("build", *args, expected_code=expected_code, env=env)

    return run


def write_project(
    folder: Path,
    method: int = 2,
    *,
    registry: str = "127.0.0.1:5000",
    repository: str = "acme/worker",
    image: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
) -> Config:
    """A project as `rpdeploy init` writes it, with ``image``/``model`` keys changed, re-rendered."""
    folder.mkdir(parents=True, exist_ok=True)
    options = InitOptions(
        method=Method.parse(method),
        model="Qwen/Qwen2.5-0.5B-Instruct",
        name="build-test",
        registry=registry,
        repository=repository,
    )
    init_project(folder, options)
    path = folder / "deploy.yaml"
    data = yaml.safe_load(path.read_text())
    if data.get("image") is not None:
        data["image"].update(image or {})
    data["model"].update(model or {})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = load_config(path)
    render_project(config)  # bake and base_image change the Dockerfile
    return config


def git(folder: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(["git", *args], cwd=folder, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


# --- build context and its hash ------------------------------------------------------------


def _hash(context: BuildContext, **overrides: Any) -> str:
    args: dict[str, Any] = {"buildargs": {"BASE_IMAGE": "rpdeploy-test/python:1"}, "platform": "linux/amd64"}
    args.update(overrides)
    return context_hash(context, **args)


def test_context_is_exactly_what_the_sdk_sends(tmp_path: Path) -> None:
    import docker

    worker = write_project(tmp_path).worker_dir
    assert worker is not None
    (worker / "__pycache__").mkdir()
    (worker / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0")
    (worker / "notes.md").write_text("sent\n")
    context = build_context(worker)
    sent = docker.utils.tar(str(worker), exclude=read_dockerignore(worker), dockerfile=("Dockerfile", None))
    with tarfile.open(fileobj=sent) as archive:
        names = set(archive.getnames())
    assert set(context.paths) == names
    assert {"Dockerfile", ".dockerignore", "handler.py", "requirements.txt", "notes.md"} <= names
    assert "test_input.json" not in names and "__pycache__" not in names


def test_context_hash_changes_with_what_docker_sends_only(tmp_path: Path) -> None:
    worker = write_project(tmp_path).worker_dir
    assert worker is not None
    first = _hash(build_context(worker))
    assert _hash(build_context(worker)) == first  # deterministic

    (worker / "test_input.json").write_text('{"input": {"prompt": "other"}}\n')  # in .dockerignore
    (worker / "handler.py.bak-20250101T000000").write_text("old\n")  # in .dockerignore
    assert _hash(build_context(worker)) == first

    handler = worker / "handler.py"
    original = handler.read_text()
    handler.write_text(original + "# edited\n")
    edited = _hash(build_context(worker))
    assert edited != first
    handler.write_text(original)
    assert _hash(build_context(worker)) == first

    handler.chmod(handler.stat().st_mode | stat.S_IXUSR)  # COPY keeps the mode: a different layer
    assert _hash(build_context(worker)) != first


def test_dockerfile_counts_even_when_dockerignore_lists_it(tmp_path: Path) -> None:
    worker = write_project(tmp_path).worker_dir
    assert worker is not None
    with (worker / ".dockerignore").open("a") as handle:
        handle.write("Dockerfile\n")
    before = _hash(build_context(worker))
    assert "Dockerfile" in build_context(worker).paths
    with (worker / "Dockerfile").open("a") as handle:
        handle.write("LABEL x=y\n")
    assert _hash(build_context(worker)) != before


def test_context_hash_covers_args_platform_base_and_secret_presence(tmp_path: Path) -> None:
    worker = write_project(tmp_path).worker_dir
    assert worker is not None
    context = build_context(worker)
    base = _hash(context)
    assert _hash(context, buildargs={"BASE_IMAGE": "other/base:2"}) != base
    assert _hash(context, platform="linux/arm64") != base
    assert _hash(context, base_image_id="sha256:" + "1" * 64) != _hash(context, base_image_id="sha256:" + "2" * 64)
    with_secret = _hash(context, secret_args=["HF_TOKEN"])
    assert with_secret != base  # presence counts; the value cannot: context_hash never receives it


# --- tags ----------------------------------------------------------------------------------


def _tag(config: Config, **kwargs: Any) -> Any:
    assert config.image is not None and config.worker_dir is not None
    context = build_context(config.worker_dir)
    return choose_tag(config.image, context, "ab" * 32, config_path=config.path, **kwargs)


def test_tag_outside_git_is_the_content_hash(tmp_path: Path) -> None:
    config = write_project(tmp_path / "p")
    choice = _tag(config)
    assert (choice.tag, choice.source) == ("c-" + ("ab" * 6), "content")
    assert "not in a git work tree" in choice.reason


def test_tag_in_git_is_the_short_sha_until_the_context_changes(tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    config = write_project(folder)
    assert config.worker_dir is not None
    git(folder, "init", "-q")
    (folder / ".gitignore").write_text(".rpdeploy/\n")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "worker")
    sha = git(folder, "rev-parse", "--short", "HEAD")
    assert _tag(config).tag == sha and _tag(config).source == "git"

    # Files docker does not send may change freely.
    (config.worker_dir / "test_input.json").write_text("{}\n")
    (config.worker_dir / "__pycache__").mkdir()
    (config.worker_dir / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert _tag(config).tag == sha

    handler = config.worker_dir / "handler.py"
    handler.write_text(handler.read_text() + "# local edit\n")
    dirty = _tag(config)
    assert dirty.tag == f"{sha}-dirty-{'ab' * 4}" and dirty.source == "git-dirty"
    assert "handler.py" in dirty.reason
    git(folder, "checkout", "--", "worker/handler.py")

    (config.worker_dir / "extra.py").write_text("x = 1\n")  # untracked, but sent
    assert "extra.py is not committed" in _tag(config).reason
    (config.worker_dir / "extra.py").unlink()

    (folder / "deploy.yaml").write_text((folder / "deploy.yaml").read_text() + "# changed\n")
    assert "deploy.yaml" in _tag(config).reason
    git(folder, "checkout", "--", "deploy.yaml")

    assert _tag(config).tag == sha
    assert _tag(config, platform="linux/arm64").source == "git-dirty"
    assert _tag(config, platform="linux/amd64").tag == sha  # the configured platform


def test_explicit_tags_win_and_latest_is_refused(tmp_path: Path) -> None:
    config = write_project(tmp_path / "p", image={"tag": "v1.2.0"})
    assert (_tag(config).tag, _tag(config).source) == ("v1.2.0", "image.tag")
    assert (_tag(config, explicit="rc-7").tag, _tag(config, explicit="rc-7").source) == ("rc-7", "--tag")
    with pytest.raises(ConfigError, match="mutable"):
        _tag(config, explicit="latest")
    content = write_project(tmp_path / "q", image={"tag_policy": "content"})
    assert _tag(content).source == "content"


# --- credentials ---------------------------------------------------------------------------


@pytest.fixture
def no_docker_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty docker client config folder: the machine's own `docker login` must not leak in."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


def test_credentials_from_deploy_yaml_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_docker_login: Path
) -> None:
    (tmp_path / "pass.txt").write_text("file-password-123\n")
    config = write_project(tmp_path, image={"credentials": {"username": "REG_USER", "password": {"file": "pass.txt"}}})
    monkeypatch.setenv("REG_USER", "builder")
    monkeypatch.setenv("RPDEPLOY_REGISTRY_PASSWORD", "ignored")  # deploy.yaml comes first
    assert config.image is not None
    auth = resolve_registry_auth(config.image, base_dir=config.base_dir)
    assert auth is not None
    assert auth.auth_config() == {
        "serveraddress": "127.0.0.1:5000",
        "username": "builder",
        "password": "file-password-123",
    }
    assert "file:pass.txt" in auth.source and "file-password-123" not in repr(auth)
    assert redact("builder:file-password-123") == f"builder:{MASK}"  # the password is masked, the user is not


def test_credentials_from_env_need_both_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_docker_login: Path
) -> None:
    config = write_project(tmp_path)
    assert config.image is not None
    monkeypatch.setenv("RPDEPLOY_REGISTRY_USERNAME", "ci-bot")
    with pytest.raises(ConfigError, match="RPDEPLOY_REGISTRY_PASSWORD is not set"):
        resolve_registry_auth(config.image, base_dir=config.base_dir)
    monkeypatch.setenv("RPDEPLOY_REGISTRY_PASSWORD", "env-password-456")
    auth = resolve_registry_auth(config.image, base_dir=config.base_dir)
    assert auth is not None and auth.username == "ci-bot"
    assert auth.auth_config()["password"] == "env-password-456"


def _auth_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_credentials_from_docker_config_auths(tmp_path: Path, no_docker_login: Path) -> None:
    (no_docker_login / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "127.0.0.1:5000": _auth_entry("local-user", "local-pass-789"),
                    "https://index.docker.io/v1/": _auth_entry("hub-user", "hub-pass-012"),
                }
            }
        )
    )
    local = write_project(tmp_path / "local")
    hub = write_project(tmp_path / "hub", registry="docker.io", repository="hub-user/worker")
    assert local.image is not None and hub.image is not None
    found = resolve_registry_auth(local.image, base_dir=local.base_dir)
    assert found is not None and found.auth_config()["password"] == "local-pass-789"
    found = resolve_registry_auth(hub.image, base_dir=hub.base_dir)
    assert found is not None
    assert found.auth_config() == {
        "serveraddress": "https://index.docker.io/v1/",
        "username": "hub-user",
        "password": "hub-pass-012",
    }
    assert hub.image.name == "hub-user/worker"  # the user name is not redacted from names


def _credential_helper(bin_dir: Path, name: str, username: str, secret: str) -> Path:
    """A real docker-credential-<name> program: reads the server on stdin, answers JSON on stdout."""
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / f"{name}.log"
    helper = bin_dir / f"docker-credential-{name}"
    helper.write_text(
        "#!/bin/sh\n"
        f'echo "argv: $*" >> "{log}"\n'
        "server=$(cat)\n"
        f'echo "server: $server" >> "{log}"\n'
        f'printf \'{{"ServerURL": "%s", "Username": "{username}", "Secret": "{secret}"}}\' "$server"\n'
    )
    helper.chmod(0o755)
    return log


def test_credentials_from_a_credential_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_docker_login: Path
) -> None:
    bin_dir = tmp_path / "bin"
    log = _credential_helper(bin_dir, "rpdtest", "helper-user", "helper-secret-345")
    token_log = _credential_helper(bin_dir, "rpdtoken", "<token>", "identity-token-678")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (no_docker_login / "config.json").write_text(
        json.dumps({"credHelpers": {"127.0.0.1:5000": "rpdtest", "ghcr.io": "rpdtoken"}})
    )
    config = write_project(tmp_path / "p")
    assert config.image is not None
    auth = resolve_registry_auth(config.image, base_dir=config.base_dir)
    assert auth is not None and auth.username == "helper-user"
    assert auth.auth_config()["password"] == "helper-secret-345"
    assert "docker-credential-rpdtest" in auth.source
    assert log.read_text().splitlines() == ["argv: get", "server: 127.0.0.1:5000"]  # the secret is on no argv
    assert redact("helper-secret-345") == MASK

    ghcr = write_project(tmp_path / "q", registry="ghcr.io", repository="acme/worker")
    assert ghcr.image is not None
    auth = resolve_registry_auth(ghcr.image, base_dir=ghcr.base_dir)
    assert auth is not None and auth.auth_config() == {
        "serveraddress": "ghcr.io",
        "identitytoken": "identity-token-678",
    }
    assert token_log.read_text().splitlines() == ["argv: get", "server: ghcr.io"]


def test_a_missing_credential_helper_is_named(tmp_path: Path, no_docker_login: Path) -> None:
    (no_docker_login / "config.json").write_text(json.dumps({"credHelpers": {"127.0.0.1:5000": "rpd-missing"}}))
    config = write_project(tmp_path)
    assert config.image is not None
    with pytest.raises(RegistryError) as caught:
        resolve_registry_auth(config.image, base_dir=config.base_dir)
    assert "docker-credential-rpd-missing" in caught.value.message
    assert "credHelpers" in (caught.value.hint or "")


def test_no_credentials_anywhere_is_a_registry_error_with_the_ways_to_fix_it(
    tmp_path: Path, no_docker_login: Path
) -> None:
    config = write_project(tmp_path)
    assert config.image is not None
    assert resolve_registry_auth(config.image, base_dir=config.base_dir) is None
    with pytest.raises(RegistryError) as caught:
        require_registry_auth(config.image, base_dir=config.base_dir)
    assert caught.value.exit_code == 6
    assert caught.value.hint is not None
    assert "docker login 127.0.0.1:5000" in caught.value.hint and "RPDEPLOY_REGISTRY_USERNAME" in caught.value.hint


# --- errors and estimates ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("unauthorized: authentication required", "auth"),
        ("denied: requested access to the resource is denied", "auth"),
        ("login attempt to http://127.0.0.1:5000/v2/ failed with status: 401 Unauthorized", "auth"),
        ('Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused', "transient"),
        ('Get "https://nope.invalid/v2/": dial tcp: lookup nope.invalid: no such host', "unreachable"),
        ("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer", "transient"),
        ('Get "http://127.0.0.1:5000/v2/": EOF', "transient"),
        ("received unexpected HTTP status: 503 Service Unavailable", "transient"),
        ("net/http: TLS handshake timeout", "transient"),
        ('Put "http://127.0.0.1:5001/v2/x/blobs/uploads/": http: server closed idle connection', "transient"),
        ("500 Internal Server Error", "transient"),
        ("manifest invalid: manifest invalid", "other"),
        ("blob upload invalid: size 512 bytes does not match", "other"),
    ],
)
def test_registry_failures_are_classified(message: str, kind: str) -> None:
    assert classify_failure(message) == kind


def test_retry_backoff_is_bounded() -> None:
    policy = RetryPolicy(attempts=5, delay=1.0, factor=2.0, max_delay=5.0)
    assert [policy.pause(n) for n in range(1, 5)] == [1.0, 2.0, 4.0, 5.0]


@pytest.mark.parametrize(
    ("name", "extra", "expected"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", {}, 14e9),
        ("Qwen/Qwen2.5-7B-Instruct-AWQ", {"quantization": "awq"}, 7e9 * 0.55),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", {}, 112e9),
        ("facebook/opt-350m", {}, 0.7e9),
        ("Qwen/Qwen2.5-0.5B-Instruct", {"dtype": "float32"}, 2e9),
        ("openai-community/gpt2", {}, None),
    ],
)
def test_model_size_estimate_from_the_name(name: str, extra: dict[str, Any], expected: float | None) -> None:
    from rpdeploy.config import ModelConfig

    estimate = estimate_model_bytes(ModelConfig(name=name, **extra))
    assert estimate == (None if expected is None else int(expected))


def test_build_error_names_the_step_and_shows_the_last_lines(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    log = BuildLog(reporter, tmp_path / "Dockerfile")
    events: list[dict[str, Any]] = [
        {"stream": "Step 1/2 : FROM rpdeploy-test/busybox:1\n"},
        {"stream": " ---> 39fc88c43335\n"},
        {"stream": "Step 2/2 : RUN echo [bold]about to fail && false\n"},
        {"stream": " ---> Running in 0123456789ab\n"},
        {"stream": "[bold]about to"},  # a line split across events
        {"stream": " fail\n"},
    ]
    for event in events:
        log.feed(event)
    with pytest.raises(DockerError) as caught:
        log.feed(
            {
                "errorDetail": {"code": 1, "message": "The command '/bin/sh -c false' returned a non-zero code: 1"},
                "error": "The command '/bin/sh -c false' returned a non-zero code: 1",
            }
        )
    message = caught.value.message
    assert "failed at step 2/2 (RUN echo [bold]about to fail && false)" in message
    assert "returned a non-zero code: 1" in message
    assert "  | [bold]about to fail" in message
    assert ("log", "[bold]about to fail") in reporter.messages  # untrusted text passed on as it is
    assert str(tmp_path / "Dockerfile") in (caught.value.hint or "")


# --- the command, before any engine is needed ---------------------------------------------

DEAD_ENGINE = "unix:///nonexistent/rpdeploy-test/docker.sock"


def test_method_1_has_nothing_to_build(build_cli: BuildCli, project: Path) -> None:
    init_project(project, InitOptions(method=Method.WORKER_VLLM, model="Qwen/Qwen2.5-7B-Instruct", name="qwen"))
    result = build_cli("--push", env={"DOCKER_HOST": DEAD_ENGINE})
    assert "Nothing to build" in result.stdout and "worker-vllm" in result.stdout
    document = json.loads(build_cli("--json").stdout)
    assert document["ok"] is True and document["built"] is False


def test_the_placeholder_repository_is_never_pushed(build_cli: BuildCli, project: Path) -> None:
    init_project(project, InitOptions(method=Method.CUSTOM_HANDLER, model="Qwen/Qwen2.5-7B-Instruct", name="qwen"))
    assert load_config(project / "deploy.yaml").image is not None
    result = build_cli("--push", expected_code=3, env={"DOCKER_HOST": DEAD_ENGINE})  # refused before the engine
    assert "change-me/" in result.stderr and "image.repository" in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--tag", "latest"], "mutable"), (["--tag", "-bad"], "not a valid tag"), (["--platform", "amd64"], "platform")],
)
def test_bad_tag_or_platform_is_a_usage_error(build_cli: BuildCli, project: Path, args: list[str], words: str) -> None:
    write_project(project)
    result = build_cli(*args, expected_code=2, env={"DOCKER_HOST": DEAD_ENGINE})
    assert words in result.stderr


def test_push_without_credentials_fails_before_the_build(
    build_cli: BuildCli, project: Path, no_docker_login: Path
) -> None:
    write_project(project)
    result = build_cli("--push", "--json", expected_code=6, env={"DOCKER_HOST": DEAD_ENGINE})
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "RegistryError" and "no credentials for the registry 127.0.0.1:5000" in error["message"]
    assert "docker login 127.0.0.1:5000" in error["hint"]


def test_unreachable_engine_names_the_address_and_the_fix(build_cli: BuildCli, project: Path) -> None:
    write_project(project)
    result = build_cli(expected_code=5, env={"DOCKER_HOST": DEAD_ENGINE})
    assert f"cannot reach the Docker engine at DOCKER_HOST={DEAD_ENGINE}" in result.stderr
    assert "start the engine" in result.stderr and "sudo systemctl start docker" in result.stderr
