"""Issue 14: one test (or a few) per finding of the adversarial pass, each a variant of the finding.

Every test here failed on the code before the fixes (checked against main when they were
written) and passes now. Findings, by number:

 1 --emulator touched the real backend; backend-env skipped a changed file as "unchanged"
 2 the emulator's GraphQL let an unauthenticated query reach ``myself`` through fragments
 3 a YAML alias bomb took seconds and gigabytes
 4 parser crashes and unbounded reads (deep nesting, recursive alias, long integers, secret files)
 5 ``image.worker_dir`` could point outside the project
 6 ledger shapes that crashed deploy/status
 7 diffs and confirmations showed env-file values in clear
 8 ``smoke-test --url`` sent the RunPod key anywhere
 9 a symlinked lock file; deleting .rpdeploy/ split the lock
10 secrets under ordinary names reached child processes; redaction missed encoded forms
11 the emulator's HTTP front: thread-killing bodies, no timeouts, expensive queries
12 unit names and endpoint names; non-integer ``id -u``; raw control characters in summaries

The hostile-input corpus (``tests/hostile``) covers the parsers and the HTTP front in bulk,
with time and memory bounds; these tests are the findings themselves, end to end.
"""

from __future__ import annotations

import base64
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from rpdeploy.emulator import Emulator
from tests.conftest import ROOT, CliRunnerFn
from tests.support.terminal import run_in_terminal

REFERENCE = (ROOT / "deploy.yaml").read_text()
KEY = "rpa_TEST_emulator_key_0123456789"  # the runpod_emulator fixture's key


def rpdeploy(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60, memory_gb: float = 1.5
) -> subprocess.CompletedProcess[str]:
    """``python -m rpdeploy ARGS`` in its own process, with its address space capped (a runaway fails there)."""

    def cap() -> None:
        limit = int(memory_gb * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "rpdeploy", *args],
        cwd=cwd,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=cap,
        check=False,
    )


def events(stdout: str) -> dict[str, str]:
    """Last status of each stage in a ``deploy --json`` event stream."""
    statuses: dict[str, str] = {}
    for line in stdout.splitlines():
        event = json.loads(line)
        if event.get("event") == "stage":
            statuses[event["stage"]] = event["status"]
    return statuses


def with_backend(project: Path, **backend: str) -> Path:
    lines = [f"  {name}: {json.dumps(value)}" for name, value in backend.items()]
    (project / "deploy.yaml").write_text(REFERENCE + "backend:\n" + "\n".join(lines) + "\n  health_timeout: 2\n")
    return project / "deploy.yaml"


# --- 1: the emulator is a sandbox; drift on the host is repaired ---------------------------------


def test_emulator_runs_never_connect_to_the_configured_backend(cli: CliRunnerFn, project: Path) -> None:
    # A backend nobody can reach: reading, writing or restarting it would fail with exit 9.
    (project / "deploy.yaml").write_text(REFERENCE + "backend:\n  host: deploy@127.0.0.1:1\n  service: app\n")
    deployed = cli("deploy", "--emulator", "--json")
    statuses = events(deployed.stdout)
    assert "backend-env" not in statuses or statuses["backend-env"] == "skipped"
    assert deployed.stderr.count("Emulator sandbox") == 1 and "127.0.0.1:1" in deployed.stderr
    cli("plan", "--emulator")
    destroyed = cli("destroy", "--emulator", "--restore-backend", "--yes")
    assert "Emulator sandbox" in destroyed.stderr


def test_emulator_runs_leave_a_local_backend_exactly_as_it_was(cli: CliRunnerFn, project: Path) -> None:
    app = project / "app"
    app.mkdir()
    env_file = app / ".env"
    production = "SERVER_PORT=8080\nRUNPOD_ENDPOINT_URL=https://api.runpod.ai/v2/prod123/openai/v1\n"
    env_file.write_text(production)
    marker = project / "restarted"
    with_backend(project, env_file=str(env_file), restart=f"touch {marker}")
    cli("deploy", "--emulator")
    cli("deploy", "--emulator", "--force")
    cli("destroy", "--emulator", "--restore-backend", "--yes")
    assert env_file.read_text() == production
    assert not marker.exists()
    assert sorted(p.name for p in app.iterdir()) == [".env"]  # no backups either: nothing was written


