"""Which release of the endpoint is this? Its id, how the workers carry it, how answers show it.

A deploy that changes what the workers run (the image, or the template's env, disk or
registry login) makes a new *release* on RunPod: the workers are replaced one by one, and for
a while old and new workers answer side by side (docs serverless/endpoints/rolling-releases.mdx,
runpod/docs@a900806). So "the endpoint answered" proves nothing about the new release unless
the answer says which release it came from.

The release id is ``rel-<image>-<template>``: 12 hex digits of the image digest (our pushed
``repo@sha256:...``; the pinned tag's sha256 for method 1, whose digest rpdeploy never
resolves) and 12 of a sha256 over the template content RunPod gets (env with secret values
hashed, disk, registry login, docker args). The template carries it to the workers in
``RPDEPLOY_RELEASE``; nothing else in it changes when it is the same, so a redeploy of the same
content keeps the same id and rolls nothing.

How each answer carries it:

* methods 2 and 3 (our workers read ``RPDEPLOY_RELEASE``): OpenAI answers put it in
  ``system_fingerprint`` (a field vLLM 0.27.1's own answers have, on whole answers and on the
  last chunk of a stream, so the objects keep their shape); a method-2 job's last output item
  has ``"release"``; every answer of the method-3 app has the header ``X-Rpdeploy-Release``.
* method 1 (RunPod's worker-vllm, whose code rpdeploy does not control): worker-vllm v2.25.2
  passes ``VLLM_EXTRA_ARGS`` to ``vllm serve`` (src/args_builder.py, build_vllm_args), and vLLM
  0.27.1 writes ``--fingerprint-value`` into ``system_fingerprint`` under ``--fingerprint-mode
  custom`` (vllm/entrypoints/serve/utils/fingerprint.py, generate/api_router.py). rpdeploy
  sets both flags there, ahead of any VLLM_EXTRA_ARGS of the user's (argparse: the last one
  wins, so a user's own ``--fingerprint-*`` turns this off, and the check says so).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rpdeploy.config import Config

#: The env var the template sets; our workers read it.
RELEASE_ENV = "RPDEPLOY_RELEASE"
#: The response header the method-3 app adds to every answer.
RELEASE_HEADER = "X-Rpdeploy-Release"
#: worker-vllm's raw pass-through to `vllm serve` (method 1).
VLLM_EXTRA_ARGS = "VLLM_EXTRA_ARGS"
#: The job output field of method 2.
RELEASE_FIELD = "release"

_RELEASE_ID = re.compile(r"^rel-[0-9a-f]{12}-[0-9a-f]{12}$")
_DIGEST = re.compile(r"@sha256:(?P<hex>[0-9a-f]{64})$")


def image_part(image: str) -> str:
    """12 hex digits naming the image: its digest when the reference has one, else a hash of the reference."""
    match = _DIGEST.search(image)
    if match:
        return match["hex"][:12]
    return hashlib.sha256(image.encode("utf-8")).hexdigest()[:12]


def content_fingerprint(
    env: Iterable[tuple[str, str, bool]], *, container_disk_gb: int, registry_auth_id: str, docker_args: str
) -> str:
    """sha256 of the template content other than the image; ``env`` is (key, value, secret) triples.

    Secret values go in as their own sha256, so the fingerprint (which is stored and shown)
    says a token changed without carrying anything of it.
    """
    values = [
        [key, "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest() if secret else value]
        for key, value, secret in env
    ]
    document = {
        "env": values,
        "containerDiskInGb": container_disk_gb,
        "containerRegistryAuthId": registry_auth_id,
        "dockerArgs": docker_args,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def release_id(image: str, content: str) -> str:
    return f"rel-{image_part(image)}-{content[:12]}"


def is_release_id(value: object) -> bool:
    return isinstance(value, str) and bool(_RELEASE_ID.match(value))


def fingerprint_args(release: str) -> str:
    """What rpdeploy puts in front of VLLM_EXTRA_ARGS for method 1."""
    return f"--fingerprint-mode custom --fingerprint-value {release}"


def overrides_fingerprint(extra_args: str) -> bool:
    """Does a user's VLLM_EXTRA_ARGS set vLLM's fingerprint itself (and so win over ours)?"""
    try:
        words = shlex.split(extra_args)
    except ValueError:
        return False
    return any(word.split("=", 1)[0] in ("--fingerprint-mode", "--fingerprint-value") for word in words)


# --- what an answer says --------------------------------------------------------------------


def from_openai(answer: Any) -> str | None:
    """The release an OpenAI object names (``system_fingerprint``), if it is an rpdeploy release id."""
    if isinstance(answer, Mapping):
        value = answer.get("system_fingerprint")
        return value if is_release_id(value) else None
    return None


def fingerprint_of(answer: Any) -> str | None:
    """``system_fingerprint`` whatever it holds (vLLM's own ``vllm-<version>-<hash>`` included)."""
    if isinstance(answer, Mapping) and isinstance(answer.get("system_fingerprint"), str):
        return str(answer["system_fingerprint"])
    return None


def from_stream(events: Iterable[Any]) -> str | None:
    """The release of a streamed OpenAI answer: vLLM stamps the fingerprint on its last chunk."""
    found = None
    for event in events:
        release = from_openai(event)
        if release is not None:
            found = release
    return found


def from_job_output(output: Any) -> str | None:
    """The release a job's output names, for any method's shape.

    Method 1 and the OpenAI route: a list holding an OpenAI object. Method 2: items whose last
    one has ``"release"``. Method 3: ``[{"status_code", "headers", "body"}]`` with the header.
    """
    items = output if isinstance(output, list) else [output]
    for item in reversed(items):
        if not isinstance(item, Mapping):
            continue
        if is_release_id(item.get(RELEASE_FIELD)):
            return str(item[RELEASE_FIELD])
        headers = item.get("headers")
        if isinstance(headers, Mapping):
            for name, value in headers.items():
                if str(name).lower() == RELEASE_HEADER.lower() and is_release_id(value):
                    return str(value)
        if "body" in item and from_openai(item.get("body")) is not None:
            return from_openai(item.get("body"))
        if from_openai(item) is not None:
            return from_openai(item)
    return None


def worker_names_release(files: Mapping[str, str]) -> bool:
    """Do the worker's files (name -> text) read RPDEPLOY_RELEASE? A handler written before
    release ids, or rewritten by its owner without them, answers without one."""
    return any(RELEASE_ENV in text for text in files.values())


def unnamed_reason(config: Config) -> str:
    """Why the new workers' answers may not name their release ("" when they should)."""
    from rpdeploy.methods import Method

    if config.method is Method.WORKER_VLLM:
        extra = config.endpoint.env.get(VLLM_EXTRA_ARGS)
        if isinstance(extra, str) and overrides_fingerprint(extra):
            return (
                "endpoint.env VLLM_EXTRA_ARGS sets vLLM's --fingerprint-* itself, so worker-vllm's answers cannot name "
                "the release"
            )
        return ""
    folder = config.worker_dir
    names = ("handler.py", "app.py") if config.method is Method.FASTAPI else ("handler.py",)
    paths = [folder / name for name in names] if folder is not None else []
    files = {path.name: path.read_text(errors="replace") for path in paths if path.is_file()}
    if files and not worker_names_release(files):
        return (
            f"{', '.join(files)} in {folder} do not read {RELEASE_ENV} (written before rpdeploy named releases, or "
            "edited since): their answers cannot name the release; `rpdeploy render --force` writes the current "
            "code (keeping a .bak of yours)"
        )
    return ""
