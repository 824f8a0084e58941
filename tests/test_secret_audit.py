"""Secret hygiene audit: distinctive secret values, every command, and everywhere they must not be.

Each secret has a value no output would contain by chance. Commands run as real processes
(`python -m rpdeploy`, so the crash handler is exercised too) while a thread reads every
process's argv on this machine (the systemd host's processes included: its container shares
the kernel). Afterwards stdout, stderr, the ledger, the worker files, the pushed image
(history, config and file system) and the backend host's journal are searched.

Where a secret is *meant* to go is not searched: RunPod's template env (the emulator's state)
and the backend's env file.

Every secret is searched for in its encoded forms too, because programs echo what they were
sent in the form they were sent it, and a masked raw value does not help when its JSON
string is printed (:func:`encodings`). The set, and why each is in it:

* JSON string escaping, ASCII-only and not, and JSON escaping twice: GraphQL variables and
  API error bodies that echo a request (a JSON document quoted inside another one), NDJSON
  events, pydantic's echo of an input;
* Python ``repr``: tracebacks and ``{value!r}`` in messages;
* URL percent-encoding (``quote`` with and without ``/``, ``quote_plus``): query strings
  (``?api_key=``) and form bodies, which HTTP libraries print in their errors;
* base64, standard and URL-safe, at the three byte alignments a value can have inside a
  longer encoded string: HTTP Basic auth, docker's ``X-Registry-Auth`` header and config.json
  ``auth``, JWT-like tokens (the run of full 3-byte groups is searched);
* POSIX shell quoting (``shlex.quote``): a command printed for someone to copy.

Hex and HTML escaping are not searched: nothing rpdeploy talks to produces them from a
secret. The secrets hold the characters each encoding changes (``"``, ``\\``, ``é``, ``'``,
space, ``+ / = % & :``), or an encoded form would simply equal the raw value.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rpdeploy.emulator import Emulator
from tests.support.services import REPO_ROOT, BaseImages, Registry, SystemdHost

pytestmark = [pytest.mark.docker, pytest.mark.registry, pytest.mark.ssh, pytest.mark.slow]

SECRETS = {
    # Characters an env file takes bare (+ / = % :), which URL encoding and base64 change.
    "RUNPOD_API_KEY": "rpa_AUDIT+KEY/3f9c=2e71%b8d4:a05",
    "HF_TOKEN": "hf_AUDIT+TOKEN/a81d=03c5e2f7",
    # Only ever in RunPod's template env: it can hold what JSON, URLs and shells all escape.
    "AUDIT_APP_SECRET": 'appsecret AUDIT "q" \\ é/+&=%\' 77c1e94b20',
    # The integration test's Authorization header (stage 11b): it travels to the backend host on stdin.
    "AUDIT_BACKEND_TOKEN": 'Bearer AUDIT+BT/"9d" é=%3a 41f0c7',
    # A backend key RunPod refuses (backend.api_key): the integration test fails and the backend is rolled back.
    "AUDIT_BACKEND_KEY_WRONG": "rpa_AUDIT+WRONG/backend=7%e2:c3",
}


def encodings(value: str) -> dict[str, str]:
    """``value`` and its encoded forms (see the module docstring), each at least 8 characters."""
    raw = value.encode("utf-8")
    forms = {
        "raw": value,
        "json": json.dumps(value)[1:-1],
        "json-unicode": json.dumps(value, ensure_ascii=False)[1:-1],
        "json-in-json": json.dumps(json.dumps(value)[1:-1])[1:-1],
        "repr": repr(value)[1:-1],
        "url": urllib.parse.quote(value, safe=""),
        "url-path": urllib.parse.quote(value),
        "form": urllib.parse.quote_plus(value),
        "shell": shlex.quote(value),
    }
    for offset in range(3):
        body = raw[offset:]
        body = body[: len(body) - len(body) % 3]
        forms[f"base64@{offset}"] = base64.b64encode(body).decode()
        forms[f"base64url@{offset}"] = base64.urlsafe_b64encode(body).decode()
    return {name: form for name, form in forms.items() if len(form) >= 8}


@dataclass
class ArgvWatch:
    """Samples /proc/*/cmdline in the background; remembers any argv holding a secret."""

    needles: tuple[str, ...]
    hits: list[str] = field(default_factory=list)
    samples: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                        argv = handle.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if any(needle in argv for needle in self.needles):
                    self.hits.append(argv[:200])
            self.samples += 1
            self.stop.wait(0.02)


@pytest.fixture
def argv_watch(registry: Registry) -> Iterator[ArgvWatch]:
    watch = ArgvWatch((*SECRETS.values(), registry.password))
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    yield watch
    watch.stop.set()
    thread.join(timeout=5)


@dataclass
class Audit:
    project: Path
    env: dict[str, str]
    needles: tuple[str, ...]
    outputs: list[tuple[str, str]] = field(default_factory=list)

    def run(
        self, *args: str, expect: int = 0, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        process = subprocess.run(
            [sys.executable, "-m", "rpdeploy", *args],
            cwd=self.project,
            env={**self.env, **(extra_env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        label = " ".join(args)
        assert process.returncode == expect, f"{label}: exit {process.returncode}\n{process.stdout}\n{process.stderr}"
        self.outputs.append((label, process.stdout + process.stderr))
        return process

    def leaks(self, text: str) -> list[str]:
        return [name for name, value in self.named() if value in text]

    def named(self) -> list[tuple[str, str]]:
        """(label, needle) for every secret in every encoded form; labels never hold the value."""
        return [
            (f"secret #{i} ({encoding})", form)
            for i, needle in enumerate(self.needles)
            for encoding, form in encodings(needle).items()
        ]


def _deploy_yaml(base_image: str, registry: Registry, host: SystemdHost) -> str:
    return f"""\
method: custom-handler
model:
  name: Qwen/Qwen2.5-0.5B-Instruct
  hf_token: HF_TOKEN
  bake: true
image:
  registry: {registry.host}
  repository: audit/secret-worker
  base_image: {base_image}
  credentials: {{username: AUDIT_REG_USER, password: AUDIT_REG_PASSWORD}}
endpoint:
  name: audit-endpoint
  env:
    APP_SECRET: {{env: AUDIT_APP_SECRET}}
    PLAIN_SETTING: visible
backend:
  host: root@127.0.0.1:{host.port}
  identity_file: {host.identity_file}
  mode: systemd
  health_url: http://127.0.0.1:8080/actuator/health
  health_timeout: 60
  api_key: AUDIT_BACKEND_KEY
  integration_test:
    url: http://127.0.0.1:8080/api/chat
    headers: {{Authorization: {{env: AUDIT_BACKEND_TOKEN}}, X-Audit: visible}}
    body: {{message: hello}}
    expect: {{json_path: answer}}
smoke_test:
  timeout: 60
"""


@pytest.fixture
def audit_emulator(systemd_host: SystemdHost) -> Iterator[Emulator]:
    # The audit's own key: it must travel everywhere a real key does, or nothing is tested. On the
    # docker bridge, so the backend in the host container calls it (stage 11b).
    from tests.support.openapi_check import RestChecker

    checker = RestChecker()
    with Emulator(
        SECRETS["RUNPOD_API_KEY"], host=systemd_host.gateway, cold_start=0.2, execution_time=0.05, runsync_wait=2.0
    ) as emu:
        emu.rest_observer = checker  # the REST v2 calls of the audit are checked against RunPod's document too
        yield emu
    checker.assert_clean()


@pytest.fixture
def audit(
    tmp_path: Path,
    audit_emulator: Emulator,
    registry: Registry,
    test_images: BaseImages,
    systemd_host: SystemdHost,
) -> Audit:
    project = tmp_path / "project"
    project.mkdir()
    (project / "deploy.yaml").write_text(_deploy_yaml(test_images.python, registry, systemd_host))
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(f"UserKnownHostsFile {systemd_host.known_hosts_file}\nStrictHostKeyChecking yes\n")
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        # The checkout under test, whatever rpdeploy the interpreter has installed.
        "PYTHONPATH": str(REPO_ROOT),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "CI": "true",
        "DOCKER_CONFIG": str(docker_config),
        "RPDEPLOY_SSH_CONFIG": str(ssh_config),
        "RUNPOD_API_BASE_URL": audit_emulator.api_url,
        "RUNPOD_ENDPOINT_BASE_URL": audit_emulator.endpoint_url,
        "AUDIT_REG_USER": registry.username,
        "AUDIT_REG_PASSWORD": registry.password,
        **SECRETS,
        # The backend's own key: the RunPod key until a failure path swaps in the wrong one.
        "AUDIT_BACKEND_KEY": SECRETS["RUNPOD_API_KEY"],
    }
    key = systemd_host.identity_file.read_text().strip().splitlines()
    return Audit(project, env, (*SECRETS.values(), registry.password, key[1], key[-2]))


def _crash_hook(tmp_path: Path) -> dict[str, str]:
    """A sitecustomize that makes `rpdeploy validate` hit a bug whose message holds the key."""
    hooks = tmp_path / "crash-hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import functools, os\n"
        "import rpdeploy.commands.validate as validate\n"
        "@functools.wraps(validate.validate)\n"
        "def broken(*args, **kwargs):\n"
        "    token = os.environ['RUNPOD_API_KEY']\n"
        "    raise RuntimeError(f'unexpected state with {token}')\n"
        "validate.validate = broken\n"
    )
    return {"PYTHONPATH": f"{hooks}{os.pathsep}{REPO_ROOT}"}


def test_no_secret_leaks_anywhere(
    audit: Audit, argv_watch: ArgvWatch, audit_emulator: Emulator, systemd_host: SystemdHost, docker_client: Any,
    registry: Registry, tmp_path: Path,
) -> None:  # fmt: skip
    # Success paths, people's output and machines' output, quiet and verbose.
    audit.run("validate")
    audit.run("validate", "--json")
    audit.run("check", "--offline", "--json")
    audit.run("doctor", "--json")
    audit.run("plan")
    audit.run("deploy", "--verbose")
    audit.run("deploy", "--json", "--force")
    audit.run("status", "--json")
    audit.run("plan", "--json")
    audit.run("smoke-test", "--json", "--junit", "smoke.xml")
    audit.run("endpoint", "get", "--json")
    audit.run("endpoint", "list")
    audit.run("endpoint", "update", "--dry-run", "--json")
    audit.run("backend", "check", "--json")
    audit.run("backend", "configure", "--endpoint-id", "abcdefgh123456", "--dry-run", "--json")
    audit.run("backend", "properties", "--endpoint-id", "abcdefgh123456")
    audit.run("build", "--json", "--verbose")
    # The backend cannot reach the endpoint with its new key: stage 11b fails and rolls it back.
    audit.run("deploy", "--verbose", expect=13, extra_env={"AUDIT_BACKEND_KEY": SECRETS["AUDIT_BACKEND_KEY_WRONG"]})
    audit.run("deploy", "--json")

    # Failure paths: a wrong key, a wrong registry password, a refused SSH port, a worker error
    # that echoes a secret back, and a crash whose message holds the key.
    audit.run("endpoint", "list", "--json", expect=8, extra_env={"RUNPOD_API_KEY": "rpa_wrongkey_0000000000"})
    wrong_registry = {"AUDIT_REG_PASSWORD": SECRETS["AUDIT_APP_SECRET"] + "x"}
    audit.run("build", "--push", "--no-cache", "--verbose", expect=6, extra_env=wrong_registry)
    audit_emulator.faults.job_error_output(message=f"tokenizer rejected {SECRETS['HF_TOKEN']}", count=1)
    audit.run("smoke-test", "--verbose", expect=10)
    # ...and programs that echo a secret in the form they were sent it: a worker quoting its
    # JSON config and an Authorization header, an API error quoting the request's variables.
    echoed = (
        f"config {json.dumps({'APP_SECRET': SECRETS['AUDIT_APP_SECRET']})} auth Basic "
        + base64.b64encode(f"user:{SECRETS['RUNPOD_API_KEY']}".encode()).decode()
        + " query "
        + urllib.parse.urlencode({"api_key": SECRETS["RUNPOD_API_KEY"], "t": SECRETS["HF_TOKEN"]})
    )
    audit_emulator.faults.job_error_output(message=echoed, count=2)
    audit.run("smoke-test", expect=10)
    audit_emulator.faults.job_error_output(message=echoed, count=2)
    audit.run("smoke-test", "--json", expect=10)
    audit_emulator.faults.graphql_errors(message=f"bad input {echoed}", count=3)
    audit.run("endpoint", "update", expect=7)
    # Worker logs as RunPod streams them (REST v2, read under graphql too): a failed job quoting a
    # secret shows up in the smoke test's report of the worker's last lines, and in `logs`.
    audit_emulator.faults.clear()  # the errors above may not all be spent
    audit_emulator.faults.job_fail(message=f"worker saw {echoed}", count=1)
    audit.run("smoke-test", expect=10)
    audit.run("logs")
    audit.run("logs", "--json", "--since", "1h")
    # The same deployment over REST v2: the container's env goes to the endpoint itself.
    rest = {"RPDEPLOY_RUNPOD_API": "rest"}
    audit.run("deploy", "--json", "--force", extra_env=rest)
    audit.run("plan", "--json", extra_env=rest)
    audit.run("endpoint", "get", "--json", extra_env=rest)
    audit.run("status", extra_env=rest)
    crash = audit.run("validate", expect=1, extra_env=_crash_hook(tmp_path))
    assert "RuntimeError: unexpected state with ****" in crash.stderr  # the traceback is there, redacted
    config = audit.project / "deploy.yaml"
    config.write_text(config.read_text().replace(f"127.0.0.1:{systemd_host.port}", "127.0.0.1:1"))
    audit.run("deploy", "--force", "--only", "backend-env", expect=9)
    # Moving the project to another method rewrites deploy.yaml and the worker (issue 19).
    audit.run("init", "--method", "3", "--force", "--json")
    assert "method: fastapi" in config.read_text()

    # Deleting: RunPod holding the template (the wait gives up, naming what is left), the
    # re-run that finishes, then a same-named endpoint that is not this deployment's, whose
    # template holds secrets of its own.
    audit_emulator.faults.template_delete_delay(60)
    audit.run("destroy", "--yes", "--wait", "1", expect=7)
    audit_emulator.faults.clear()
    audit_emulator.faults.template_delete_delay(0)
    audit.run("destroy", "--yes", "--json")
    _stranger(audit_emulator, "audit-endpoint", SECRETS["HF_TOKEN"])
    audit.run("endpoint", "delete", "--yes", expect=7)
    audit.run("deploy", "--json", expect=7)

    argv_watch.stop.set()
    findings: list[str] = []
    for label, text in audit.outputs:
        findings += [f"output of `{label}`: {name}" for name in audit.leaks(text)]
    for path in audit.project.rglob("*"):
        if path.is_file():
            findings += [
                f"file {path.relative_to(audit.project)}: {n}" for n in audit.leaks(path.read_text(errors="replace"))
            ]
    findings += [f"argv: {hit}" for hit in argv_watch.hits]
    assert argv_watch.samples > 50  # the watcher really ran through the commands

    # The pushed image: history, config and every file of every layer.
    from rpdeploy.deploy.ledger import Ledger

    pushed = Ledger.load(audit.project / ".rpdeploy").output("push", "image")
    assert pushed, "deploy pushed an image"
    image = docker_client.images.pull(pushed, auth_config=registry.auth_config)
    history = " ".join(str(entry) for entry in image.history())
    findings += [f"image history: {n}" for n in audit.leaks(history + str(image.attrs))]
    container = docker_client.containers.create(image.id, command=["true"])
    try:
        with tempfile.TemporaryFile() as archive:
            for chunk in container.export():
                archive.write(chunk)
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                for member in tar:
                    handle = tar.extractfile(member) if member.isfile() and member.size < 50_000_000 else None
                    if handle is not None:
                        content = handle.read().decode(errors="replace")
                        findings += [f"image file {member.name}: {n}" for n in audit.leaks(content)]
    finally:
        container.remove(force=True)

    # The backend host's journal (sudo logs its commands there) and its shell histories.
    code, journal = systemd_host.exec(
        "sh", "-c", "journalctl --no-pager 2>/dev/null; cat /root/.*history 2>/dev/null; true"
    )
    assert code == 0 and "spring-boot" in journal  # the journal was really read
    findings += [f"backend journal: {n}" for n in audit.leaks(journal)]
    assert findings == []


def _stranger(emulator: Emulator, name: str, secret: str) -> None:
    """An endpoint named like ours, made outside rpdeploy, its template holding a secret."""
    import httpx

    def gql(query: str, variables: dict[str, Any]) -> Any:
        answer = httpx.post(
            emulator.graphql_url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {emulator.api_key}"},
        )
        assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
        return answer.json()["data"]

    template = gql(
        "mutation($input: SaveTemplateInput) { saveTemplate(input: $input) { id } }",
        {"input": {"name": f"{name}-elsewhere", "imageName": "acme/w:1", "dockerArgs": "", "containerDiskInGb": 5,
                   "volumeInGb": 0, "isServerless": True, "env": [{"key": "HF_TOKEN", "value": secret}]}},
    )["saveTemplate"]  # fmt: skip
    gql(
        "mutation($input: EndpointInput!) { saveEndpoint(input: $input) { id } }",
        {"input": {"name": name, "templateId": template["id"], "gpuIds": "AMPERE_24"}},
    )


def test_the_audit_can_see_a_leak(audit: Audit) -> None:
    """The same search finds a secret that is printed: the audit is not blind."""
    process = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['HF_TOKEN'])"],
        env=audit.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert audit.leaks(process.stdout)


@pytest.mark.parametrize(
    "printing",
    [
        "json.dumps({'v': os.environ['AUDIT_APP_SECRET']})",
        "repr(os.environ['AUDIT_APP_SECRET'])",
        "urllib.parse.urlencode({'api_key': os.environ['RUNPOD_API_KEY']})",
        "base64.b64encode(('user:' + os.environ['RUNPOD_API_KEY']).encode()).decode()",
        "base64.urlsafe_b64encode(('ab' + os.environ['HF_TOKEN']).encode()).decode()",
        "shlex.quote(os.environ['AUDIT_APP_SECRET'])",
    ],
    ids=["json", "repr", "query-string", "basic-auth", "base64url-offset-2", "shell"],
)
def test_the_audit_can_see_an_encoded_leak(audit: Audit, printing: str) -> None:
    """Each encoding the audit searches is found when a program prints it, raw value nowhere in sight."""
    process = subprocess.run(
        [sys.executable, "-c", f"import base64, json, os, shlex, urllib.parse; print({printing})"],
        env=audit.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert audit.leaks(process.stdout)
    assert not any(value in process.stdout for value in SECRETS.values())


# --- the HF token as a RunPod secret (issue 12) ---------------------------------------------------

_METHOD_1 = """\
method: worker-vllm
model:
  name: Qwen/Qwen2.5-7B-Instruct
  hf_token: HF_TOKEN
{delivery}endpoint:
  name: audit-token
smoke_test:
  timeout: 60
"""


def _template_env(emulator: Emulator, name: str) -> dict[str, str]:
    [template] = [t for t in emulator.state.snapshot()["templates"] if t["name"] == name]
    return {item["key"]: item["value"] for item in template["env"]}


def _worker_envs(emulator: Emulator) -> list[dict[str, str]]:
    with emulator.state.lock:
        return [dict(w.env) for e in emulator.state.endpoints.values() for w in e.workers]


@pytest.mark.parametrize("delivery", ["secret", "template-env"])
def test_the_hf_token_reaches_workers_only_through_runpod(tmp_path: Path, delivery: str) -> None:
    """The token goes to RunPod once, as an account secret (or, the way out, as the template's
    env value); never into output, the ledger, a file, a process's argv, or worker-vllm's
    `vllm serve` argv. The emulator's worker gets it substituted for the reference."""
    token = SECRETS["HF_TOKEN"]
    project = tmp_path / "project"
    project.mkdir()
    shown = "  hf_token_delivery: template-env\n" if delivery == "template-env" else ""
    (project / "deploy.yaml").write_text(_METHOD_1.format(delivery=shown))
    with Emulator(SECRETS["RUNPOD_API_KEY"], cold_start=0.1, execution_time=0.05, runsync_wait=2.0) as emulator:
        env = {
            "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8", "CI": "true",
            "RUNPOD_API_BASE_URL": emulator.api_url, "RUNPOD_ENDPOINT_BASE_URL": emulator.endpoint_url,
            "HF_HUB_OFFLINE": "1", **SECRETS,
        }  # fmt: skip
        audit = Audit(project, env, (token,))
        watch = ArgvWatch((token,))
        thread = threading.Thread(target=watch.run, daemon=True)
        thread.start()
        try:
            for args in (
                ("validate",),
                ("check", "--json"),
                ("plan",),
                ("deploy", "--verbose"),
                ("deploy", "--json"),
                ("endpoint", "update", "--dry-run", "--json"),
                ("smoke-test", "--json"),
                ("status", "--json"),
            ):
                audit.run(*args)
            template_env = _template_env(emulator, "audit-token-template")
            workers = _worker_envs(emulator)
            with emulator.state.lock:
                stored = {s.name: s.value for s in emulator.state.secrets.values()}
            snapshot = json.dumps(emulator.state.snapshot())
            # The emulator sandbox keeps the emulated account on disk (.rpdeploy/emulator/account.json,
            # searched below with every other file): its template env holds the token as a plain value
            # with template-env delivery.
            for args in (("deploy", "--emulator", "--json"), ("status", "--emulator", "--json"),
                         ("smoke-test", "--emulator", "--json")):  # fmt: skip
                audit.run(*args)
        finally:
            watch.stop.set()
            thread.join(timeout=5)

    # Never HF_TOKEN: worker-vllm would put it on `vllm serve`'s argv and log it.
    assert "HF_TOKEN" not in template_env
    if delivery == "secret":
        assert template_env["HUGGING_FACE_HUB_TOKEN"] == "{{ RUNPOD_SECRET_rpdeploy_audit_token_hf_token }}"
        assert stored == {"rpdeploy_audit_token_hf_token": token}
        assert token not in snapshot  # no template, endpoint or secret listing holds the value
    else:
        # The way out: the value in the template env (RunPod shows it), loudly.
        assert template_env["HUGGING_FACE_HUB_TOKEN"] == token and stored == {}
        assert any("hf_token_delivery: template-env puts the Hugging Face token" in text for _, text in audit.outputs)
    assert workers and all(w["HUGGING_FACE_HUB_TOKEN"] == token for w in workers)  # substituted at start

    findings = [f"output of `{label}`: {n}" for label, text in audit.outputs for n in audit.leaks(text)]
    for path in project.rglob("*"):
        if path.is_file():
            findings += [
                f"file {path.relative_to(project)}: {n}" for n in audit.leaks(path.read_text(errors="replace"))
            ]
    findings += [f"argv: {hit}" for hit in watch.hits]
    assert watch.samples > 10 and findings == []
    assert (project / ".rpdeploy" / "state.json").is_file()  # the ledger was written, and searched
    sandbox = (project / ".rpdeploy" / "emulator" / "account.json").read_text()  # searched too
    assert "audit-token-template" in sandbox
    if delivery == "template-env":
        assert '"value": "****"' in sandbox  # the template's plain token, masked

    # worker-vllm v2.25.2's own argv builder, given what the worker's environment holds.
    argv = _worker_vllm_argv(workers[0])
    assert "--model" in argv and "--hf-token" not in argv and token not in " ".join(argv)
    assert "--hf-token" in _worker_vllm_argv({**workers[0], "HF_TOKEN": token})  # the builder is not blind


def _worker_vllm_argv(env: dict[str, str]) -> list[str]:
    """`vllm serve`'s argv as worker-vllm at the pinned tag builds it (src/args_builder.py, read from git)."""
    import importlib.util
    import types

    from rpdeploy import versions
    from tests.test_worker_vllm_env import _generator

    generator = _generator()
    tag = versions.WORKER_VLLM_IMAGE.rpartition(":")[2]
    if not (os.environ.get("RPDEPLOY_WORKER_VLLM_GIT") or (generator.cache_dir() / "worker-vllm.git").is_dir()):
        pytest.skip("no worker-vllm clone here: run scripts/contracts/worker_vllm_env.py --check once, or set "
                    "RPDEPLOY_WORKER_VLLM_GIT to a git dir of it")  # fmt: skip
    source = subprocess.run(
        ["git", "-C", str(generator.git_dir(tag)), "show", f"{tag}:src/args_builder.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    spec = importlib.util.spec_from_loader("worker_vllm_args_builder", loader=None)
    assert spec is not None
    module = types.ModuleType(spec.name)
    exec(compile(source, "args_builder.py", "exec"), module.__dict__)
    argv: list[str] = module.build_vllm_args(env)
    return argv
