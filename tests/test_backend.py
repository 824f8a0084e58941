"""Backend wiring on this machine (backend.host unset): env file merge, quoting, backups, restart, rollback, CLI.

Everything runs for real: the scripts go through ``sh`` exactly as they would over SSH, the
"service" is a restart command plus a health server on loopback that reads the env file the
way a service would. The SSH and systemd side is in test_backend_ssh.py.
"""

from __future__ import annotations

import json
import os
import secrets as pysecrets
import shlex
import stat
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from rpdeploy import backend
from rpdeploy.backend import BackendRolledBackError, BackendValues, envfile, session
from rpdeploy.backend import host as remote
from rpdeploy.config import Config, parse_config
from rpdeploy.errors import BackendError, ConfigError
from rpdeploy.output import RecordingReporter
from rpdeploy.secrets import Secret
from tests.support.terminal import run_in_terminal

ENDPOINT_BASE = "https://api.runpod.ai/v2"


def new_key() -> str:
    return "rpa_" + pysecrets.token_hex(20).upper()


# --- a stand-in service on this machine ----------------------------------------------------------


class HealthServer:
    """Answers /health with 200, or 503 while the env file points at endpoint id ``sick``."""

    def __init__(self, env_file: Path) -> None:
        self.env_file = env_file
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    values = backend.env_values(outer.env_file.read_text())
                except FileNotFoundError:
                    values = {}
                code = 503 if values.get("RUNPOD_ENDPOINT_ID") == "sick" else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = new_key()
    monkeypatch.setenv("RUNPOD_API_KEY", value)
    return value


@pytest.fixture
def app_dir(project: Path) -> Path:
    folder = project / "app"
    folder.mkdir()
    return folder


@pytest.fixture
def health(app_dir: Path) -> Iterator[HealthServer]:
    server = HealthServer(app_dir / ".env")
    yield server
    server.close()


def make_config(
    project: Path, env_file: Path, *, restart: str = "true", health_url: str | None = None, **extra: str
) -> Config:
    lines = [
        "method: 1",
        "model: {name: Qwen/Qwen2.5-7B-Instruct}",
        "endpoint: {name: qwen-test}",
        "backend:",
        f"  env_file: {env_file}",
        f"  restart: {json.dumps(restart)}",
        "  health_timeout: 2",
    ]
    if health_url:
        lines.append(f"  health_url: {health_url}")
    lines += [f"  {name}: {value}" for name, value in extra.items()]
    text = "\n".join(lines) + "\n"
    (project / "deploy.yaml").write_text(text)
    return parse_config(text, path=project / "deploy.yaml")


def values_for(config: Config, endpoint_id: str, key: str) -> BackendValues:
    return BackendValues.for_endpoint(config, endpoint_id, Secret(key, "test"))


def backups(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".rpdeploy-" in p.name)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- values, URLs, properties -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        # One backend contract: every method answers RunPod's OpenAI route.
        (1, f"{ENDPOINT_BASE}/abc123/openai/v1"),
        (2, f"{ENDPOINT_BASE}/abc123/openai/v1"),
        (3, f"{ENDPOINT_BASE}/abc123/openai/v1"),
    ],
)
def test_endpoint_url_per_method(project: Path, method: int, url: str) -> None:
    image = "" if method == 1 else "image: {repository: acme/qwen}\n"
    config = parse_config(
        f"method: {method}\nmodel: {{name: Qwen/Qwen2.5-7B-Instruct}}\nendpoint: {{name: qwen-test}}\n{image}"
    )
    assert backend.endpoint_url(config, "abc123") == url
    assert backend.properties(config, "abc123") == f"runpod.endpoint.url={url}\nrunpod.api.key=${{RUNPOD_API_KEY}}\n"


