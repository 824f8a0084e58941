"""The admin API, key handling, and the emulator run as its own process (``rpdeploy emulator``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from emulator_support import Api

import rpdeploy
from rpdeploy.emulator import Emulator

REPO = Path(rpdeploy.__file__).resolve().parent.parent


def test_state_snapshot(api: Api, emulator: Emulator) -> None:
    endpoint = api.endpoint(name="snap")
    job_id = api.run(endpoint["id"], {"prompt": "x"})

    response = api.http.get("/_emulator/state", headers=api.headers)

    assert response.status_code == 200
    state = response.json()
    assert [t["id"] for t in state["templates"]] == [endpoint["templateId"]]
    assert state["templates"][0]["boundEndpointId"] == endpoint["id"]
    [snapshot] = state["endpoints"]
    assert snapshot["id"] == endpoint["id"] and snapshot["workersMax"] == 2
    assert [w["status"] for w in snapshot["workers"]] == ["initializing"]
    assert [(j["id"], j["endpointId"], j["input"]) for j in state["jobs"]] == [
        (job_id, endpoint["id"], {"prompt": "x"})
    ]
    assert state["account"] == {"id": emulator.state.account.id, "email": emulator.state.account.email}


def test_admin_needs_the_key(api: Api) -> None:
    assert api.http.get("/_emulator/state").status_code == 401
    assert api.http.get("/_emulator/state", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_requests_log_over_http_never_holds_credentials(api: Api, emulator: Emulator) -> None:
    endpoint = api.endpoint(name="logged")
    api.invoke("GET", endpoint["id"], "health")
    api.http.post(f"/graphql?api_key={emulator.api_key}&x=1", json={"query": "{ myself { id } }"})

    logged = api.http.get("/_emulator/requests", headers=api.headers).json()["requests"]

    assert [(r["method"], r["path"], r["operation"]) for r in logged] == [
        ("POST", "/graphql", "saveTemplate"),
        ("POST", "/graphql", "saveEndpoint"),
        ("GET", f"/v2/{endpoint['id']}/health", None),
        ("POST", "/graphql", "myself"),
    ]
    assert logged[-1]["query"] == {"x": "1"}
    assert emulator.api_key not in str(logged)
    assert api.http.delete("/_emulator/requests", headers=api.headers).json() == {"requests": []}
    assert len(emulator.requests) == 0


def test_reset_forgets_everything(api: Api, emulator: Emulator) -> None:
    api.endpoint(name="gone")
    emulator.faults.read_only()

    assert api.http.post("/_emulator/reset", headers=api.headers).json() == {"reset": True}

    assert emulator.state.snapshot()["endpoints"] == [] and emulator.state.templates == {}
    assert emulator.faults.active() == [] and len(emulator.requests) == 0
    assert api.template(name="fresh")["name"] == "fresh"


def test_network_volumes_can_be_seeded_over_http(api: Api) -> None:
    created = api.http.post(
        "/_emulator/network-volumes", json={"name": "models", "size": 200}, headers=api.headers
    ).json()

    listed = api.gql("{ myself { networkVolumes { id name size dataCenterId } } }").ok()

    assert listed["myself"]["networkVolumes"] == [created]
    assert api.endpoint(name="with-volume", networkVolumeId=created["id"])["networkVolumeId"] == created["id"]


def test_key_comes_from_argument_env_or_is_generated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_FROMENV")
    assert Emulator().api_key == "rpa_FROMENV"
    assert Emulator("explicit").api_key == "explicit"

    monkeypatch.delenv("RUNPOD_API_KEY")
    generated = Emulator()
    assert generated.key_generated and generated.api_key.startswith("rpa_") and len(generated.api_key) > 20
    assert Emulator().api_key != generated.api_key


def test_urls_and_env(emulator: Emulator) -> None:
    assert emulator.api_url == f"http://127.0.0.1:{emulator.port}"
    assert emulator.endpoint_url == emulator.api_url + "/v2"
    assert emulator.env() == {
        "RUNPOD_API_BASE_URL": emulator.api_url,
        "RUNPOD_ENDPOINT_BASE_URL": emulator.endpoint_url,
        "RUNPOD_API_KEY": emulator.api_key,
    }


# --- as a separate process -----------------------------------------------------------------------


def _spawn(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rpdeploy.emulator", *args],
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}


@pytest.fixture
def process(clean_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = _spawn("--port", "0", "--cold-start", "0.05", "--execution-time", "0.01", env=clean_env)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


def _read_env_lines(proc: subprocess.Popen[str], count: int) -> dict[str, str]:
    assert proc.stdout is not None
    lines = [proc.stdout.readline().strip() for _ in range(count)]
    return dict(line.split("=", 1) for line in lines)


def test_process_prints_its_urls_and_generated_key_then_stops_on_sigterm(
    process: subprocess.Popen[str],
) -> None:
    env = _read_env_lines(process, 3)

    assert set(env) == {"RUNPOD_API_BASE_URL", "RUNPOD_ENDPOINT_BASE_URL", "RUNPOD_API_KEY"}
    assert env["RUNPOD_ENDPOINT_BASE_URL"] == env["RUNPOD_API_BASE_URL"] + "/v2"
    headers = {"Authorization": f"Bearer {env['RUNPOD_API_KEY']}"}
    with httpx.Client(base_url=env["RUNPOD_API_BASE_URL"], headers=headers, verify=False, timeout=10) as http:
        me = http.post("/graphql", json={"query": "{ myself { id } }"})
        assert me.status_code == 200 and me.json()["data"]["myself"]["id"].startswith("user_")
        # Fault it from outside, as subprocess tests of rpdeploy will.
        assert http.post("/_emulator/faults", json={"fault": "graphql_http_status", "status": 502}).status_code == 200
        assert http.post("/graphql", json={"query": "{ myself { id } }"}).status_code == 502
        assert http.get("/_emulator/requests").json()["requests"][0]["operation"] == "myself"

    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    assert process.stderr is not None and "Ctrl-C to stop" in process.stderr.read()


def test_process_takes_the_key_from_the_named_variable(clean_env: dict[str, str]) -> None:
    proc = _spawn("--port", "0", "--api-key-env", "MY_EMULATOR_KEY", env={**clean_env, "MY_EMULATOR_KEY": "rpa_MINE"})
    try:
        env = _read_env_lines(proc, 2)
        assert set(env) == {"RUNPOD_API_BASE_URL", "RUNPOD_ENDPOINT_BASE_URL"}  # the key is not echoed
        ok = httpx.post(
            env["RUNPOD_API_BASE_URL"] + "/graphql",
            json={"query": "{ myself { id } }"},
            headers={"Authorization": "Bearer rpa_MINE"},
            verify=False,
        )
        assert ok.status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert proc.stdout is not None and proc.stdout.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_process_reports_a_busy_port_as_a_usage_error(clean_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "rpdeploy.emulator", "--port", str(port)],
            env={**clean_env, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert result.returncode == 2
    assert "cannot listen on" in result.stderr
    assert result.stdout == ""


def test_process_takes_the_template_delete_delay(clean_env: dict[str, str]) -> None:
    proc = _spawn("--port", "0", "--template-delete-delay", "0.3", env=clean_env)
    try:
        env = _read_env_lines(proc, 3)
        headers = {"Authorization": f"Bearer {env['RUNPOD_API_KEY']}"}
        with httpx.Client(base_url=env["RUNPOD_API_BASE_URL"], headers=headers, verify=False, timeout=10) as http:

            def gql(query: str, variables: dict[str, object] | None = None) -> dict[str, object]:
                body: dict[str, object] = http.post("/graphql", json={"query": query, "variables": variables}).json()
                return body

            template = gql(
                "mutation($i: SaveTemplateInput) { saveTemplate(input: $i) { id } }",
                {"i": {"name": "t", "imageName": "a/b:1", "dockerArgs": "", "containerDiskInGb": 5, "volumeInGb": 0,
                       "env": [], "isServerless": True}},
            )["data"]  # fmt: skip
            assert isinstance(template, dict)
            endpoint = gql(
                "mutation($i: EndpointInput!) { saveEndpoint(input: $i) { id } }",
                {"i": {"name": "ep-1", "templateId": template["saveTemplate"]["id"], "gpuIds": "AMPERE_24",
                       "workersMax": 0}},
            )["data"]  # fmt: skip
            assert isinstance(endpoint, dict)
            gql("mutation($id: String!) { deleteEndpoint(id: $id) }", {"id": endpoint["saveEndpoint"]["id"]})
            held = gql('mutation { deleteTemplate(templateName: "t") }')
            time.sleep(0.35)
            gone = gql('mutation { deleteTemplate(templateName: "t") }')
        assert "still in use" in str(held["errors"])
        assert gone == {"data": {"deleteTemplate": None}}
    finally:
        proc.kill()
        proc.wait(5)
