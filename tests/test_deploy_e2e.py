"""`rpdeploy deploy` end to end with real components: each method, faults, rollback.

The image is built by the real Docker engine from the rendered Dockerfile on the local
stand-in for vllm/vllm-openai and pushed to the htpasswd registry on 127.0.0.1; RunPod is the
emulator over HTTP; the backend is a booted systemd host reached over SSH, whose stand-in
Spring Boot service reports on its health URL the endpoint id and URL it was started with and
the SHA-256 of its API key. Assertions are on what those hold: the emulator's objects and
request log, the registry's manifests, the Docker engine's events, the host's files and
service, and the ledger.

Needs scripts/services.sh (fails in CI, skips elsewhere when the services are missing).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpdeploy.emulator import Emulator
from tests.conftest import CliRunnerFn, mutations
from tests.support.deploy_fixtures import (
    ENV_FILE,
    SYSTEMD_ENV_FILE,
    EngineWatch,
    backend_health,
    backend_section,
    edit_yaml,
    expected_backend,
    ledger,
    logged_cli,  # noqa: F401 (the cli fixture of this module)
    on_host,
    parse_events,
    registry_env,
    registry_manifest,
    service_pid,
    stages_for,
    statuses,
    touch_handler,
    trust_host,
    write_deploy_project,
)
from tests.support.services import BaseImages, Registry, SystemdHost

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.ssh, pytest.mark.slow]

ORIGINAL_ENV = "# settings of the service itself\nSERVER_PORT=8080\nSPRING_PROFILES_ACTIVE=prod\n"


@pytest.fixture
def repository(request: pytest.FixtureRequest, docker_client: Any, registry: Registry) -> Iterator[str]:
    """A fresh repository; the test's local images of it are removed afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    name = f"rpdeploy-e2e/{slug}-{uuid.uuid4().hex[:6]}"
    yield name
    for image in docker_client.images.list(name=f"{registry.host}/{name}"):
        for ref in image.tags:
            docker_client.images.remove(ref, force=True)


