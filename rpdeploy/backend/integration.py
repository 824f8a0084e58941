"""Step 11 through the backend: one request to the backend's own API that must reach the model.

The seed's last step, "연동 테스트", is a call to the API after the backend was pointed at the
endpoint and restarted. The endpoint check (rpdeploy/deploy/smoke.py) proves the endpoint answers;
this proves the *integration*: the backend, with the env rpdeploy just gave it, reaches the
model. deploy.yaml's ``backend.integration_test`` describes the request (method, URL, headers
from env references, body) and what the answer must be (a status, and a non-empty value at a
JSON path and/or a substring).

Where it is sent from (``send_from``): ``host`` runs it on the backend host, over the same SSH
path as the health check, so ``http://localhost:8080/...`` means the service itself; ``local``
sends it from where rpdeploy runs. On the host, the request travels like every other secret in
rpdeploy.backend.host: headers and body on stdin, into files of mode 0600 in a private temp folder
that is removed afterwards; argv holds only the URL, the method, a timeout and byte counts. The
host needs curl (``-H @file``, curl >= 7.55) or python3.

Only a preview of the answer is kept (redacted, cut to 200 characters): it is the model's
text, shown so a person can see the backend really answered.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rpdeploy.backend.session import _script
from rpdeploy.errors import BackendError, ConfigError
from rpdeploy.output import NullReporter, Reporter
from rpdeploy.secrets import Secret, redact

if TYPE_CHECKING:
    from rpdeploy.config import Config, IntegrationTestConfig

#: The most of the backend's answer read back (from the host or over HTTP).
MAX_ANSWER = 1024 * 1024
PREVIEW = 200

# Sends one request (rpdeploy/backend/scripts/integration.sh; its header says the protocol).
_SEND = _script("integration.sh")


@dataclass(frozen=True)
class IntegrationResult:
    passed: bool
    url: str
    where: str  # "on deploy@host" or "from this machine"
    status: int | None  # None: no answer at all
    seconds: float
    message: str  # what matched, or why it failed
    preview: str | None = None  # the start of the answer (redacted)

    def describe(self) -> str:
        answered = f"HTTP {self.status}" if self.status else "no answer"
        return f"{self.url} ({self.where}): {answered} in {self.seconds:.1f}s: {self.message}"


def _headers(test: IntegrationTestConfig, config: Config, environ: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in test.headers.items():
        if isinstance(value, str):
            out[name] = value
        else:
            secret: Secret = value.resolve(
                base_dir=config.base_dir, environ=environ, field=f"backend.integration_test.headers.{name}"
            )
            if re.search(r"[\r\n\x00]", secret.reveal()):
                raise ConfigError(f"backend.integration_test.headers.{name}: the value holds a line break")
            out[name] = secret.reveal()
    return out


def _body(test: IntegrationTestConfig, headers: dict[str, str]) -> bytes:
    if test.body is None:
        return b""
    if isinstance(test.body, str):
        return test.body.encode("utf-8")
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    return json.dumps(test.body).encode("utf-8")


_STEP = re.compile(r"\.?([A-Za-z_][\w-]*)|\.?\[?(\d+)\]?")


def find(document: Any, path: str) -> tuple[bool, Any]:
    """The value at a path like ``choices[0].message.content`` (``$.`` optional): (found, value)."""
    rest = path.removeprefix("$").lstrip(".")
    value = document
    position = 0
    while position < len(rest):
        match = _STEP.match(rest, position)
        if match is None or match.end() == position:
            return False, None
        position = match.end()
        key, index = match.group(1), match.group(2)
        if key is not None:
            if not isinstance(value, Mapping) or key not in value:
                return False, None
            value = value[key]
        else:
            number = int(index)
            if not isinstance(value, list) or number >= len(value):
                return False, None
            value = value[number]
    return True, value


def _empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, (list, dict)) and not value)


def judge(test: IntegrationTestConfig, status: int | None, body: bytes) -> tuple[bool, str]:
    """Does the answer meet ``test.expect``? (passed, what matched or why not)."""
    expect = test.expect
    text = body.decode("utf-8", errors="replace")
    if status is None or status == 0:
        return False, "the backend did not answer"
    if status != expect.status:
        detail = redact(text.strip())[:PREVIEW]
        return False, f"expected HTTP {expect.status}, got {status}" + (f": {detail}" if detail else "")
    subject = text
    found = ""
    if expect.json_path is not None:
        try:
            document = json.loads(text)
        except ValueError:
            return False, f"the answer is not JSON, so {expect.json_path} is not in it: {redact(text)[:PREVIEW]}"
        ok, value = find(document, expect.json_path)
        if not ok:
            return False, f"the answer has no {expect.json_path}: {redact(text)[:PREVIEW]}"
        if _empty(value):
            return False, f"{expect.json_path} is empty in the answer"
        subject = value if isinstance(value, str) else json.dumps(value)
        found = f"{expect.json_path} = {redact(subject)[:80]!r}"
    if expect.contains is not None and expect.contains not in subject:
        where = expect.json_path or "the answer"
        return False, f"{where} does not contain {expect.contains!r}: {redact(subject)[:PREVIEW]}"
    if expect.contains is not None:
        found = (found + "; " if found else "") + f"contains {expect.contains!r}"
    return True, found


def run_integration_test(
    config: Config, *, reporter: Reporter | None = None, environ: Mapping[str, str] | None = None
) -> IntegrationResult:
    """Send ``backend.integration_test`` and judge the answer. Raises only when it could not be sent."""
    reporter = reporter or NullReporter()
    backend = config.backend
    if backend is None or backend.integration_test is None:
        raise ConfigError("deploy.yaml has no backend.integration_test")
    test = backend.integration_test
    headers = _headers(test, config, environ)
    body = _body(test, headers)
    started = time.monotonic()
    with reporter.status(f"integration test: {test.method.value} {test.url}"):
        if test.send_from.value == "local":
            where = "from this machine"
            status, answer, error = _send_local(test, headers, body)
        else:
            from rpdeploy.backend import host as remote

            host = remote.host_for(backend)
            where = f"on {host.label}"
            status, answer, error = _send_on_host(host, test, headers, body)
    seconds = time.monotonic() - started
    passed, message = judge(test, status, answer)
    if error and not passed and not status:
        message = f"{message} ({redact(error)[:300]})"
    preview = redact(answer.decode("utf-8", errors="replace"))[:PREVIEW] or None
    return IntegrationResult(passed, test.url, where, status or None, round(seconds, 3), message, preview)


def _send_local(test: IntegrationTestConfig, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
    import httpx

    try:
        with (
            httpx.Client(timeout=test.timeout) as client,
            client.stream(test.method.value, test.url, headers=headers, content=body or None) as response,
        ):
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) >= MAX_ANSWER:
                    break
            return response.status_code, data[:MAX_ANSWER], ""
    except httpx.HTTPError as exc:
        return 0, b"", f"{type(exc).__name__}: {exc}"


def _send_on_host(
    host: Any, test: IntegrationTestConfig, headers: dict[str, str], body: bytes
) -> tuple[int, bytes, str]:
    lines = "".join(f"{name}: {value}\n" for name, value in headers.items()).encode("utf-8")
    done = host.run(
        _SEND,
        [test.url, test.method.value, str(test.timeout), str(len(lines)), str(len(body)), str(MAX_ANSWER)],
        data=lines + body,
        timeout=test.timeout + 60,
        what="the integration test",
    )
    if done.returncode == 6:
        raise BackendError(
            f"no curl or python3 on {host.label} to send the integration test",
            hint="install curl there, or set backend.integration_test.send_from: local",
        )
    if done.returncode != 0:
        raise BackendError(f"the integration test could not be sent on {host.label}: {done.stderr_tail}")
    head, _, answer = done.stdout.partition(b"\n@body\n")
    status, error = 0, ""
    for line in head.decode("utf-8", errors="replace").splitlines():
        if line.startswith("@status "):
            try:
                status = int(line.split(" ", 1)[1].strip() or 0)
            except ValueError:
                status = 0
        elif line.startswith("@error "):
            error = line.split(" ", 1)[1]
    return status, answer, error
