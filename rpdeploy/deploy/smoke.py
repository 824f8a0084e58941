"""The smoke test: prove the endpoint answers for its method, through cold starts, and measure it.

Every method is checked with a job of its own shape (:func:`run_smoke`), then on RunPod's OpenAI
route (``/openai/v1``), the one the backend uses. Owns the settings and result of a smoke run,
judging each method's output, and which endpoint to test (:func:`resolve_target`, and whether
the RunPod API key may go to it).

Split by concern: ``smoke_job`` runs one job to its end (the long poll, ``/status`` polls,
``/health``, cancelling), ``smoke_release`` checks which release answered, ``smoke_report``
writes the reports and names why a job stalled. The names others import from here are
re-exported.

``benchmarks/smoke_wait.py`` measures how soon the end of a job is noticed and how many
requests the wait costs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rpdeploy.deploy.smoke_job import (
    PREVIEW_CHARS,
    CheckResult,
    Runner,
    SmokeFailure,
    job_error,
    output_error,
)
from rpdeploy.deploy.smoke_release import ReleaseCheck, ReleaseReport, ReleaseTracker, release_check
from rpdeploy.deploy.smoke_report import describe_health, diagnose, format_report, write_junit
from rpdeploy.errors import ApiError
from rpdeploy.methods import Method
from rpdeploy.output import NullReporter, Reporter
from rpdeploy.runpod import release as releases
from rpdeploy.runpod.invoke import InvokeClient, parse_sse_json

__all__ = [
    "PREVIEW_CHARS",
    "RUNPOD_DOMAINS",
    "CheckResult",
    "ReleaseCheck",
    "ReleaseReport",
    "ReleaseTracker",
    "Runner",
    "SmokeFailure",
    "SmokeResult",
    "SmokeSettings",
    "Target",
    "describe_health",
    "diagnose",
    "evaluate_custom_handler",
    "evaluate_fastapi",
    "evaluate_worker_vllm",
    "format_report",
    "job_error",
    "key_allowed",
    "output_error",
    "release_check",
    "resolve_target",
    "run_smoke",
    "write_junit",
]


@dataclass(frozen=True)
class SmokeSettings:
    prompt: str
    max_tokens: int
    timeout: float
    stream: bool = False
    #: How long RunPod holds /runsync when not asked for less (reference §5.1: ~90 s). Asking
    #: for more (up to 300 s) is documented, but a hold past ~100 s meets the proxy read
    #: timeouts in front of many APIs, and a cut long poll loses the job id with it.
    runsync_wait: float = 90.0
    #: Pause between /status polls: ``poll_fast`` while the requests sent since the job was
    #: submitted average under ``request_budget`` per second (the long poll banks most of
    #: that), else ``poll_slow``.
    poll_fast: float = 0.5
    poll_slow: float = 1.0
    request_budget: float = 0.8
    #: /health every so often while /runsync holds, and while /status is polled.
    health_waiting: float = 10.0
    health_polling: float = 30.0
    #: Pause before asking again after an answer from an old release (doubling with each one, up
    #: to ``release_retry_max``: every question is a job, and a drain can take minutes), and
    #: between reads of the rollout while waiting for it.
    release_retry: float = 1.0
    release_retry_max: float = 8.0
    rollout_poll: float = 2.0


@dataclass(frozen=True)
class SmokeResult:
    target: str
    method: Method
    checks: tuple[CheckResult, ...]
    requests: int
    seconds: float
    release: ReleaseReport | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def first_job(self) -> CheckResult | None:
        return next((c for c in self.checks if c.job_id), None)

    def summary(self) -> dict[str, Any]:
        job = self.first_job
        return {
            "passed": self.passed,
            "cold_start_ms": job.delay_ms if job else None,
            "execution_ms": job.execution_ms if job else None,
            "latency_s": round(job.seconds, 3) if job else None,
            "output_tokens": job.output_tokens if job else None,
            "tokens_per_second": job.tokens_per_second if job else None,
            "answer": job.answer if job else None,
            "release": self.release.expected if self.release else None,
            "release_proven_by": self.release.proven_by if self.release else None,
            "old_answers": self.release.old_answers if self.release else 0,
            "drain_seconds": self.release.drain_seconds if self.release else None,
        }


# --- evaluating outputs -------------------------------------------------------------------


def _usage_tokens(usage: Any) -> int | None:
    if isinstance(usage, dict):
        for key in ("completion_tokens", "output"):
            if isinstance(usage.get(key), int):
                return int(usage[key])
    return None


def _openai_answer(obj: Any) -> tuple[str, int | None]:
    """Text and output tokens of an OpenAI chat/text completion, or of legacy worker-vllm output."""
    if not isinstance(obj, dict):
        raise SmokeFailure(f"expected a completion object, got {type(obj).__name__}")
    choices = obj.get("choices") or []
    if not choices:
        raise SmokeFailure("the completion has no choices")
    choice = choices[0]
    text = ""
    if isinstance(choice.get("message"), dict):
        text = str(choice["message"].get("content") or "")
    elif "text" in choice:
        text = str(choice.get("text") or "")
    elif isinstance(choice.get("tokens"), list):  # worker-vllm before v2.24
        text = "".join(str(t) for t in choice["tokens"])
    if not text.strip():
        raise SmokeFailure("the answer is empty")
    return text, _usage_tokens(obj.get("usage"))


def _first(output: Any) -> Any:
    return output[0] if isinstance(output, list) and output else output


def evaluate_worker_vllm(output: Any) -> tuple[str, int | None]:
    return _openai_answer(_first(output))


def evaluate_custom_handler(output: Any) -> tuple[str, int | None]:
    items = output if isinstance(output, list) else [output]
    if not items or not all(isinstance(i, dict) for i in items):
        raise SmokeFailure(f"unexpected output shape: {str(output)[:120]}")
    text = "".join(str(i.get("text") or "") for i in items)
    if not text.strip():
        raise SmokeFailure("the handler returned an empty response")
    return text, _usage_tokens(items[-1].get("usage"))


def evaluate_fastapi(output: Any) -> tuple[str, int | None]:
    # A list of one since the handler is a generator (an older handler.py returned the dict itself).
    output = _first(output)
    if not isinstance(output, dict) or "status_code" not in output:
        raise SmokeFailure(f"expected {{status_code, body}} from the app, got: {str(output)[:120]}")
    if output["status_code"] != 200:
        body = output.get("body")
        detail = output_error(body) or body
        raise SmokeFailure(f"the app answered HTTP {output['status_code']}: {str(detail)[:200]}")
    return _openai_answer(output.get("body"))


# --- the checks per method ----------------------------------------------------------------


def _messages(settings: SmokeSettings) -> list[dict[str, str]]:
    return [{"role": "user", "content": settings.prompt}]


def run_smoke(
    client: InvokeClient,
    method: Method,
    settings: SmokeSettings,
    *,
    model: str,
    target: str,
    reporter: Reporter | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    release: ReleaseCheck | None = None,
) -> SmokeResult:
    """Run every check for ``method`` against ``client``'s endpoint (of ``release``, when given)."""
    reporter = reporter or NullReporter()
    runner = Runner(client, settings, reporter, clock=clock, sleep=sleep, release=release)
    started = clock()
    checks: list[CheckResult] = []
    if release is not None and release.wait_rollout:
        runner.wait_rollout()
    sampling = {"max_tokens": settings.max_tokens, "temperature": 0}
    if method is Method.WORKER_VLLM:
        name = "runsync chat"
        job_input: dict[str, Any] = {"messages": _messages(settings), "sampling_params": sampling}
        evaluate: Callable[[Any], tuple[str, int | None]] = evaluate_worker_vllm
    elif method is Method.CUSTOM_HANDLER:
        name, evaluate = "runsync handler", evaluate_custom_handler
        job_input = {"messages": _messages(settings), "sampling_params": sampling}
    else:
        body = {"messages": _messages(settings), "max_tokens": settings.max_tokens, "temperature": 0}
        name, evaluate = "runsync /v1/chat/completions", evaluate_fastapi
        job_input = {"method": "POST", "path": "/v1/chat/completions", "body": body}
    checks.append(runner.attributed(name, lambda: runner.job(name, job_input, evaluate)))
    if checks[-1].passed:
        # The route the backend uses, whatever the method: RunPod's /openai/v1. A local worker
        # has no such route; it gets the jobs RunPod makes of those requests instead. A model
        # list names no release: it is asked once the job above heard from the new one.
        listed, served = _openai_models(runner, model)
        checks.append(listed)
        # Without deploy.yaml (--url) the model's name is unknown: use the one it serves.
        model = model or served
        checks.append(runner.attributed("openai chat completion", lambda: _openai_chat(runner, model)))
        if settings.stream:
            checks.append(runner.attributed("openai streamed completion", lambda: _openai_stream(runner, model)))
    for check in checks:
        (reporter.success if check.passed else reporter.warn)(f"{check.name}: {check.message}")
    report = runner.report()
    for line in report.lines() if report is not None else ():
        (reporter.warn if report is not None and report.proven_by == "nothing" else reporter.info)(line)
    return SmokeResult(target, method, tuple(checks), client.requests, clock() - started, report)