def test_properties_use_the_configured_env_name_and_endpoint_base(project: Path) -> None:
    config = parse_config(
        "method: 2\nmodel: {name: Qwen/Qwen2.5-7B-Instruct}\nendpoint: {name: qwen-test}\n"
        "image: {repository: acme/qwen}\nrunpod: {endpoint_url: 'http://127.0.0.1:8000/v2'}\n"
        "backend: {env_names: {api_key: LLM_KEY}}\n"
    )
    assert (
        backend.properties(config, "e1")
        == "runpod.endpoint.url=http://127.0.0.1:8000/v2/e1/openai/v1\nrunpod.api.key=${LLM_KEY}\n"
    )


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "../x", "x" * 65, "-rf"])
def test_endpoint_ids_are_checked(bad: str) -> None:
    with pytest.raises(ValueError):
        backend.check_endpoint_id(bad)


# --- quoting ------------------------------------------------------------------------------------

TRICKY = [
    "https://api.runpod.ai/v2/abc123/openai/v1",
    "rpa_ABCDEF0123456789",
    "a=b,c+d@e%f",
    "with space",
    "hash # not a comment",
    "dollar $HOME and $(id) and `id`",
    'double "quotes"',
    "semi;colon & pipe | star *",
    "  leading and trailing  ",
    "ünïcödé",
]


def test_values_are_written_bare_or_single_quoted() -> None:
    assert backend.render_value("K", "https://api.runpod.ai/v2/x/openai/v1") == "https://api.runpod.ai/v2/x/openai/v1"
    assert backend.render_value("K", "a b") == "'a b'"
    for bad in ["it's", "back\\slash", "new\nline", "nul\0", "tab\tx", "cr\rx", "${HOME}"]:
        with pytest.raises(ConfigError):
            backend.render_value("K", bad)


@pytest.mark.parametrize("value", TRICKY)
def test_sh_and_our_parser_read_back_what_we_wrote(tmp_path: Path, value: str) -> None:
    merged = backend.merge_env("", {"V": value}, secret_keys=frozenset())
    path = tmp_path / "f.env"
    path.write_text(merged.text)
    assert backend.env_values(merged.text)["V"] == value
    shell = subprocess.run(
        ["sh", "-c", 'set -a; . "$1"; printf %s "$V"', "sh", str(path)], capture_output=True, check=True
    )
    assert shell.stdout.decode() == value


def test_python_dotenv_reads_back_what_we_wrote() -> None:
    dotenv = pytest.importorskip("dotenv")
    import io

    for value in TRICKY:
        merged = backend.merge_env("", {"V": value}, secret_keys=frozenset())
        assert dotenv.dotenv_values(stream=io.StringIO(merged.text))["V"] == value, value


# --- merging ------------------------------------------------------------------------------------


def test_merge_keeps_everything_else_and_updates_the_last_duplicate() -> None:
    text = (
        "# settings\r\n"
        "SERVER_PORT=8080\r\n"
        "\r\n"
        "RUNPOD_ENDPOINT_ID=old1\r\n"
        'MULTI="line one\r\n'
        'RUNPOD_ENDPOINT_ID=inside-a-value"\r\n'
        "export RUNPOD_ENDPOINT_ID='old2'\r\n"
        "TAIL=1"
    )
    merged = backend.merge_env(
        text,
        {"RUNPOD_ENDPOINT_ID": "new", "RUNPOD_ENDPOINT_URL": "https://x/v2/new", "RUNPOD_API_KEY": "k3y-secret"},
        secret_keys=frozenset({"RUNPOD_API_KEY"}),
    )
    assert merged.text == (
        "# settings\r\n"
        "SERVER_PORT=8080\r\n"
        "\r\n"
        "RUNPOD_ENDPOINT_ID=old1\r\n"
        'MULTI="line one\r\n'
        'RUNPOD_ENDPOINT_ID=inside-a-value"\r\n'
        "export RUNPOD_ENDPOINT_ID=new\r\n"
        "TAIL=1\r\n"
        "# RunPod endpoint for this service, written by rpdeploy\r\n"
        "RUNPOD_ENDPOINT_URL=https://x/v2/new\r\n"
        "RUNPOD_API_KEY=k3y-secret\r\n"
    )
    assert [(c.name, c.action, c.old, c.new) for c in merged.changes] == [
        ("RUNPOD_ENDPOINT_ID", "changed", "old2", "new"),
        ("RUNPOD_ENDPOINT_URL", "added", None, "https://x/v2/new"),
        ("RUNPOD_API_KEY", "added", None, "****"),
    ]
    assert len(merged.notes) == 1 and "lines 4, 7" in merged.notes[0]
    assert backend.env_values(merged.text)["MULTI"] == "line one\nRUNPOD_ENDPOINT_ID=inside-a-value"