def test_the_real_backend_with_the_emulator_is_an_explicit_opt_in(cli: CliRunnerFn, project: Path) -> None:
    app = project / "app"
    app.mkdir()
    marker = project / "restarted"
    with_backend(project, env_file=str(app / ".env"), restart=f"touch {marker}")
    result = cli("deploy", "--emulator", "--real-backend")
    assert "--real-backend" in result.stderr and marker.exists()
    assert "RUNPOD_ENDPOINT_URL=http://127.0.0.1:" in (app / ".env").read_text()
    cli("deploy", "--real-backend", expected_code=2)  # without --emulator it means nothing


def test_a_changed_env_file_on_the_host_is_repaired_not_skipped(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator
) -> None:
    app = project / "app"
    app.mkdir()
    env_file = app / ".env"
    marker = project / "restarts"
    with_backend(project, env_file=str(env_file), restart=f"echo x >> {marker}")
    cli("deploy")
    wanted = env_file.read_text()
    assert f"RUNPOD_ENDPOINT_URL={runpod_emulator.endpoint_url}/" in wanted

    # Someone (once: an emulator run) points production at a dead endpoint.
    env_file.write_text(wanted.replace(runpod_emulator.endpoint_url, "http://127.0.0.1:9/v2"))
    statuses = events(cli("deploy", "--json").stdout)
    assert statuses["backend-env"] == "done" and statuses["backend-restart"] == "done"
    assert env_file.read_text() == wanted
    assert marker.read_text().count("x") == 2

    # The file deleted by hand: same.
    env_file.unlink()
    assert events(cli("deploy", "--json").stdout)["backend-env"] == "done"
    assert env_file.read_text() == wanted

    # And with nothing changed anywhere, nothing runs.
    statuses = events(cli("deploy", "--json").stdout)
    assert statuses["backend-env"] == "skipped" and statuses["backend-restart"] == "skipped"
    assert marker.read_text().count("x") == 3


# --- 2: GraphQL authorization with fragments ---------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "query { gpuTypes { id } ... on Query { myself { podTemplates { env { key value } } } } }",
        "query { dataCenters { id } ...T } fragment T on Query { myself { podTemplates { env { key value } } } }",
        "{ ...A } fragment A on Query { gpuTypes { id } ...B } "
        "fragment B on Query { ... on Query { myself { podTemplates { env { key value } } } } }",
        "{ __typename ... @include(if: true) { myself { podTemplates { env { key value } } } } }",
    ],
    ids=["inline-fragment", "named-fragment", "nested-fragments", "conditional-inline"],
)
def test_no_key_no_account_data_however_the_query_is_shaped(runpod_emulator: Emulator, query: str) -> None:
    token = "hf_TEMPLATETOKEN_9c1e2f0a77"
    with httpx.Client(base_url=runpod_emulator.api_url) as http:
        saved = http.post(
            "/graphql",
            headers={"Authorization": f"Bearer {runpod_emulator.api_key}"},
            json={
                "query": "mutation($i: SaveTemplateInput) { saveTemplate(input: $i) { id } }",
                "variables": {"i": {"name": "t", "imageName": "runpod/worker-v1-vllm:v2.25.2", "dockerArgs": "",
                                    "containerDiskInGb": 20, "volumeInGb": 0, "isServerless": True,
                                    "env": [{"key": "HF_TOKEN", "value": token}]}},
            },
        )  # fmt: skip
        assert saved.status_code == 200 and "errors" not in saved.json(), saved.text
        answer = http.post("/graphql", json={"query": query})
        public = http.post("/graphql", json={"query": "{ gpuTypes { id } }"})
    # Refused, or run without an account (RunPod's way: myself is null); never the account's data.
    assert token not in answer.text and runpod_emulator.state.account.id not in answer.text
    assert answer.status_code == 401 or (answer.status_code == 200 and answer.json()["data"].get("myself") is None)
    assert public.status_code == 200  # the catalogue stays public
    mutation = http_post_without_key(runpod_emulator, 'mutation { deleteTemplate(templateName: "t") }')
    assert mutation.status_code == 401