def _timed(
    runner: Runner, name: str, call: Callable[[], tuple[str, int | None, str]], named: list[str | None] | None = None
) -> CheckResult:
    """Run ``call``; ``named`` is where it puts the release its answer named."""
    started = runner.clock()
    try:
        answer, tokens, message = call()
    except (SmokeFailure, ApiError) as exc:
        return CheckResult(name, False, runner.clock() - started, exc.message, release=named[-1] if named else None)
    seconds = runner.clock() - started
    rate = round(tokens / seconds, 1) if tokens and seconds > 0 else None
    return CheckResult(
        name,
        True,
        seconds,
        message,
        output_tokens=tokens,
        tokens_per_second=rate,
        answer=answer[:PREVIEW_CHARS] or None,
        release=named[-1] if named else None,
    )


def _openai_job(runner: Runner, route: str, body: dict[str, Any] | None) -> Any:
    """What a local worker answers to the job RunPod makes of ``/openai{route}``: its output items.

    RunPod sends ``{"openai_route": route, "openai_input": body}`` (worker-vllm v2.25.2,
    src/handler.py); the SDK's local test server has no /openai route of its own.
    """
    job: dict[str, Any] = {"openai_route": route}
    if body is not None:
        job["openai_input"] = body
    done = runner.client.runsync(job, timeout=max(runner.remaining(), 5))
    if done.get("status") != "COMPLETED":
        raise SmokeFailure(f"the {route} job ended {done.get('status')}: {job_error(done.get('error'))}")
    output = done.get("output")
    items = output if isinstance(output, list) else [output]
    error = output_error(items)
    if error is not None:
        raise SmokeFailure(f"the worker returned an error: {error}")
    return items