def test_merge_with_the_same_values_changes_nothing() -> None:
    text = "A=1\nRUNPOD_ENDPOINT_ID='same'\n"
    merged = backend.merge_env(text, {"RUNPOD_ENDPOINT_ID": "same"}, secret_keys=frozenset())
    assert merged.text == text and not merged.changed


def test_diff_masks_secrets_but_shows_that_they_changed() -> None:
    old = "DB_PASSWORD=hunter22\nRUNPOD_API_KEY=old-key-1234\nRUNPOD_ENDPOINT_ID=a\n"
    merged = backend.merge_env(
        old, {"RUNPOD_API_KEY": "new-key-5678", "RUNPOD_ENDPOINT_ID": "b"}, secret_keys=frozenset({"RUNPOD_API_KEY"})
    )
    diff = envfile._diff(old, merged.text, "/x/.env", secret_keys=frozenset({"RUNPOD_API_KEY"}))
    lines = diff.splitlines()
    assert {"-RUNPOD_API_KEY=****", "+RUNPOD_API_KEY=****", " DB_PASSWORD=****"} <= set(lines)
    assert {"-RUNPOD_ENDPOINT_ID=a", "+RUNPOD_ENDPOINT_ID=b"} <= set(lines)
    for secret in ("hunter22", "old-key-1234", "new-key-5678", "\0"):
        assert secret not in diff


def test_cksum_matches_the_posix_tool() -> None:
    for data in (b"", b"hello\n", os.urandom(3000)):
        done = subprocess.run(["cksum"], input=data, capture_output=True, check=True)
        assert backend.cksum(data) == done.stdout.decode().strip()


# --- configure on this machine ------------------------------------------------------------------


def test_configure_merges_atomically_with_a_backup(project: Path, app_dir: Path, key: str) -> None:
    env_file = app_dir / ".env"
    env_file.write_text("# app\nSERVER_PORT=8080\nRUNPOD_API_KEY=previous-key-0000\n")
    env_file.chmod(0o644)
    config = make_config(project, env_file)
    reporter = RecordingReporter()

    planned = backend.configure(config, values_for(config, "ep1", key), reporter=reporter, dry_run=True)
    assert planned.changed and planned.dry_run and planned.backup is None
    assert env_file.read_text() == "# app\nSERVER_PORT=8080\nRUNPOD_API_KEY=previous-key-0000\n"
    assert backups(app_dir) == []
    assert {"-RUNPOD_API_KEY=****", "+RUNPOD_API_KEY=****"} <= set(planned.diff.splitlines())

    result = backend.configure(config, values_for(config, "ep1", key), reporter=reporter)
    assert result.changed and result.backup is not None
    assert env_file.read_text() == (
        "# app\nSERVER_PORT=8080\nRUNPOD_API_KEY=" + key + "\n"
        "# RunPod endpoint for this service, written by rpdeploy\n"
        f"RUNPOD_ENDPOINT_URL={ENDPOINT_BASE}/ep1/openai/v1\nRUNPOD_ENDPOINT_ID=ep1\n"
    )
    assert mode(env_file) == 0o600
    [backup] = backups(app_dir)
    assert str(backup) == result.backup and backup.name.endswith(".bak")
    assert backup.read_text() == "# app\nSERVER_PORT=8080\nRUNPOD_API_KEY=previous-key-0000\n"
    assert mode(backup) == 0o600
    assert [p.name for p in app_dir.iterdir() if p.name.startswith(".env.") and "tmp" in p.name] == []

    again = backend.configure(config, values_for(config, "ep1", key), reporter=reporter)
    assert not again.changed and again.backup is None
    assert {c.action for c in again.keys} == {"unchanged"}
    assert len(backups(app_dir)) == 1

    for text in (repr(planned), repr(result), repr(again), reporter.text(), json.dumps(planned.diff)):
        assert key not in text and "previous-key-0000" not in text