@pytest.fixture
def host(systemd_host: SystemdHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SystemdHost:
    """A fresh systemd host that rpdeploy trusts (RPDEPLOY_SSH_CONFIG), with an env file of its own."""
    trust_host(systemd_host, tmp_path, monkeypatch)
    on_host(systemd_host, f"printf '%s' '{ORIGINAL_ENV}' > {ENV_FILE} && chmod 600 {ENV_FILE}")
    on_host(systemd_host, "systemctl restart spring-boot")
    return systemd_host


def deploy(cli: CliRunnerFn, *args: str, expected_code: int = 0) -> list[dict[str, Any]]:
    return parse_events(cli("deploy", "--json", *args, expected_code=expected_code).stdout)


def single_objects(emulator: Emulator) -> tuple[dict[str, Any], dict[str, Any]]:
    state = emulator.state.snapshot()
    assert len(state["templates"]) == 1 and len(state["endpoints"]) == 1, state
    return state["templates"][0], state["endpoints"][0]


def _settings(template: dict[str, Any], endpoint: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The template and the endpoint as configured, without the simulated fleet's state."""
    return template, {k: v for k, v in endpoint.items() if k not in ("pods", "workers", "queue")}


def _invoke(path: str) -> bool:
    """The serverless invoke API (REST v2's control plane is under /v2/ too)."""
    from rpdeploy.emulator.rest import is_rest

    return path.startswith("/v2/") and not is_rest(path)


# --- each method: deploy, no-change re-run, a change, destroy -----------------------------------


@pytest.mark.parametrize(
    ("method", "mode", "api"),
    [(1, "dotenv", "graphql"), (2, "dotenv", "graphql"), (3, "systemd", "graphql"), (2, "dotenv", "rest")],
    # Over REST v2 the method with a private image of its own (registry credentials, a new image).
    ids=["worker-vllm-dotenv", "custom-handler-dotenv", "fastapi-systemd", "custom-handler-dotenv-rest"],
)
def test_lifecycle(
    cli: CliRunnerFn,
    project: Path,
    runpod_emulator: Emulator,
    registry: Registry,
    test_images: BaseImages,
    docker_client: Any,
    repository: str,
    host: SystemdHost,
    monkeypatch: pytest.MonkeyPatch,
    method: int,
    mode: str,
    api: str,
) -> None:
    monkeypatch.setenv("RPDEPLOY_RUNPOD_API", api)
    registry_env(registry, monkeypatch)
    config = write_deploy_project(
        project,
        method=method,
        registry_host=registry.host,
        repository=repository,
        base_image=test_images.python,
        backend=backend_section(host, mode=mode),
    )
    names = stages_for(method, backend=True)
    key = runpod_emulator.api_key
    engine = EngineWatch(docker_client, repository)

    # 1. The first deploy runs every stage of the method.
    events = deploy(cli)
    assert statuses(events) == dict.fromkeys(names, "done")
    result = events[-1]
    assert result["event"] == "result" and result["ok"] is True
    template, endpoint = single_objects(runpod_emulator)
    assert endpoint["templateId"] == template["id"] and result["endpoint_id"] == endpoint["id"]
    image = template["imageName"]
    if method == 1:
        assert image.startswith("runpod/worker-v1-vllm:")
    else:
        pushed = ledger(project).output("push", "image")
        assert image == pushed and image.startswith(f"{registry.host}/{repository}@sha256:")
        manifest = registry_manifest(registry, image)
        assert manifest is not None and len(manifest["layers"]) >= 5
        assert template["containerRegistryAuthId"]  # RunPod can pull the private image
    assert backend_health(host) == expected_backend(runpod_emulator.endpoint_url, endpoint["id"], key, method=method)
    if mode == "systemd":
        assert "RUNPOD_ENDPOINT_ID=" + endpoint["id"] in on_host(host, f"cat {SYSTEMD_ENV_FILE}")
        assert on_host(host, f"cat {ENV_FILE}") == ORIGINAL_ENV  # the service's own file is not touched
    else:
        assert on_host(host, f"cat {ENV_FILE}").startswith(ORIGINAL_ENV)  # its lines are kept
    assert ledger(project).output("smoke-test", "answer")

    # 2. Nothing changed: every stage skipped; no mutation, no job, no build, no push, no restart.
    runpod_emulator.requests.clear()
    pid, env_before = service_pid(host), on_host(host, f"cat {ENV_FILE} {SYSTEMD_ENV_FILE} 2>/dev/null; true")
    engine.start()
    events = deploy(cli)
    assert engine.stop() == []
    assert statuses(events) == dict.fromkeys(names, "skipped")
    assert mutations(runpod_emulator) == []
    assert not [r for r in runpod_emulator.requests if _invoke(r.path)]  # no smoke job, no health poll
    assert service_pid(host) == pid
    assert on_host(host, f"cat {ENV_FILE} {SYSTEMD_ENV_FILE} 2>/dev/null; true") == env_before
    # The same objects on RunPod (the fleet aside: the smoke test's worker may have gone idle since).
    assert _settings(*single_objects(runpod_emulator)) == _settings(template, endpoint)

    # 3. A change: a handler edit (methods 2: a new image), an env var (3), the worker count (1).
    runpod_emulator.requests.clear()
    engine.start()
    if method == 2:
        touch_handler(project, "a one-line change")
    elif method == 3:
        edit_yaml(config, "endpoint", env={"LOG_LEVEL": "debug"})
    else:
        edit_yaml(config, "endpoint", workers_max=3)
    events = deploy(cli)
    seen = statuses(events)
    new_template, new_endpoint = single_objects(runpod_emulator)
    assert (new_template["id"], new_endpoint["id"]) == (template["id"], endpoint["id"])  # updated in place
    if method == 2 and api == "rest":
        # v2: the new image goes on the endpoint itself, a PATCH of the image and the release it
        # makes (a new release); the endpoint check, and the test through the backend, run again.
        assert [seen[s] for s in names] == [
            "skipped", "skipped", "done", "done", "skipped", "done", "skipped", "done", "done", "skipped", "skipped",
            "done",
        ]  # fmt: skip
        engine.stop()
        assert engine.actions().count("push") == 1
        assert new_template["imageName"] == ledger(project).output("push", "image") != image
        assert mutations(runpod_emulator) == ["updateEndpoint"]
        [patch] = [r for r in runpod_emulator.requests if r.operation == "updateEndpoint"]
        assert set(patch.body) == {"image", "env"} and patch.body["image"] == new_template["imageName"]
        release = ledger(project).output("template", "release")
        first = {item["key"]: item["value"] for item in endpoint["env"]}["RPDEPLOY_RELEASE"]
        assert patch.body["env"]["RPDEPLOY_RELEASE"] == release != first
        assert new_endpoint["version"] == endpoint["version"] + 1
    elif method == 2:
        # Your edit of handler.py is kept (the handler stage has nothing to write) and built.
        # A new release: the endpoint check, and the test through the backend, run again.
        assert [seen[s] for s in names] == [
            "skipped", "skipped", "done", "done", "skipped", "done", "skipped", "skipped", "done", "skipped", "skipped",
            "done",
        ]  # fmt: skip
        engine.stop()
        assert "tag" in engine.actions() and engine.actions().count("push") == 1
        assert new_template["imageName"] != image
        assert new_template["imageName"] == ledger(project).output("push", "image")
        assert registry_manifest(registry, new_template["imageName"]) is not None
        assert mutations(runpod_emulator) == ["SaveTemplate"]
    elif method == 3:
        assert seen["build"] == "skipped" and seen["template"] == "done" and seen["endpoint"] == "skipped"
        assert engine.stop() == []
        assert {"key": "LOG_LEVEL", "value": "debug"} in new_template["env"]
        assert new_template["imageName"] == image
        assert mutations(runpod_emulator) == ["SaveTemplate"]
    else:
        assert seen["template"] == "skipped" and seen["endpoint"] == "done"
        assert new_endpoint["workersMax"] == 3
        assert mutations(runpod_emulator) == ["SaveEndpoint"]
    # The endpoint id and key did not change: the backend is neither rewritten nor restarted.
    assert seen["backend-env"] == "skipped" and seen["backend-restart"] == "skipped"
    assert service_pid(host) == pid
    assert backend_health(host)["endpointId"] == endpoint["id"]

    # 4. destroy: the endpoint and template are gone, the backend is as it was before rpdeploy.
    document = json.loads(cli("destroy", "--yes", "--restore-backend", "--json").stdout)
    assert document["ok"] is True
    state = runpod_emulator.state.snapshot()
    assert state["endpoints"] == [] and state["templates"] == []
    assert on_host(host, f"cat {ENV_FILE}") == ORIGINAL_ENV
    if mode == "systemd":
        assert on_host(host, f"ls {SYSTEMD_ENV_FILE} 2>&1 || true").count("No such file") == 1
    assert backend_health(host) == {"endpointUrl": None, "endpointId": None, "apiKeySha256": None}
    # ... and a second destroy is harmless.
    again = json.loads(cli("destroy", "--yes", "--restore-backend", "--json").stdout)
    assert again["done"] == []


# --- rollback ------------------------------------------------------------------------------------


def test_rollback_walks_back_one_deployment_at_a_time(
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
    write_deploy_project(
        project,
        method=2,
        registry_host=registry.host,
        repository=repository,
        base_image=test_images.python,
        backend=backend_section(host),
    )
    key = runpod_emulator.api_key

    def deployed() -> tuple[str, str, dict[str, Any]]:
        template, _ = single_objects(runpod_emulator)
        return template["imageName"], on_host(host, f"cat {ENV_FILE}"), backend_health(host)

    # A: the first deployment.
    deploy(cli)
    first_template, endpoint = single_objects(runpod_emulator)
    a = deployed()
    assert a[2] == expected_backend(runpod_emulator.endpoint_url, endpoint["id"], key, method=2)
    # B: a new image, and the backend reaches RunPod by another name: its env changes too.
    touch_handler(project, "version B")
    other_url = runpod_emulator.endpoint_url.replace("127.0.0.1", "localhost")
    monkeypatch.setenv("RUNPOD_ENDPOINT_BASE_URL", other_url)
    assert statuses(deploy(cli))["backend-restart"] == "done"
    b = deployed()
    assert b[2]["endpointUrl"] == f"{other_url}/{endpoint['id']}/openai/v1"
    # C: only a new image; the backend is left alone.
    touch_handler(project, "version C")
    seen = statuses(deploy(cli))
    assert seen["push"] == "done" and seen["backend-env"] == "skipped"
    c = deployed()
    assert len({a[0], b[0], c[0]}) == 3 and all(registry_manifest(registry, image) for image in (a[0], b[0], c[0]))
    assert c[1:] == b[1:]

    # C -> B: the image only (C did not change the backend).
    runpod_emulator.requests.clear()
    pid = service_pid(host)
    document = json.loads(cli("rollback", "--yes", "--json").stdout)
    assert (document["image"], document["previous_image"], document["template_changed"]) == (c[0], b[0], True)
    assert deployed() == b and service_pid(host) == pid
    assert mutations(runpod_emulator) == ["SaveTemplate"]
    template, same_endpoint = single_objects(runpod_emulator)
    assert template["id"] == first_template["id"] and same_endpoint["id"] == endpoint["id"]

    # status says so; plan shows deploy.yaml's image (C) coming back, and nothing for the backend.
    status = json.loads(cli("status", "--json").stdout)
    assert status["endpoint_id"] == endpoint["id"] and status["backend"]["healthy"] is True
    assert status["backend"]["endpoint_id"] == endpoint["id"]
    assert any(note.startswith("rolled back at ") and c[0] in note and b[0] in note for note in status["notes"])
    plan = json.loads(cli("plan", "--json").stdout)
    assert plan["changes_pending"] is True and plan["image"]["image"] == c[0]
    [operation] = plan["operations"]
    assert operation["kind"] == "update-template"
    # The image, and with it the release the template names (rpdeploy/runpod/release.py).
    image_change, release_change = operation["changes"]
    assert image_change == {"field": "image", "old": b[0], "new": c[0]}
    assert release_change["field"] == "env.RPDEPLOY_RELEASE" and release_change["old"] != release_change["new"]
    assert plan["backend"]["changed"] is False
    assert f"image: {b[0]!r} -> {c[0]!r}" in cli("plan").stdout

    # B -> A: the image, and the env B's deployment replaced (restored, service restarted).
    document = json.loads(cli("rollback", "--yes", "--json").stdout)
    assert (document["image"], document["previous_image"]) == (b[0], a[0])
    assert document["backend"].startswith("backend: restored /opt/spring-boot/.env")
    assert deployed() == a
    # Nothing before A.
    result = cli("rollback", "--yes")
    assert result.stdout.startswith("Nothing to roll back: no earlier deployment is recorded")
    assert deployed() == a

    # deploy applies deploy.yaml again: C's image, and B's (and C's) env.
    seen = statuses(deploy(cli))
    assert seen["build"] == seen["push"] == "skipped" and seen["template"] == "done"
    assert seen["backend-env"] == seen["backend-restart"] == seen["smoke-test"] == "done"
    assert deployed()[0] == c[0] and deployed()[2] == b[2]
    assert not any(note.startswith("rolled back") for note in json.loads(cli("status", "--json").stdout)["notes"])


def test_rollback_after_destroy_creates_nothing(cli: CliRunnerFn, project: Path, runpod_emulator: Emulator) -> None:
    write_deploy_project(project, method=1)
    deploy(cli)
    cli("destroy", "--yes")
    deploy(cli)  # a new endpoint: a second deployment in the history
    assert len(ledger(project).history) == 2
    cli("destroy", "--yes")
    runpod_emulator.requests.clear()
    result = json.loads(cli("rollback", "--yes", "--json").stdout)
    assert result["nothing"].startswith("there is no endpoint named 'e2e-worker' on RunPod")
    assert mutations(runpod_emulator) == []
    assert runpod_emulator.state.snapshot()["templates"] == []