def _openai_models(runner: Runner, model: str) -> tuple[CheckResult, str]:
    """The check that the model is served, and the first model served ("" if none)."""
    listed: list[str] = []

    def call() -> tuple[str, int | None, str]:
        if runner.client.local:
            answer = _first(_openai_job(runner, "/v1/models", None))
        else:
            answer = runner.client.openai_models(timeout=max(runner.remaining(), 5))
        data = (answer.get("data") if isinstance(answer, dict) else None) or []
        listed.extend(str(m.get("id")) for m in data if isinstance(m, dict))
        if not listed:
            raise SmokeFailure("/openai/v1/models lists no model")
        if model and model not in listed:
            raise SmokeFailure(
                f"/openai/v1/models lists {listed}, not {model!r}: clients sending model={model!r} will fail"
            )
        return "", None, f"serves {model or listed[0]}"

    return _timed(runner, "openai models", call), listed[0] if listed else ""


def _openai_chat(runner: Runner, model: str) -> CheckResult:
    named: list[str | None] = []

    def call() -> tuple[str, int | None, str]:
        body = {"model": model, "messages": _messages(runner.settings), "max_tokens": runner.settings.max_tokens}
        if runner.client.local:
            completion = _first(_openai_job(runner, "/v1/chat/completions", body))
        else:
            completion = runner.client.openai_chat(body, timeout=max(runner.remaining(), 5))
        named.append(releases.from_openai(completion))
        if isinstance(completion, dict) and completion.get("error"):
            raise SmokeFailure(f"the worker returned an error: {output_error(completion)}")
        answer, tokens = _openai_answer(completion)
        return answer, tokens, "ok"

    return _timed(runner, "openai chat completion", call, named)


def _openai_stream(runner: Runner, model: str) -> CheckResult:
    named: list[str | None] = []

    def call() -> tuple[str, int | None, str]:
        body = {"model": model, "messages": _messages(runner.settings), "max_tokens": runner.settings.max_tokens}
        if runner.client.local:
            # The worker yields the event stream as text pieces: only their concatenation is SSE.
            pieces = _openai_job(runner, "/v1/chat/completions", {**body, "stream": True})
            if not all(isinstance(piece, str) for piece in pieces):
                raise SmokeFailure(f"a streamed answer should be text, got: {str(pieces)[:120]}")
            text = "".join(pieces)
            payloads = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
        else:
            payloads = list(runner.client.openai_chat_stream(body, timeout=max(runner.remaining(), 5)))
        events = parse_sse_json(payloads)
        named.append(releases.from_stream(events))
        if not events or events[-1] != "[DONE]":
            raise SmokeFailure("the stream did not end with [DONE]")
        chunks = [e for e in events[:-1] if isinstance(e, dict)]
        failed = output_error(chunks)
        if failed is not None:  # vLLM reports an error during generation as the last event
            raise SmokeFailure(f"the stream ended with an error: {failed}")
        if not chunks:
            raise SmokeFailure("the stream carried no chunks")
        text = "".join(
            str((c.get("choices") or [{}])[0].get("delta", {}).get("content") or "") for c in chunks if c.get("choices")
        )
        if not text.strip():
            raise SmokeFailure("the streamed answer is empty")
        tokens = next((_usage_tokens(c.get("usage")) for c in reversed(chunks) if c.get("usage")), None)
        return text, tokens, f"{len(chunks)} chunks"

    return _timed(runner, "openai streamed completion", call, named)