def http_post_without_key(emulator: Emulator, query: str) -> httpx.Response:
    with httpx.Client(base_url=emulator.api_url) as http:
        return http.post("/graphql", json={"query": query})


# --- 3 and 4: deploy.yaml and secret files -------------------------------------------------------


def _bomb(levels: int, fan: int) -> str:
    lines = [REFERENCE.rstrip("\n"), 'x0: &x0 ["ha"]']
    lines += [f"x{i}: &x{i} [{', '.join(f'*x{i - 1}' for _ in range(fan))}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text",
    [
        _bomb(levels=8, fan=10),
        REFERENCE
        + "k0: &k0 {a: 1}\n"
        + "".join(f"k{i}: &k{i} {{<<: *k{i - 1}, b: [*k{i - 1}, *k{i - 1}, *k{i - 1}]}}\n" for i in range(1, 20)),
    ],
    ids=["nested-sequences", "merge-keys"],
)  # fmt: skip
def test_an_alias_bomb_is_a_quick_config_error(project: Path, text: str) -> None:
    (project / "deploy.yaml").write_text(text)
    started = time.monotonic()
    result = rpdeploy("validate", cwd=project, timeout=30)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "aliases are expanded" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 15  # a process start and an import, mostly


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (REFERENCE + "x: " + "[" * 3000 + "]" * 3000 + "\n", "nested more than"),
        (REFERENCE + "x: &a {y: [1, *a]}\n", "recursive alias"),
        (REFERENCE.replace("workers_max: 2", "workers_max: " + "7" * 4400), "number of 4400 characters"),
        (REFERENCE + "#" * (1024 * 1024 + 10) + "\n", "larger than"),
    ],
    ids=["deep-nesting", "recursive-alias", "4400-digit-integer", "one-mib-of-comments"],
)
def test_hostile_deploy_yaml_is_exit_3_not_a_crash(project: Path, text: str, expected: str) -> None:
    (project / "deploy.yaml").write_text(text)
    result = rpdeploy("validate", cwd=project)
    assert result.returncode == 3, result.stderr[-2000:]
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_a_huge_field_value_is_not_echoed(project: Path) -> None:
    (project / "deploy.yaml").write_text(REFERENCE.replace("gpu: L4", "gpu: " + "Q" * 900_000))
    result = rpdeploy("validate", cwd=project)
    assert result.returncode == 3 and "is not a RunPod GPU type" in result.stderr
    assert len(result.stderr) < 2000


@pytest.mark.parametrize(
    ("target", "content", "expected"),
    [
        ("/dev/zero", None, "not a regular file"),
        ("/dev/urandom", None, "not a regular file"),
        ("key.bin", b"rpa_\xff\xfe", "not UTF-8"),
        ("big.txt", b"k" * (1024 * 1024), "larger than"),
    ],
    ids=["dev-zero", "dev-urandom", "not-utf8", "one-mib"],
)
def test_secret_files_are_read_within_limits(
    project: Path, runpod_emulator: Emulator, target: str, content: bytes | None, expected: str
) -> None:
    if content is not None:
        (project / target).write_bytes(content)
    (project / "deploy.yaml").write_text(REFERENCE + f"runpod:\n  api_key: {{file: {target}}}\n")
    result = rpdeploy("endpoint", "list", cwd=project, env=runpod_emulator.env(), memory_gb=1.0)
    assert result.returncode == 8, result.stderr[-2000:]  # the API key is missing or invalid
    assert expected in result.stderr and "Traceback" not in result.stderr