def test_a_missing_env_file_is_created_and_its_absence_remembered(project: Path, app_dir: Path, key: str) -> None:
    env_file = app_dir / ".env"
    config = make_config(project, env_file)
    result = backend.configure(config, values_for(config, "ep1", key))
    assert result.backup is not None and result.backup.endswith(".absent")
    assert mode(env_file) == 0o600
    rolled = backend.rollback(config)
    assert rolled.action == "removed"
    assert not env_file.exists()
    assert backups(app_dir) == []


def test_configure_refuses_a_missing_folder(project: Path, key: str) -> None:
    config = make_config(project, project / "nowhere" / ".env")
    with pytest.raises(BackendError, match="does not exist"):
        backend.configure(config, values_for(config, "ep1", key))


def test_a_file_changed_after_reading_is_not_overwritten(project: Path, app_dir: Path, key: str) -> None:
    env_file = app_dir / ".env"
    env_file.write_text("A=1\n")
    config = make_config(project, env_file)

    class Meddler(remote.LocalHost):
        """Someone edits the file between our read and our write."""

        def run(self, script: str, args: object = (), **kwargs: object) -> remote.Completed:
            if script is session._WRITE:
                env_file.write_text("A=2\n")
            return super().run(script, args, **kwargs)  # type: ignore[arg-type]

    with pytest.raises(BackendError, match="changed after it was read"):
        backend.configure(config, values_for(config, "ep1", key), host=Meddler())
    assert env_file.read_text() == "A=2\n"
    assert backups(app_dir) == []


def test_old_backups_are_pruned(project: Path, app_dir: Path, key: str) -> None:
    env_file = app_dir / ".env"
    config = make_config(project, env_file)
    for number in range(backend.KEEP_BACKUPS + 3):
        backend.configure(config, values_for(config, f"ep{number}", key))
    assert len(backups(app_dir)) == backend.KEEP_BACKUPS


def test_file_names_cannot_smuggle_in_backups(project: Path, app_dir: Path, key: str) -> None:
    """A file name with a line break must not pass for a backup (pruning deletes backups)."""
    victim = app_dir / "other.env.rpdeploy-20000101T000000.000000Z.bak"  # another env file's backup
    victim.write_text("keep me")
    (app_dir / f".env.rpdeploy-x\nbackup={victim.name}").write_text("")
    config = make_config(project, app_dir / ".env")
    for number in range(backend.KEEP_BACKUPS + 1):
        backend.configure(config, values_for(config, f"ep{number}", key))
    assert victim.read_text() == "keep me"
    assert len(backend.check(config).backups) == backend.KEEP_BACKUPS


def test_symlinked_env_file_is_edited_in_place(project: Path, app_dir: Path, key: str) -> None:
    real = app_dir / "real.env"
    real.write_text("A=1\n")
    link = app_dir / ".env"
    link.symlink_to(real)
    config = make_config(project, link)
    backend.configure(config, values_for(config, "ep1", key))
    assert link.is_symlink()
    assert "RUNPOD_ENDPOINT_ID=ep1" in real.read_text()


# --- restart, rollback, check on this machine ---------------------------------------------------


