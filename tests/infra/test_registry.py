"""The local registry: authenticated push, pull back by digest, refusal of a wrong password."""

from __future__ import annotations

import json
import os
import stat
import uuid
from typing import Any

import pytest

from tests.support.services import REGISTRY_ENV, BaseImages, Registry, http_get

pytestmark = [pytest.mark.docker, pytest.mark.registry]


def push(docker_client: Any, reference: str, auth_config: dict[str, str]) -> list[dict[str, Any]]:
    """Push and return every event: a failed push does not raise, it ends with an error event."""
    repository, tag = reference.rsplit(":", 1)
    return list(docker_client.api.push(repository, tag, auth_config=auth_config, stream=True, decode=True))


def test_credentials_file_is_private(registry: Registry) -> None:
    assert stat.S_IMODE(os.stat(REGISTRY_ENV).st_mode) == 0o600
    assert registry.host.startswith("127.0.0.1:")


def test_push_then_pull_by_digest(docker_client: Any, registry: Registry, test_images: BaseImages) -> None:
    reference = registry.image("rpdeploy-infra/busybox", uuid.uuid4().hex[:12])
    source = docker_client.images.get(test_images.busybox)
    source.tag(reference)
    try:
        events = push(docker_client, reference, registry.auth_config)
    finally:
        docker_client.images.remove(reference)
    assert not [e for e in events if "error" in e], events
    digest = next(e["aux"]["Digest"] for e in events if "Digest" in e.get("aux", {}))

    auth = (registry.username, registry.password)
    status, body = http_get(f"{registry.url}/v2/rpdeploy-infra/busybox/tags/list", auth=auth)
    assert status == 200
    assert reference.rsplit(":", 1)[1] in json.loads(body)["tags"]

    by_digest = f"{registry.host}/rpdeploy-infra/busybox@{digest}"
    pulled = docker_client.images.pull(by_digest, auth_config=registry.auth_config)
    try:
        assert pulled.id == source.id
        assert by_digest in pulled.attrs["RepoDigests"]
        out = docker_client.containers.run(by_digest, ["echo", "pulled"], remove=True, network_disabled=True)
        assert out == b"pulled\n"
    finally:
        docker_client.images.remove(by_digest)


def test_push_with_wrong_password_is_refused(docker_client: Any, registry: Registry, test_images: BaseImages) -> None:
    reference = registry.image("rpdeploy-infra/refused", "1")
    docker_client.images.get(test_images.busybox).tag(reference)
    try:
        events = push(docker_client, reference, {"username": registry.username, "password": "wrong"})
    finally:
        docker_client.images.remove(reference)
    errors = [e["error"] for e in events if "error" in e]
    assert errors and "unauthorized" in errors[-1].lower(), events
    auth = (registry.username, registry.password)
    assert http_get(f"{registry.url}/v2/rpdeploy-infra/refused/tags/list", auth=auth)[0] == 404