# --- 5: generated files stay in the project ----------------------------------------------------------

METHOD2 = """\
method: custom-handler
model: {{name: Qwen/Qwen2.5-0.5B-Instruct}}
image: {{registry: 127.0.0.1:5000, repository: acme/worker, worker_dir: {worker_dir}}}
endpoint: {{name: contained}}
"""


@pytest.mark.parametrize(
    "worker_dir", ["../outside", "worker/../../outside", "{ABSOLUTE}/outside", "~/outside", ".rpdeploy"]
)
def test_worker_dir_must_stay_inside_the_project(cli: CliRunnerFn, project: Path, worker_dir: str) -> None:
    worker_dir = worker_dir.replace("{ABSOLUTE}", str(project.parent))
    (project / "deploy.yaml").write_text(METHOD2.format(worker_dir=json.dumps(worker_dir)))
    result = cli("render", expected_code=3)
    assert "inside the project" in result.stderr or "rpdeploy's or git's own folder" in result.stderr
    assert not (project.parent / "outside").exists() and not (Path.home() / "outside").exists()


def test_a_worker_folder_symlinked_out_of_the_project_is_not_written(cli: CliRunnerFn, project: Path) -> None:
    outside = project.parent / "elsewhere"
    outside.mkdir()
    (project / "worker").symlink_to(outside)
    (project / "deploy.yaml").write_text(METHOD2.format(worker_dir="worker"))
    result = cli("render", expected_code=3)
    assert "outside the project folder" in result.stderr
    assert list(outside.iterdir()) == []


# --- 6: the ledger ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ledger",
    [
        [],
        {"version": 1, "stages": {"endpoint": "done"}},
        {"version": 1, "stages": {"endpoint": {"status": "done", "fingerprint": "f", "outputs": "ep1"}}},
        {"version": 1, "history": 4},
        {"version": 1, "stages": {"endpoint": {"status": "done", "outputs": {"endpoint_id": 12345}}}},
        {"version": 1, "history": [{"image": ["a"]}, "b"]},
        {"version": 1, "extra": {"rolled_back": [1]}, "stages": []},
    ],
    ids=["a-list", "stage-a-string", "outputs-a-string", "history-a-number", "endpoint-id-a-number",
         "history-of-junk", "stages-a-list"],
)  # fmt: skip
def test_a_damaged_ledger_is_exit_3_with_the_way_out(cli: CliRunnerFn, project: Path, ledger: Any) -> None:
    (project / "deploy.yaml").write_text(REFERENCE)
    (project / ".rpdeploy").mkdir()
    (project / ".rpdeploy" / "state.json").write_text(json.dumps(ledger))
    for command in (("status",), ("deploy",), ("plan",), ("rollback", "--yes"), ("smoke-test",)):
        result = cli(*command, expected_code=3)
        assert "state.json" in result.stderr and "move it away" in result.stderr, command


# --- 7: masking in diffs and confirmations ------------------------------------------------------------

ENV_FILE = """\
SPRING_DATASOURCE_URL=jdbc:postgresql://app:Pg_S3cret_77@db.internal:5432/app
APP_SIGNING=MIIBVgIBADANBgkqhkiG9w0
SERVER_PORT=8080
RUNPOD_ENDPOINT_ID=old123
LOG_LEVEL=INFO
# DB_PASSWORD=old_pass_44
OPAQUE_SETTING=hunter2hunter2
FEATURE_FLAGS_ENABLED=true
"""
HIDDEN = ("Pg_S3cret_77", "MIIBVgIBADANBgkqhkiG9w0", "hunter2hunter2", "old_pass_44")
SHOWN = ("SERVER_PORT=8080", "LOG_LEVEL=INFO", "FEATURE_FLAGS_ENABLED=true", "RUNPOD_ENDPOINT_ID=ep42")