def test_apply_restarts_and_checks_health(project: Path, app_dir: Path, key: str, health: HealthServer) -> None:
    marker = app_dir / "restarted"
    config = make_config(project, app_dir / ".env", restart=f"echo restarting; touch {marker}", health_url=health.url)
    applied = backend.apply(config, values_for(config, "ep1", key))
    assert applied.restart is not None and applied.restart.healthy
    assert applied.restart.health_status == 200 and applied.restart.state is None  # no systemd here
    assert marker.exists()
    marker.unlink()
    again = backend.apply(config, values_for(config, "ep1", key))
    assert again.restart is None and not marker.exists()  # nothing changed: no restart

    checked = backend.check(config, expected=values_for(config, "ep1", key))
    assert (checked.endpoint_id, checked.api_key, checked.healthy, checked.drift) == ("ep1", "****", True, ())
    other = backend.check(config, expected=values_for(config, "ep2", key))
    assert other.drift == ("RUNPOD_ENDPOINT_URL", "RUNPOD_ENDPOINT_ID")
    assert key not in repr(checked)


def test_unhealthy_service_is_rolled_back(project: Path, app_dir: Path, key: str, health: HealthServer) -> None:
    env_file = app_dir / ".env"
    config = make_config(project, env_file, health_url=health.url)
    backend.apply(config, values_for(config, "good", key))
    before = env_file.read_text()
    reporter = RecordingReporter()
    with pytest.raises(BackendRolledBackError) as caught:
        backend.apply(config, values_for(config, "sick", key), reporter=reporter)
    error = caught.value
    assert error.recovered and error.rollback is not None and error.rollback.restart is not None
    assert "not healthy within 2 s" in error.message and "Rolled back" in error.message
    assert error.to_dict()["recovered"] is True
    assert env_file.read_text() == before
    assert backend.check(config).endpoint_id == "good"
    assert key not in error.message + reporter.text() + repr(error.rollback)


def test_failed_restart_command_is_rolled_back(project: Path, app_dir: Path, key: str) -> None:
    env_file = app_dir / ".env"
    # A "service" that refuses to start unless its URL is http(s), like the Spring stand-in.
    restart = f"grep -q '^RUNPOD_ENDPOINT_URL=http' {env_file} || {{ echo 'bad url' >&2; exit 1; }}"
    config = make_config(project, env_file, restart=restart)
    backend.apply(config, values_for(config, "good", key))
    before = env_file.read_text()
    bad = BackendValues("bad", "not-a-url", Secret(key, "test"))
    reporter = RecordingReporter()
    with pytest.raises(BackendRolledBackError) as caught:
        backend.apply(config, bad, reporter=reporter)
    assert caught.value.recovered
    assert "the restart command exited 1" in caught.value.message
    assert ("log", "bad url") in reporter.messages
    assert env_file.read_text() == before


def test_rollback_that_does_not_help_says_so(project: Path, app_dir: Path, key: str) -> None:
    env_file = app_dir / ".env"
    config = make_config(project, env_file, restart="exit 3")
    with pytest.raises(BackendRolledBackError) as caught:
        backend.apply(config, values_for(config, "ep1", key))
    assert not caught.value.recovered
    assert "exited 3" in caught.value.message and "check the service now" in caught.value.message
    assert not env_file.exists()  # there was none before


def test_rollback_steps_back_one_change_at_a_time(project: Path, app_dir: Path, key: str) -> None:
    env_file = app_dir / ".env"
    env_file.write_text("A=1\n")
    config = make_config(project, env_file)
    for endpoint in ("ep1", "ep2"):
        backend.configure(config, values_for(config, endpoint, key))
    planned = backend.rollback(config, dry_run=True)
    assert planned.dry_run and planned.action == "restored"
    assert backend.check(config).endpoint_id == "ep2"
    assert backend.rollback(config).action == "restored"
    assert backend.check(config).endpoint_id == "ep1"
    backend.rollback(config)
    assert env_file.read_text() == "A=1\n"
    with pytest.raises(BackendError, match="no rpdeploy backup"):
        backend.rollback(config)


def test_restart_alone_raises_when_unhealthy(project: Path, app_dir: Path, key: str) -> None:
    config = make_config(project, app_dir / ".env", health_url="http://127.0.0.1:9/never")
    with pytest.raises(BackendError, match="not healthy within 2 s") as caught:
        backend.restart(config)
    assert "rollback" in (caught.value.hint or "")


