"""Helpers for the emulator's tests: an HTTP client for GraphQL and the invoke API.

Everything goes over real HTTP: ``Api.gql`` posts GraphQL the way rpdeploy does (with
variables), ``Api.invoke`` talks to ``/v2/{endpoint}/...``. (A module of its own, not
conftest.py, so test files can import it without clashing with other test folders.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from rpdeploy.emulator import Emulator

API_KEY = "rpa_TESTKEY0000000000000000000000000000000"
VLLM_IMAGE = "runpod/worker-v1-vllm:v2.24.0"
OWN_IMAGE = "registry.example:5000/acme/qwen-worker@sha256:" + "a" * 64
MODEL = "Qwen/Qwen2.5-7B-Instruct"

TEMPLATE_FIELDS = "id name imageName dockerArgs containerDiskInGb volumeInGb env { key value } isServerless"
ENDPOINT_FIELDS = (
    "id name templateId gpuIds gpuCount idleTimeout scalerType scalerValue workersMin workersMax "
    "allowedCudaVersions minCudaVersion executionTimeoutMs flashBootType modelReferences compliance "
    "networkVolumeId locations version createdAt type"
)

SAVE_TEMPLATE = (
    f"mutation saveTemplate($input: SaveTemplateInput) {{ saveTemplate(input: $input) {{ {TEMPLATE_FIELDS} }} }}"
)
SAVE_ENDPOINT = (
    f"mutation saveEndpoint($input: EndpointInput!) {{ saveEndpoint(input: $input) {{ {ENDPOINT_FIELDS} }} }}"
)
GET_ENDPOINT = f"query getEndpoint($id: String!) {{ myself {{ endpoint(id: $id) {{ {ENDPOINT_FIELDS} }} }} }}"


@dataclass
class GraphQLResult:
    status: int
    body: dict[str, Any]

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.body.get("errors") or [])

    @property
    def message(self) -> str:
        """The first error's message (what every RunPod client reads)."""
        assert self.errors, f"expected errors, got {self.body}"
        return str(self.errors[0]["message"])

    def ok(self) -> Any:
        assert self.status == 200 and not self.errors, f"{self.status}: {self.body}"
        return self.data


class Api:
    """Small GraphQL + invoke client over HTTP, with the helpers most tests need."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        # Plain http to loopback: verify=False only skips loading the CA bundle (150 ms a client).
        self.http = httpx.Client(base_url=emulator.api_url, timeout=30, verify=False)
        self.headers = {"Authorization": f"Bearer {emulator.api_key}"}

    def close(self) -> None:
        self.http.close()

    def gql(self, query: str, variables: dict[str, Any] | None = None, *, key: str | None = "default") -> GraphQLResult:
        headers = self.headers if key == "default" else ({"Authorization": f"Bearer {key}"} if key else {})
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        response = self.http.post("/graphql", json=body, headers=headers)
        return GraphQLResult(response.status_code, response.json())

    def save_template(self, **fields: Any) -> GraphQLResult:
        data: dict[str, Any] = {
            "name": "worker-template",
            "imageName": VLLM_IMAGE,
            "dockerArgs": "",
            "containerDiskInGb": 20,
            "volumeInGb": 0,
            "isServerless": True,
            "env": [{"key": "MODEL_NAME", "value": MODEL}],
        }
        data.update(fields)
        data = {key: value for key, value in data.items() if value is not OMIT}
        return self.gql(SAVE_TEMPLATE, {"input": data})

    def template(self, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.save_template(**fields).ok()["saveTemplate"]
        return result

    def save_endpoint(self, **fields: Any) -> GraphQLResult:
        data = {key: value for key, value in fields.items() if value is not OMIT}
        return self.gql(SAVE_ENDPOINT, {"input": data})

    def endpoint(self, template_id: str | None = None, **fields: Any) -> dict[str, Any]:
        """Create a template (unless given) and an endpoint on it; returns the endpoint."""
        if template_id is None:
            image = fields.pop("image", VLLM_IMAGE)
            env = fields.pop("env", [{"key": "MODEL_NAME", "value": MODEL}])
            template_id = self.template(name=f"t-{time.monotonic_ns()}", imageName=image, env=env)["id"]
        data = {"name": "my-endpoint", "templateId": template_id, "gpuIds": "AMPERE_24", "workersMax": 2}
        data.update(fields)
        result: dict[str, Any] = self.save_endpoint(**data).ok()["saveEndpoint"]
        return result

    def get_endpoint(self, endpoint_id: str) -> dict[str, Any] | None:
        """The endpoint, or None when RunPod says there is none (an error, not a null)."""
        answer = self.gql(GET_ENDPOINT, {"id": endpoint_id})
        if answer.errors and answer.message == "No Endpoint found":
            return None
        result: dict[str, Any] | None = answer.ok()["myself"]["endpoint"]
        return result

    # --- invoke API ---------------------------------------------------------------------------

    def invoke(self, method: str, endpoint_id: str, route: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.headers)
        return self.http.request(method, f"/v2/{endpoint_id}/{route}", **kwargs)

    def run(self, endpoint_id: str, job_input: dict[str, Any], **extra: Any) -> str:
        response = self.invoke("POST", endpoint_id, "run", json={"input": job_input, **extra})
        assert response.status_code == 200, response.text
        job_id: str = response.json()["id"]
        return job_id

    def status(self, endpoint_id: str, job_id: str) -> dict[str, Any]:
        response = self.invoke("GET", endpoint_id, f"status/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_status(
        self, endpoint_id: str, job_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = self.status(endpoint_id, job_id)
            if until(body) or time.monotonic() > deadline:
                return body
            time.sleep(0.02)

    def wait_done(self, endpoint_id: str, job_id: str, timeout: float = 5.0) -> dict[str, Any]:
        terminal = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
        return self.wait_status(endpoint_id, job_id, lambda body: body["status"] in terminal, timeout)

    def health(self, endpoint_id: str) -> dict[str, Any]:
        response = self.invoke("GET", endpoint_id, "health")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


#: Pass as a field value to leave the field out of the input object entirely.
OMIT: Any = _Omit()