def test_diffs_mask_every_value_but_ours_and_plain_ones(
    cli: CliRunnerFn, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    env_file = project / ".env"
    env_file.write_text(ENV_FILE)
    with_backend(project, env_file=str(env_file), restart="true")
    for args in (("--dry-run",), ("--dry-run", "--json")):
        result = cli("backend", "configure", "--endpoint-id", "ep42", *args)
        shown = result.stdout + result.stderr
        for secret in (*HIDDEN, KEY):
            assert secret not in shown, (args, secret)
        diff = json.loads(result.stdout)["configure"]["diff"] if "--json" in args else result.stdout
        for line in SHOWN:
            assert line in diff, (args, line)
        assert "SPRING_DATASOURCE_URL=****" in diff and "# DB_PASSWORD=****" in diff

    env = {k: v for k, v in os.environ.items() if k != "CI"}
    code, output = run_in_terminal(
        ["backend", "configure", "--endpoint-id", "ep42"], project, answers=[("[y/N]", "n")], env=env, timeout=60
    )
    assert code == 14 and "OPAQUE_SETTING=****" in output, output  # declined: nothing changed
    for secret in (*HIDDEN, KEY):
        assert secret not in output
    assert env_file.read_text() == ENV_FILE


# --- 8: where the RunPod key goes ---------------------------------------------------------------------


class CaptureServer:
    """Records every request's Authorization header; answers 404 (not a RunPod endpoint, not a local worker)."""

    def __init__(self) -> None:
        self.headers: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                outer.headers.append(self.headers.get("Authorization"))
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _any

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    server = CaptureServer()
    yield server
    server.close()


def test_smoke_test_url_gets_the_key_only_when_it_is_runpod_or_configured(
    cli: CliRunnerFn, project: Path, capture: CaptureServer, runpod_emulator: Emulator
) -> None:
    # Outside a project, and inside one (the key from deploy.yaml's reference): no key to a stranger.
    cli("smoke-test", "--url", capture.url, "--method", "1", "--timeout", "2", expected_code=7)
    (project / "deploy.yaml").write_text(REFERENCE)
    result = cli("smoke-test", "--url", f"{capture.url}/v2/abc", "--timeout", "2", expected_code=7)
    assert "Not sending the RunPod API key" in result.stderr and "--send-key" in result.stderr
    assert capture.headers and all(header is None for header in capture.headers)

    cli("smoke-test", "--url", f"{capture.url}/v2/abc", "--timeout", "2", "--send-key", expected_code=7)
    assert capture.headers[-1] == f"Bearer {runpod_emulator.api_key}"

    # Under the configured endpoint base (the emulator here): the key goes, as it must.
    runpod_emulator.requests.clear()
    cli("smoke-test", "--url", f"{runpod_emulator.endpoint_url}/nosuchendpoint", "--timeout", "2", expected_code=7)
    # (The local-worker probe, GET /openapi.json, never carries a key.)
    keyed = [r for r in runpod_emulator.requests if not r.path.endswith("/openapi.json")]
    assert keyed and all(r.status != 401 for r in keyed)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.runpod.ai/v2/abc123", True),
        ("https://abc123.api.runpod.ai/v1/chat", True),
        ("https://api.runpod.ai:443/v2/abc", True),
        ("http://api.runpod.ai/v2/abc123", False),
        ("https://api.runpod.ai:8443/v2/abc", False),
        ("https://api.runpod.ai.evil.example/v2/abc", False),
        ("https://api.runpod.ai@evil.example/v2/abc", False),
        ("https://evil.example/api.runpod.ai/v2", False),
        ("https://notrunpod.ai/v2", False),
        ("http://127.0.0.1:8765/v2/abc", True),  # the configured base below
        ("http://127.0.0.1:8765/v2abc", False),
        ("http://127.0.0.1:8766/v2/abc", False),
    ],
)
def test_which_urls_may_have_the_key(url: str, allowed: bool) -> None:
    from rpdeploy.deploy.smoke import key_allowed

    assert key_allowed(url, "http://127.0.0.1:8765/v2")[0] is allowed