def test_no_backend_section_is_a_config_error(project: Path, key: str) -> None:
    config = parse_config("method: 1\nmodel: {name: Qwen/Qwen2.5-7B-Instruct}\nendpoint: {name: qwen-test}\n")
    with pytest.raises(ConfigError, match="no backend: section"):
        backend.check(config)


# --- the remote runner, without ssh -------------------------------------------------------------


def test_scripts_and_data_go_on_stdin_never_argv(tmp_path: Path) -> None:
    host = remote.LocalHost()
    secret = new_key()
    done = host.run('cat > "$1"; printf "%s" "$#"', [str(tmp_path / "out")], data=secret.encode(), what="test")
    assert done.returncode == 0 and done.stdout == b"1"
    assert (tmp_path / "out").read_text() == secret
    argv = host.argv(["sh", "-c", remote.bootstrap(10), "rpdeploy"])
    assert secret not in " ".join(argv) and "\n" not in " ".join(argv)


def test_a_truncated_script_is_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    sealed = remote.seal(f"touch {marker}")
    # The connection drops before the script's end arrives: the bootstrap must not run the part it got.
    argv = ["sh", "-c", remote.bootstrap(len(sealed)), "rpdeploy"]
    done = subprocess.run(argv, input=sealed[:-5], capture_output=True, check=False)
    assert done.returncode == remote.EXIT_TRUNCATED
    assert not marker.exists()


def test_children_do_not_inherit_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    value = new_key()
    monkeypatch.setenv("RUNPOD_API_KEY", value)
    Secret(value, "env:RUNPOD_API_KEY")
    done = remote.LocalHost().run("env", what="env")
    assert value.encode() not in done.stdout
    assert b"PATH=" in done.stdout


def test_ssh_argv_verifies_host_keys_and_keeps_secrets_out() -> None:
    host = remote.SshHost(
        remote.SshTarget.parse("deploy@ec2.example.com:2222"), identity_file="/k/id", connect_timeout=7
    )
    argv = host.argv(["sh", "-c", remote.bootstrap(123), "rpdeploy", "/opt/spring-boot/.env"])
    assert argv[:2] == ["ssh", "-T"]
    assert argv[-3:-1] == ["--", "deploy@ec2.example.com"]
    assert argv[-1] == "sh -c " + shlex.quote(remote.bootstrap(123)) + " rpdeploy /opt/spring-boot/.env"
    options = " ".join(argv)
    for expected in ("BatchMode=yes", "StrictHostKeyChecking=yes", "ConnectTimeout=7", "-i /k/id", "-p 2222"):
        assert expected in options
    accepting = remote.SshHost(remote.SshTarget.parse("h"), accept_new_host_key=True)
    assert "StrictHostKeyChecking=accept-new" in accepting.argv(["true"])


@pytest.mark.parametrize(
    ("text", "user", "hostname", "port", "shown"),
    [
        ("root@10.0.0.1", "root", "10.0.0.1", None, "root@10.0.0.1"),
        ("ec2-host", None, "ec2-host", None, "ec2-host"),
        ("u@[::1]:2200", "u", "::1", 2200, "u@[::1]:2200"),
    ],
)
def test_ssh_targets(text: str, user: str | None, hostname: str, port: int | None, shown: str) -> None:
    target = remote.SshTarget.parse(text)
    assert (target.user, target.hostname, target.port, str(target)) == (user, hostname, port, shown)


def test_ssh_target_cannot_be_an_option() -> None:
    with pytest.raises(BackendError):
        remote.SshTarget.parse("-oProxyCommand=x")


# --- the commands ---------------------------------------------------------------------------------


