"""Switching methods is a deploy, and the backend does not notice (issue 19), with real components.

A project deployed with method 1 and a backend (a booted systemd host over SSH, whose stand-in
Spring Boot service reports the endpoint URL it was started with) is moved to method 2 with
`rpdeploy init --method 2` and deployed: the image is built by the real Docker engine and pushed
to the htpasswd registry, the same endpoint is updated in place, the backend's env file is not
touched and the service not restarted, and the smoke test passes on the OpenAI route, the one
the backend calls. Then back to method 1, the same way.

Needs scripts/services.sh (fails in CI, skips elsewhere when the services are missing).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from rpdeploy.emulator import Emulator
from tests.conftest import CliRunnerFn
from tests.support.deploy_fixtures import (
    CREDENTIALS,
    ENV_FILE,
    backend_health,
    backend_section,
    edit_yaml,
    expected_backend,
    logged_cli,  # noqa: F401 (the cli fixture of this module)
    on_host,
    parse_events,
    registry_env,
    service_pid,
    stages_for,
    statuses,
    trust_host,
    write_deploy_project,
)
from tests.support.services import BaseImages, Registry, SystemdHost

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.ssh, pytest.mark.slow]

ORIGINAL_ENV = "# settings of the service itself\nSERVER_PORT=8080\n"


@pytest.fixture
def repository(request: pytest.FixtureRequest, docker_client: Any, registry: Registry) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    name = f"rpdeploy-e2e/{slug}-{uuid.uuid4().hex[:6]}"
    yield name
    for image in docker_client.images.list(name=f"{registry.host}/{name}"):
        for ref in image.tags:
            docker_client.images.remove(ref, force=True)


@pytest.fixture
def host(systemd_host: SystemdHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SystemdHost:
    trust_host(systemd_host, tmp_path, monkeypatch)
    on_host(systemd_host, f"printf '%s' '{ORIGINAL_ENV}' > {ENV_FILE} && chmod 600 {ENV_FILE}")
    on_host(systemd_host, "systemctl restart spring-boot")
    return systemd_host


def deploy(cli: CliRunnerFn) -> list[dict[str, Any]]:
    events = parse_events(cli("deploy", "--json").stdout)
    assert events[-1]["event"] == "result" and events[-1]["ok"] is True, events[-1]
    return events


def only_objects(emulator: Emulator) -> tuple[dict[str, Any], dict[str, Any]]:
    state = emulator.state.snapshot()
    assert len(state["templates"]) == 1 and len(state["endpoints"]) == 1, state
    return state["templates"][0], state["endpoints"][0]


def openai_calls(emulator: Emulator, endpoint_id: str) -> list[tuple[str, str, int]]:
    prefix = f"/v2/{endpoint_id}/openai/v1"
    return [(r.method, r.path.removeprefix(prefix), r.status) for r in emulator.requests if r.path.startswith(prefix)]


def test_switching_methods_keeps_the_endpoint_and_leaves_the_backend_alone(
    cli: CliRunnerFn,
    project: Path,
    runpod_emulator: Emulator,
    registry: Registry,
    test_images: BaseImages,
    repository: str,
    host: SystemdHost,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry_env(registry, monkeypatch)
    config = write_deploy_project(project, method=1, backend=backend_section(host))
    edit_yaml(config, "smoke_test", stream=True)

    # Method 1, deployed: the backend points at the endpoint's OpenAI base URL.
    deploy(cli)
    template, endpoint = only_objects(runpod_emulator)
    assert template["imageName"].startswith("runpod/worker-v1-vllm:")
    backend = expected_backend(runpod_emulator.endpoint_url, endpoint["id"], runpod_emulator.api_key, method=1)
    assert backend_health(host) == backend
    env_file, pid = on_host(host, f"cat {ENV_FILE}"), service_pid(host)

    # Moved to method 2: deploy.yaml edited in place, the worker written. The user then points
    # image: at this machine's stand-in base image and the registry's login.
    cli("init", "--method", "2", "--registry", registry.host, "--repository", repository)
    assert (project / "worker" / "handler.py").is_file()
    edit_yaml(config, "image", base_image=test_images.python, credentials=CREDENTIALS)
    plan = cli("plan").stdout.splitlines()
    assert plan[0] == (
        f"method: worker-vllm -> custom-handler (endpoint {endpoint['id']} is updated in place: same id, same URL; "
        "the backend's settings do not change)"
    )
    assert f"backend root@127.0.0.1:{host.port}: no changes" in plan

    runpod_emulator.requests.clear()
    events = deploy(cli)
    ran = statuses(events)
    assert {name: ran[name] for name in stages_for(2, backend=True)} == {
        **dict.fromkeys(stages_for(2, backend=True), "done"),
        "gpu": "skipped",  # the model and the endpoint's settings did not change
        "backend-env": "skipped",  # same endpoint, same URL, same key: nothing to write
        "backend-restart": "skipped",
    }
    moved, same = only_objects(runpod_emulator)
    assert same["id"] == endpoint["id"] and moved["id"] == template["id"]  # updated in place
    assert moved["imageName"].startswith(f"{registry.host}/{repository}@sha256:")
    assert on_host(host, f"cat {ENV_FILE}") == env_file  # not even rewritten
    assert service_pid(host) == pid  # not restarted
    assert backend_health(host) == backend
    # The smoke test passed on the route the backend uses, streamed answer included.
    assert events[-1]["smoke"]["passed"] is True
    assert openai_calls(runpod_emulator, endpoint["id"]) == [
        ("GET", "/models", 200),
        ("POST", "/chat/completions", 200),
        ("POST", "/chat/completions", 200),
    ]
    # And the backend's URL and key work with any OpenAI client, now served by method 2.
    client = openai.OpenAI(base_url=backend["endpointUrl"], api_key=runpod_emulator.api_key, max_retries=0)
    answer = client.chat.completions.create(
        model="Qwen/Qwen2.5-0.5B-Instruct", messages=[{"role": "user", "content": "ping"}], max_tokens=4
    )
    assert answer.choices[0].message.content and answer.usage is not None and answer.usage.completion_tokens == 4

    # And back to method 1: the image: section is set aside, the same endpoint runs worker-vllm again.
    cli("init", "--method", "1")
    assert "valid (worker-vllm" in cli("validate").stdout
    events = deploy(cli)
    assert statuses(events)["backend-env"] == "skipped" and statuses(events)["backend-restart"] == "skipped"
    back, same = only_objects(runpod_emulator)
    assert same["id"] == endpoint["id"] and back["id"] == template["id"]
    assert back["imageName"] == template["imageName"]
    assert on_host(host, f"cat {ENV_FILE}") == env_file and service_pid(host) == pid
    assert events[-1]["smoke"]["passed"] is True