# --- what to test -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    base_url: str
    local: bool
    label: str
    #: Whether the RunPod API key may go to ``base_url`` (see :func:`key_allowed`).
    send_key: bool = True
    #: Why not, when it may not.
    key_note: str = ""


#: RunPod's own domains: the serverless API (api.runpod.ai, <id>.api.runpod.ai for load-balancing
#: endpoints) and the control plane (api.runpod.io). The key goes there over https only.
RUNPOD_DOMAINS = ("runpod.ai", "runpod.io")


def _under(url: str, base: str) -> bool:
    """``url`` is ``base`` or below it: same scheme, host and port, and a path inside base's path."""
    from urllib.parse import urlsplit

    u, b = urlsplit(url), urlsplit(base)
    try:
        same_port = u.port == b.port
    except ValueError:
        return False
    if (
        not same_port
        or u.scheme.lower() != b.scheme.lower()
        or (u.hostname or "").lower() != (b.hostname or "").lower()
    ):
        return False
    if u.username is not None or u.password is not None:
        return False
    base_path = b.path.rstrip("/")
    return u.path.rstrip("/") == base_path or u.path.startswith(base_path + "/")


def key_allowed(url: str, configured_base: str) -> tuple[bool, str]:
    """May the RunPod API key be sent to ``url``? (True, "") or (False, why not).

    Yes for RunPod's own hosts over https (``RUNPOD_DOMAINS`` and their subdomains, default
    port) and for anything under the endpoint base rpdeploy is configured with
    (``runpod.endpoint_url`` / ``RUNPOD_ENDPOINT_BASE_URL``: the emulator, a proxy you chose).
    Anything else gets no key unless ``smoke-test --send-key`` says so: a typo'd or hostile
    URL must not collect the account's key, and plain http would show it to the network.
    """
    from urllib.parse import urlsplit

    if _under(url, configured_base):
        return True, ""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = -1
    runpod = any(host == domain or host.endswith("." + domain) for domain in RUNPOD_DOMAINS)
    if runpod and parts.scheme.lower() == "https" and port in (None, 443) and parts.username is None:
        return True, ""
    if runpod:
        return False, f"{url} is not https on RunPod's default port"
    return False, f"{host or url} is neither RunPod's API nor the configured endpoint base ({configured_base})"


def resolve_target(config: Any, *, endpoint_id: str | None, url: str | None, local: bool | None = None) -> Target:
    """The endpoint to test: --url, --endpoint-id, the ledger's endpoint, or the one named in deploy.yaml."""
    from rpdeploy.runpod.invoke import detect_local

    if url:
        is_local = detect_local(url) if local is None else local
        if is_local:
            return Target(url.rstrip("/"), True, url, send_key=False, key_note="a local worker needs no key")
        if config is not None:
            configured = config.runpod.resolved_endpoint_url()
        else:
            from rpdeploy.config import DEFAULT_ENDPOINT_URL

            configured = (os.environ.get("RUNPOD_ENDPOINT_BASE_URL") or DEFAULT_ENDPOINT_URL).rstrip("/")
        allowed, why = key_allowed(url, configured)
        return Target(url.rstrip("/"), False, url, send_key=allowed, key_note=why)
    if config is None:
        raise ApiError("no endpoint to test", hint="pass --endpoint-id ID or --url URL, or run it next to deploy.yaml")
    if not endpoint_id:
        from rpdeploy.deploy.ledger import Ledger

        endpoint_id = Ledger.load(config.state_dir).output("endpoint", "endpoint_id")
    if not endpoint_id:
        from rpdeploy.runpod.deployment import connect, find_endpoint

        with connect(config) as cp:
            found = find_endpoint(cp.list_endpoints(), config.endpoint.name)
        if found is None:
            raise ApiError(
                f"no endpoint named {config.endpoint.name!r} on RunPod",
                hint="deploy it first (`rpdeploy deploy` or `rpdeploy endpoint create`), or pass --endpoint-id",
            )
        endpoint_id = found.id
    base = f"{config.runpod.resolved_endpoint_url()}/{endpoint_id}"
    return Target(base, False, str(endpoint_id))