# --- 9: the lock ------------------------------------------------------------------------------------


def test_a_symlinked_lock_file_never_writes_through(cli: CliRunnerFn, project: Path, runpod_emulator: Emulator) -> None:
    (project / "deploy.yaml").write_text(REFERENCE)
    state = project / ".rpdeploy"
    state.mkdir()
    victim = project.parent / "victim.txt"
    victim.write_text("precious\n")
    (state / "deploy.lock").symlink_to(victim)
    cli("deploy")
    assert victim.read_text() == "precious\n"
    dangling = project.parent / "created-through-a-link"
    (state / "deploy.lock").unlink(missing_ok=True)
    (state / "deploy.lock").symlink_to(dangling)
    cli("destroy", "--yes")
    assert not dangling.exists()


def test_deleting_the_state_folder_does_not_split_the_lock(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator
) -> None:
    (project / "deploy.yaml").write_text(REFERENCE)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pathlib import Path\nfrom rpdeploy.deploy.lock import DeployLock\n"
         "with DeployLock(Path('.rpdeploy'), command='deploy'):\n    print('held', flush=True)\n    time.sleep(60)\n"],
        cwd=project, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        shutil.rmtree(project / ".rpdeploy")
        result = cli("deploy", expected_code=12)
        assert "another rpdeploy process" in result.stderr
        cli("deploy", "--emulator", expected_code=12)  # the emulator's deploys write the same worker files
    finally:
        holder.kill()
        holder.wait()
    cli("deploy")


# --- 10: child environments and encoded secrets ------------------------------------------------------------


def test_child_processes_get_an_allow_listed_environment(
    cli: CliRunnerFn, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = project / "child-env"
    with_backend(project, env_file=str(project / ".env"), restart=f"env > {seen}")
    config = project / "deploy.yaml"
    config.write_text(config.read_text().replace("  gpu: L4\n", "  gpu: L4\n  env:\n    OPAQUE: {env: OPAQUE_VAR}\n"))
    monkeypatch.setenv("OPAQUE_VAR", "opaque-value-5c2d91")
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw-7f3a@db/app")
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    monkeypatch.setenv("LC_MESSAGES", "C")
    cli("backend", "restart")
    child = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert "opaque-value-5c2d91" not in seen.read_text() and "pw-7f3a" not in seen.read_text()
    assert KEY not in seen.read_text()
    assert child.get("PATH") == os.environ["PATH"] and child.get("LC_MESSAGES") == "C"


def test_redaction_masks_the_encoded_forms_of_a_secret() -> None:
    from rpdeploy import secrets

    value = "app\"secret\\é/+&= x'77c1e94b20"
    secrets.register(value)
    raw = value.encode()
    encoded = {
        "json": json.dumps({"v": value}),
        "json-unicode": json.dumps({"v": value}, ensure_ascii=False),
        "repr": repr({"v": value}),
        "url": "https://x/?k=" + urllib.parse.quote(value, safe=""),
        "url-plus": "k=" + urllib.parse.quote_plus(value),
        "basic-auth": "Basic " + base64.b64encode(b"user:" + raw).decode(),
        "base64-offset-1": base64.b64encode(b"u:" + raw).decode(),
        "base64-offset-2": base64.urlsafe_b64encode(b"us:" + raw).decode(),
    }
    for name, text in encoded.items():
        masked = secrets.redact(text)
        assert "****" in masked, name
        # What is left of the secret in its encoding is a few edge characters, never a run of it.
        assert not any(len(part) >= 8 and part in text and part in masked for part in _runs(text, value)), name


def _runs(text: str, value: str) -> list[str]:
    """Substrings of ``text`` that encode part of ``value`` (for the check above: 8-char windows)."""
    forms = [json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)]
    forms += [base64.b64encode(value.encode()[i:]).decode()[:-4] for i in range(3)]
    return [form[i : i + 8] for form in forms for i in range(0, max(0, len(form) - 8), 4)]


