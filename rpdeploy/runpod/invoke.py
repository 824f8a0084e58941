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
#: RunPod's documented range for ``/runsync?wait=`` (ms); without it RunPod holds ~90 s.
MIN_RUNSYNC_WAIT_MS, MAX_RUNSYNC_WAIT_MS = 1_000, 300_000
DEFAULT_RUNSYNC_HOLD = 90.0
#: Extra read time on top of a /runsync hold: RunPod's "~90 s" is not exact.
HOLD_MARGIN = 30.0


class RateLimitedError(ApiError):
    """HTTP 429: the request was refused before anything was done, so it is safe to send again."""

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message, status=429, retryable=True)
        self.retry_after = retry_after


class NoAnswerError(ApiError):
    """The server did not answer within the read timeout (it may still act on the request)."""


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, min(float(value), 300.0)) if value else None
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to our own pause


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
            raise NoAnswerError(f"{method} {url} did not answer in time", retryable=True) from exc
        except httpx.TransportError as exc:
            raise ApiError(
                f"cannot reach {url}: {type(exc).__name__}: {exc}",
                hint="check the endpoint URL (RUNPOD_ENDPOINT_BASE_URL / runpod.endpoint_url / --url)",
                retryable=True,
            ) from exc
        if response.status_code == 401:
            raise AuthError(f"{url} rejected the API key (HTTP 401)", status=401)
        if response.status_code == 404:
            detail = _error_detail(response)
            raise ApiError(
                f"{method} {url}: not found (HTTP 404)" + (f": {detail}" if detail else ""),
                hint="is the endpoint id right, and does the endpoint still exist? (`rpdeploy endpoint get`)",
                status=404,
            )
        if response.status_code == 429:
            raise RateLimitedError(
                f"{url} is rate-limiting requests (HTTP 429)",
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code >= 400:
            raise ApiError(
                f"{method} {url} failed (HTTP {response.status_code}): {_error_detail(response) or '(no body)'}",
                status=response.status_code,
                # A 5xx may pass; whether sending again is safe is the caller's call (reads: yes).
                retryable=response.status_code >= 500,
            )
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"{url} answered with something that is not JSON") from None

    # --- jobs -----------------------------------------------------------------------

    def runsync(
        self, job_input: dict[str, Any], *, wait_ms: int | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Submit a job; the answer comes when it ends or when the hold runs out (then poll /status).

        ``wait_ms`` asks RunPod for a shorter (or longer) hold than its ~90 s default; the
        local test server has no hold (it runs the job inside the request). ``timeout`` is
        the read timeout, by default the hold plus a margin.
        """
        path = "/runsync"
        if wait_ms is not None and not self.local:
            wait_ms = max(MIN_RUNSYNC_WAIT_MS, min(wait_ms, MAX_RUNSYNC_WAIT_MS))
            path += f"?wait={wait_ms}"
        if timeout is None:
            timeout = (wait_ms / 1000 if wait_ms is not None else DEFAULT_RUNSYNC_HOLD) + HOLD_MARGIN
        result: dict[str, Any] = self._request("POST", path, body={"input": job_input}, timeout=timeout)
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


def _error_detail(response: httpx.Response) -> str:
    """The message in an error body (``{"error": {"message"}}``, ``{"error"}``, ``{"detail"}``), else its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message: Any = None
    if isinstance(body, dict):
        message = body.get("error") or body.get("detail") or body.get("message")
        if isinstance(message, dict):
            message = message.get("message") or message
    text = str(message) if message else response.text
    return redact(text.strip()[:300])


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
