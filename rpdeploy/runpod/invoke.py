"""The serverless invoke API of one endpoint: jobs, health, and worker-vllm's OpenAI routes.

Two servers speak this API: RunPod itself (``{base}/{endpoint_id}/runsync``...) and the
runpod SDK's local test server (``python handler.py --rp_serve_api``), whose routes
differ: no endpoint id in the path, ``/status`` is POST and runs the job, and there is no
``/health``, ``/cancel`` or ``/openai``. :class:`InvokeClient` hides the difference.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rpdeploy.errors import ApiError, AuthError
from rpdeploy.secrets import Secret, redact

if TYPE_CHECKING:
    import httpx

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
#: RunPod holds /runsync open at most this long (its documented ``wait`` range is 1-300 s).
MAX_RUNSYNC_WAIT_MS = 300_000


class InvokeClient:
    """Jobs against one endpoint (RunPod) or one local worker (``local=True``)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: Secret | None,
        local: bool = False,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        headers = {"User-Agent": "rpdeploy"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key.reveal()}"
        self.base_url = base_url.rstrip("/")
        self.local = local
        self.requests = 0
        self._timeout = timeout
        self._http = httpx.Client(transport=transport, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> InvokeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, *, body: Any = None, timeout: float | None = None) -> Any:
        import httpx

        self.requests += 1
        url = f"{self.base_url}{path}"
        try:
            response = self._http.request(
                method, url, json=body, timeout=httpx.Timeout(timeout or self._timeout, connect=10.0)
            )
        except httpx.TimeoutException as exc:
            raise ApiError(f"{method} {url} did not answer in time", retryable=True) from exc
        except httpx.TransportError as exc:
            raise ApiError(
                f"cannot reach {url}: {type(exc).__name__}: {exc}",
                hint="check the endpoint URL (RUNPOD_ENDPOINT_BASE_URL / runpod.endpoint_url / --url)",
                retryable=True,
            ) from exc
        if response.status_code == 401:
            raise AuthError(f"{url} rejected the API key (HTTP 401)", status=401)
        if response.status_code == 404:
            raise ApiError(
                f"{method} {url}: not found (HTTP 404)",
                hint="is the endpoint id right, and does the endpoint still exist? (`rpdeploy endpoint get`)",
                status=404,
            )
        if response.status_code == 429:
            raise ApiError(f"{url} is rate-limiting requests (HTTP 429)", status=429, retryable=True)
        if response.status_code >= 400:
            raise ApiError(
                f"{method} {url} failed (HTTP {response.status_code}): {redact(response.text[:300])}",
                status=response.status_code,
            )
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"{url} answered with something that is not JSON") from None

    # --- jobs -----------------------------------------------------------------------

    def runsync(self, job_input: dict[str, Any], *, wait_ms: int) -> dict[str, Any]:
        """Submit a job and hold the connection until it ends or ``wait_ms`` passes."""
        wait_ms = max(1000, min(wait_ms, MAX_RUNSYNC_WAIT_MS))
        path = "/runsync" if self.local else f"/runsync?wait={wait_ms}"
        result: dict[str, Any] = self._request("POST", path, body={"input": job_input}, timeout=wait_ms / 1000 + 30)
        return result

    def status(self, job_id: str) -> dict[str, Any]:
        # The local test server only knows POST /status (and runs the job when asked).
        result: dict[str, Any] = self._request("POST" if self.local else "GET", f"/status/{job_id}")
        return result

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        if self.local:
            return None
        result: dict[str, Any] = self._request("POST", f"/cancel/{job_id}")
        return result

    def health(self) -> dict[str, Any] | None:
        if self.local:
            return None
        result: dict[str, Any] = self._request("GET", "/health", timeout=10)
        return result

    # --- worker-vllm's OpenAI routes --------------------------------------------------

    def openai_models(self, *, timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/openai/v1/models", timeout=timeout)
        return result

    def openai_chat(self, body: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", "/openai/v1/chat/completions", body=body, timeout=timeout)
        return result

    def openai_chat_stream(self, body: dict[str, Any], *, timeout: float) -> Iterator[str]:
        """The ``data:`` payloads of a streamed chat completion, ``[DONE]`` included."""
        import httpx

        self.requests += 1
        url = f"{self.base_url}/openai/v1/chat/completions"
        try:
            with self._http.stream(
                "POST", url, json={**body, "stream": True}, timeout=httpx.Timeout(timeout, connect=10.0)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(
                        f"POST {url} failed (HTTP {response.status_code}): {redact(response.text[:300])}",
                        status=response.status_code,
                    )
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        yield line[5:].strip()
        except httpx.TimeoutException as exc:
            raise ApiError(f"the stream from {url} stalled", retryable=True) from exc
        except httpx.TransportError as exc:
            raise ApiError(f"the stream from {url} broke: {exc}", retryable=True) from exc


def detect_local(url: str, *, transport: httpx.BaseTransport | None = None) -> bool:
    """Whether ``url`` is the runpod SDK's local test server (not a RunPod endpoint base)."""
    import httpx

    try:
        with httpx.Client(transport=transport, timeout=5) as client:
            response = client.get(f"{url.rstrip('/')}/openapi.json")
        paths = response.json().get("paths", {}) if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
    return "/runsync" in paths and "/health" not in paths


def parse_sse_json(payloads: list[str]) -> list[Any]:
    """Decode SSE ``data`` payloads, keeping ``[DONE]`` as the string it is."""
    out: list[Any] = []
    for payload in payloads:
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out