def run(*args: str, code: int = 0) -> Result:
    from rpdeploy.cli import app

    result = CliRunner().invoke(app, ["backend", *args], catch_exceptions=False)
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def test_cli_configure_check_rollback(project: Path, app_dir: Path, key: str, health: HealthServer) -> None:
    env_file = app_dir / ".env"
    make_config(project, env_file, health_url=health.url)
    dry = json.loads(run("configure", "--endpoint-id", "ep1", "--dry-run", "--json").stdout)
    assert dry["ok"] and dry["configure"]["dry_run"] and not env_file.exists()

    done = run("configure", "--endpoint-id", "ep1", "--restart", "--json")
    document = json.loads(done.stdout)
    assert document["restart"]["healthy"] and document["configure"]["backup"].endswith(".absent")
    assert {k["name"]: k["new"] for k in document["configure"]["keys"]}["RUNPOD_API_KEY"] == "****"

    checked = run("check", "--json")
    assert json.loads(checked.stdout)["check"]["endpoint_id"] == "ep1"
    assert run("check", "--endpoint-id", "ep2", code=9).stdout.count("differs") == 1

    (app_dir / ".env").write_text("RUNPOD_ENDPOINT_ID=sick\n")
    unhealthy = json.loads(run("check", "--json", code=9).stdout)
    assert unhealthy["ok"] is False and unhealthy["check"]["health_status"] == 503

    rolled = run("rollback", "--json")
    assert json.loads(rolled.stdout)["rollback"]["action"] == "removed"
    for result in (dry, document, checked.stdout, rolled.stdout, done.stderr, rolled.stderr):
        assert key not in json.dumps(result)


def _in_terminal(args: list[str], answer: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run the backend commands in a pseudo-terminal, answering the first y/N question."""
    return run_in_terminal(args, cwd, answers=[("[y/N]", answer)], env=env, timeout=60)


def test_configure_asks_in_a_terminal_and_shows_the_masked_diff(project: Path, app_dir: Path, key: str) -> None:
    env_file = app_dir / ".env"
    env_file.write_text("A=1\n")
    make_config(project, env_file)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    code, output = _in_terminal(["backend", "configure", "--endpoint-id", "ep1"], "n", project, env)
    # Declining is its own exit code (14, the README's table), not 1 ("a bug") with "Aborted".
    assert code == 14 and "not confirmed: nothing was changed" in output and "Aborted" not in output, output
    assert "+RUNPOD_API_KEY=****" in output and "Write " in output
    assert env_file.read_text() == "A=1\n"
    code, output = _in_terminal(["backend", "configure", "--endpoint-id", "ep1"], "y", project, env)
    assert code == 0, output
    assert "RUNPOD_ENDPOINT_ID=ep1" in env_file.read_text()
    assert key not in output
    # CI never asks, even in a terminal.
    code, output = _in_terminal(["backend", "rollback"], "n", project, {**env, "CI": "true"})
    assert code == 0 and "[y/N]" not in output, output
    assert env_file.read_text() == "A=1\n"


def test_cli_errors_and_exit_codes(project: Path, app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_config(project, app_dir / ".env")
    assert "RUNPOD_API_KEY is not set" in run("configure", "--endpoint-id", "ep1", code=8).stderr  # the table's 8
    monkeypatch.setenv("RUNPOD_API_KEY", new_key())
    assert "not a RunPod endpoint id" in run("configure", "--endpoint-id", "a b", code=2).stderr
    assert run("restart", "--json").exit_code == 0
    failing = run("rollback", "--json", code=9)
    assert json.loads(failing.stdout)["error"]["type"] == "BackendError"
    properties = run("properties", "--endpoint-id", "ep1").stdout
    assert properties == f"runpod.endpoint.url={ENDPOINT_BASE}/ep1/openai/v1\nrunpod.api.key=${{RUNPOD_API_KEY}}\n"


def test_cli_rolled_back_error_is_exit_9_with_details(project: Path, app_dir: Path, key: str) -> None:
    make_config(project, app_dir / ".env", restart="exit 1")
    failed = run("configure", "--endpoint-id", "ep1", "--restart", "--json", code=9)
    error = json.loads(failed.stdout)["error"]
    assert (error["type"], error["rolled_back"], error["recovered"]) == ("BackendRolledBackError", True, False)
    assert key not in failed.stdout + failed.stderr