def test_a_worker_error_echoing_an_encoded_secret_is_masked(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = 'db"pass\\word+/=é 9f2c'
    monkeypatch.setenv("APP_SECRET_VALUE", secret)
    (project / "deploy.yaml").write_text(
        REFERENCE.replace("  gpu: L4\n", "  gpu: L4\n  env:\n    APP_SECRET: {env: APP_SECRET_VALUE}\n")
    )
    cli("deploy")
    forms = [json.dumps(secret)[1:-1], urllib.parse.quote_plus(secret), base64.b64encode(secret.encode()).decode()]
    runpod_emulator.faults.job_error_output(message="config echo: " + " | ".join(forms), count=2)
    result = cli("smoke-test", "--json", expected_code=10)
    for form in (secret, *forms):
        assert form not in result.stdout + result.stderr


# --- 11: the emulator's HTTP front --------------------------------------------------------------------------


def test_malformed_requests_get_a_4xx_and_the_emulator_keeps_serving(runpod_emulator: Emulator) -> None:
    headers = {"Authorization": f"Bearer {runpod_emulator.api_key}"}
    switches = runpod_emulator.faults.to_list()
    deep = b"[" * 50_000 + b"]" * 50_000
    with httpx.Client(base_url=runpod_emulator.api_url, headers=headers, timeout=10) as http:
        endpoint = "ep-does-not-matter"
        volumes, faults = "/_emulator/network-volumes", "/_emulator/faults"
        answers = {
            "graphql deep body": http.post("/graphql", content=deep).status_code,
            "run deep input": http.post(f"/v2/{endpoint}/run", content=b'{"input": ' + deep + b"}").status_code,
            "admin deep body": http.post("/_emulator/faults", content=deep).status_code,
            "volume size a string": http.post(volumes, json={"name": "v", "size": "ten"}).status_code,
            "volume size huge": http.post(volumes, content=b'{"name": "v", "size": 1e999}').status_code,
            "fault seconds a list": http.post(faults, json={"fault": "graphql_delay", "seconds": [1]}).status_code,
            "faults of junk": http.post("/_emulator/faults", json=[1, None, {"fault": 7}]).status_code,
            "selection nesting": http.post("/graphql", json={"query": "{" * 8000 + "}" * 8000}).status_code,
        }  # fmt: skip
        assert all(400 <= status < 500 for status in answers.values()), answers
        assert http.get("/_emulator/state").status_code == 200
    assert runpod_emulator.faults.to_list() == switches  # no bad payload turned a switch on


def test_a_wide_alias_query_is_refused_before_it_costs_anything(runpod_emulator: Emulator) -> None:
    headers = {"Authorization": f"Bearer {runpod_emulator.api_key}"}
    query = "{ " + " ".join(f"a{i}: gpuTypes {{ id }}" for i in range(600)) + " }"
    with httpx.Client(base_url=runpod_emulator.api_url, headers=headers, timeout=30) as http:
        started = time.monotonic()
        answer = http.post("/graphql", json={"query": query})
        seconds = time.monotonic() - started
        huge = http.post("/graphql", json={"query": query * 20})
    assert answer.status_code == 400 and "aliases" in answer.text and seconds < 1.0
    assert huge.status_code == 413 and len(huge.content) < 1000


def test_stalled_connections_are_dropped_and_capped() -> None:
    from rpdeploy.emulator.guard import Limits

    with Emulator(KEY, limits=Limits(socket_timeout=1.0, max_connections=12)) as emu:
        baseline = threading.active_count()
        stalled = []
        for _ in range(10):
            conn = socket.create_connection(("127.0.0.1", emu.port))
            conn.sendall(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
            stalled.append(conn)
        # Two more fit; the one after that is told to come back later, at once.
        extra = [socket.create_connection(("127.0.0.1", emu.port)) for _ in range(2)]
        time.sleep(0.2)
        refused = socket.create_connection(("127.0.0.1", emu.port), timeout=5)
        assert refused.recv(200).startswith(b"HTTP/1.1 503")
        refused.close()
        for conn in stalled:  # the server gives up on each after its socket timeout
            conn.settimeout(5)
            assert conn.recv(4096).split(b"\r\n", 1)[0].startswith(b"HTTP/1.1 408")
            conn.close()
        for conn in extra:
            conn.close()
        deadline = time.monotonic() + 5
        while threading.active_count() > baseline and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() <= baseline
        with httpx.Client(base_url=emu.api_url, timeout=5) as http:
            assert http.post("/graphql", json={"query": "{ gpuTypes { id } }"}).status_code == 200


# --- 12: names, unit names, id -u, escaping -------------------------------------------------------------------


@pytest.mark.parametrize(
    "service",
    ["..", ".service", "-Hroot@evil", "app@", "app@.service", "a/b", "x" * 250, "-", ".hidden", "a..b", "app\\x2d"],
)
def test_backend_service_must_be_a_unit_systemd_can_restart(cli: CliRunnerFn, project: Path, service: str) -> None:
    (project / "deploy.yaml").write_text(REFERENCE + f"backend:\n  service: {json.dumps(service)}\n")
    result = cli("validate", expected_code=3)
    assert "backend.service" in result.stderr


@pytest.mark.parametrize("service", ["spring-boot", "app@1", "my.app:v2", "api_backend.service"])
def test_ordinary_unit_names_still_work(cli: CliRunnerFn, project: Path, service: str) -> None:
    from rpdeploy.config import load_config

    (project / "deploy.yaml").write_text(REFERENCE + f"backend:\n  service: {json.dumps(service)}\n")
    cli("validate")
    backend = load_config(project / "deploy.yaml").backend
    assert backend is not None
    assert backend.restart_command == f"sudo systemctl restart -- {backend.service}"


def test_a_host_whose_id_is_not_a_number_is_a_backend_error(
    cli: CliRunnerFn, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shims = project / "shims"
    shims.mkdir()
    (shims / "id").write_text("#!/bin/sh\necho root\n")
    (shims / "id").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    with_backend(project, env_file=str(project / ".env"), restart="true")
    result = cli("backend", "check", expected_code=9)
    assert "not a user id" in result.stderr


@pytest.mark.parametrize(
    "name",
    ["ok\x1b[2Jname", "bell\x07name", "two\nlines", "right\u202eleft", "zero\u200bwidth", "tab\tname", " padded"],
)
def test_endpoint_names_are_printable_text(cli: CliRunnerFn, project: Path, name: str) -> None:
    (project / "deploy.yaml").write_text(REFERENCE.replace("name: qwen25-7b-instruct", f"name: {json.dumps(name)}"))
    result = cli("validate", expected_code=3)
    assert "endpoint.name" in result.stderr
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr


def test_untrusted_text_reaches_the_summary_and_the_terminal_escaped(
    cli: CliRunnerFn, project: Path, runpod_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = project / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    (project / "deploy.yaml").write_text(REFERENCE.replace("name: qwen25-7b-instruct", "name: qwen-`code`-name"))
    hostile = "bad\x1b[2J\x07 \u202eevil\n## injected ![x](https://evil.example/t.png) <img src=x onerror=alert(1)>"
    runpod_emulator.faults.graphql_errors(count=3, operation="SaveTemplate", message=hostile)
    result = cli("deploy", expected_code=7)
    text = summary.read_text()
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in text and raw not in result.stderr
    assert "\\x1b" in text and "\\u202e" in text
    # The error sits in a fenced code block (rendered verbatim), the name in a code span that holds its backticks.
    fence = text.index("```text")
    assert text.index("## injected") > fence and text.index("<img") > fence
    assert "``qwen-`code`-name``" in text
