"""The base images: busybox runs, the python image stands in for vllm/vllm-openai with no network."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import FIXTURE_LABEL, BaseImages

pytestmark = pytest.mark.docker

STANDINS = Path(__file__).resolve().parents[1] / "standins"
TOKEN = "hf_TESTTOKEN_build_arg_0123456789"

# The shape of rpdeploy's worker Dockerfile: the model is baked in a throw-away stage that gets the
# token as a build argument; the final stage installs the pinned runpod SDK and copies the files.
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS model
LABEL org.rpdeploy.test.fixture=baked
ARG HF_TOKEN=""
RUN python3 -c "from huggingface_hub import snapshot_download as d; d('org/model', local_dir='/models/model')"

FROM ${BASE_IMAGE}
RUN python3 -m pip install --no-cache-dir "runpod==1.12.0"
COPY --from=model /models /models
CMD ["python3", "-c", "import runpod, huggingface_hub; print(runpod.__version__)"]
"""


def run(docker_client: Any, image: str, *argv: str) -> str:
    out = docker_client.containers.run(image, list(argv), remove=True, network_disabled=True, stderr=True)
    return bytes(out).decode()


def test_busybox_runs(docker_client: Any, test_images: BaseImages) -> None:
    assert run(docker_client, test_images.busybox, "sh", "-c", "echo $((6 * 7))") == "42\n"


# tests/standins/vllm comes from another branch: test whichever stand-ins exist.
PACKAGES = sorted(p.name for p in STANDINS.iterdir() if (p / "__init__.py").is_file())


@pytest.mark.parametrize("package", PACKAGES)
def test_standins_import_without_pythonpath(docker_client: Any, test_images: BaseImages, package: str) -> None:
    code = f"import importlib.metadata as m, {package} as p; print(p.__file__, m.version('{package}'))"
    where, version = run(docker_client, test_images.python, "python3", "-c", code).split()
    assert where.startswith("/usr/local/lib/python3.11/dist-packages/")
    assert version


def test_pinned_runpod_is_already_satisfied_offline(docker_client: Any, test_images: BaseImages) -> None:
    pip = ("python3", "-m", "pip", "install", "--no-cache-dir", "runpod==1.12.0")  # as the worker Dockerfile
    out = run(docker_client, test_images.python, *pip)
    assert "Requirement already satisfied: runpod==1.12.0" in out


@pytest.fixture
def baked_image(docker_client: Any, test_images: BaseImages) -> Iterator[str]:
    tag = f"rpdeploy-infra/baked:{uuid.uuid4().hex[:12]}"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(DOCKERFILE)
        tar.addfile(info, io.BytesIO(DOCKERFILE.encode()))
    context.seek(0)
    build = docker_client.api.build(
        fileobj=context,
        custom_context=True,
        tag=tag,
        network_mode="none",  # proves the image needs no network, as on CI's containers and PyPI
        buildargs={"BASE_IMAGE": test_images.python, "HF_TOKEN": TOKEN},
        rm=True,
        forcerm=True,
        decode=True,
    )
    events = list(build)
    errors = [e for e in events if "error" in e]
    assert not errors, "".join(e.get("stream", "") for e in events) + str(errors)
    yield tag
    docker_client.images.remove(tag, force=True)
    # The untagged model stage is labelled in the Dockerfile: remove only what this test made.
    docker_client.images.prune(filters={"dangling": True, "label": FIXTURE_LABEL})


@pytest.mark.slow
def test_model_is_baked_offline_without_the_token(docker_client: Any, baked_image: str) -> None:
    assert run(docker_client, baked_image).strip() == "1.12.0"
    assert run(docker_client, baked_image, "sh", "-c", "cat /models/model/token_seen; echo") == "yes\n"
    size = run(docker_client, baked_image, "stat", "-c", "%s", "/models/model/model.safetensors")
    assert int(size) == 1024 * 1024
    image = docker_client.images.get(baked_image)
    assert not any(TOKEN in (step.get("CreatedBy") or "") for step in image.history())
    tail = b""
    for chunk in image.save():  # every layer and the config of the final image
        assert TOKEN.encode() not in tail + chunk
        tail = chunk[-len(TOKEN) :]
