"""`rpdeploy doctor`: everything a deploy needs, checked in one go, each with its fix.

Every check runs even when an earlier one failed, so one run lists every problem. A check
that does not apply to this deploy.yaml (docker for worker-vllm, SSH without a backend)
is reported as skipped, not as passed.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpdeploy.errors import RpdeployError
from rpdeploy.output import NullReporter, Reporter

if TYPE_CHECKING:
    from rpdeploy.config import Config


@dataclass(frozen=True)
class DoctorCheck:
    name: str
    status: str  # ok | failed | skipped
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class DoctorResult:
    checks: tuple[DoctorCheck, ...]

    @property
    def ok(self) -> bool:
        return all(check.status != "failed" for check in self.checks)


def _check(name: str, probe: Callable[[], str], fix: str | None = None) -> DoctorCheck:
    try:
        return DoctorCheck(name, "ok", probe())
    except RpdeployError as exc:
        return DoctorCheck(name, "failed", exc.message, exc.hint or fix)


def run_doctor(
    config: Config, *, environ: Mapping[str, str] | None = None, reporter: Reporter | None = None
) -> DoctorResult:
    reporter = reporter or NullReporter()
    checks = [
        DoctorCheck(
            "python",
            "ok" if sys.version_info >= (3, 10) else "failed",
            f"Python {platform.python_version()}",
            "rpdeploy needs Python 3.10 or newer",
        ),
        DoctorCheck("deploy.yaml", "ok", f"valid: {config.method.value}, {config.model.name} on {config.endpoint.gpu}"),
        _model_access_check(config, environ),
    ]
    if config.image is not None:
        checks.append(_repository_check(config))
    checks += _runpod_checks(config, environ, reporter)
    if config.method.builds_image:
        checks += _docker_checks(config, environ, reporter)
    else:
        checks.append(DoctorCheck("docker engine", "skipped", "worker-vllm builds no image"))
        checks.append(DoctorCheck("registry credentials", "skipped", "worker-vllm pushes no image"))
    checks.append(_backend_check(config, environ))
    return DoctorResult(tuple(checks))


def _model_access_check(config: Config, environ: Mapping[str, str] | None) -> DoctorCheck:
    """Can workers download the model: a gated one needs model.hf_token, and its variable set."""
    from rpdeploy.errors import PreflightError
    from rpdeploy.preflight.hub import token_problem

    def access() -> str:
        token = config.model.hf_token
        if token is not None:
            token.resolve(base_dir=config.base_dir, environ=environ, field="model.hf_token")
            return f"model.hf_token ({token.describe()}) is set"
        if config.model.is_path:
            return f"{config.model.name} is in the image"
        problem = token_problem(config, environ=environ)
        if problem is not None:
            raise PreflightError(problem.removeprefix("model.hf_token: "), hint="set model.hf_token in deploy.yaml")
        return f"{config.model.name} needs no token (not gated)"

    return _check("model access", access)


def _repository_check(config: Config) -> DoctorCheck:
    from rpdeploy.build.pipeline import refuse_placeholder

    def repository() -> str:
        assert config.image is not None
        refuse_placeholder(config.image)
        return config.image.name

    return _check("image repository", repository)


def _runpod_checks(config: Config, environ: Mapping[str, str] | None, reporter: Reporter) -> list[DoctorCheck]:
    from rpdeploy.runpod.deployment import connect

    try:
        cp = connect(config, environ, reporter=reporter, timeout=15)
    except RpdeployError as exc:
        return [
            DoctorCheck("RunPod API key", "failed", exc.message, exc.hint),
            DoctorCheck("GPU type", "skipped", "needs a working API key"),
        ]
    with cp:

        def key() -> str:
            account = cp.account()
            who = account.email or account.id or "not shown: GraphQL is retired"
            api = config.runpod.resolved_api(environ).value
            return f"accepted by {config.runpod.resolved_api_url(environ)} over {api} (account {who})"

        key_check = _check("RunPod API key", key)
        if key_check.status == "failed":
            return [key_check, DoctorCheck("GPU type", "skipped", "needs a working API key")]

        def gpu() -> str:
            from rpdeploy.errors import ApiError

            wanted = config.endpoint.gpu_type
            pools = cp.gpu_pools()
            pool = next((pid for pid, members in pools.items() if wanted.id in members), None)
            if pool is None:
                raise ApiError(
                    f"RunPod has no serverless pool with {wanted.id}",
                    hint=f"set endpoint.gpu to a type RunPod offers; pools now: {', '.join(sorted(pools)) or 'none'}",
                )
            return f"{wanted.id} is in pool {pool}"

        return [key_check, _check("GPU type", gpu)]


def _docker_checks(config: Config, environ: Mapping[str, str] | None, reporter: Reporter) -> list[DoctorCheck]:
    from rpdeploy.build.engine import connect
    from rpdeploy.build.push import RetryPolicy, verify_login
    from rpdeploy.build.registry_auth import login_hint, resolve_registry_auth

    assert config.image is not None
    try:
        api = connect(environ)
    except RpdeployError as exc:
        return [
            DoctorCheck("docker engine", "failed", exc.message, exc.hint),
            DoctorCheck("registry credentials", "skipped", "needs the docker engine"),
        ]
    try:
        version = api.version()
        engine = DoctorCheck(
            "docker engine",
            "ok",
            f"Docker {version.get('Version', '?')} ({version.get('Os', '?')}/{version.get('Arch', '?')})",
        )

        def login() -> str:
            from rpdeploy.errors import RegistryError

            assert config.image is not None
            auth = resolve_registry_auth(config.image, base_dir=config.base_dir, environ=environ)
            if auth is None:
                raise RegistryError(
                    f"no credentials for {config.image.registry}", hint=login_hint(config.image.registry)
                )
            verify_login(api, auth, retry=RetryPolicy(attempts=1), reporter=reporter)
            return f"{config.image.registry} accepts the login from {auth.source}"

        return [engine, _check("registry credentials", login)]
    finally:
        api.close()


def _backend_check(config: Config, environ: Mapping[str, str] | None) -> DoctorCheck:
    from rpdeploy.backend import host as remote

    backend = config.backend
    if backend is None:
        return DoctorCheck("backend host", "skipped", "no backend: section")

    def reach() -> str:
        host = remote.host_for(backend, environ=environ, connect_timeout=10)
        host.run("true", what="reach the backend host")
        return f"{host.label} answers over {'SSH' if backend.host else 'a local shell'}"

    return _check("backend host", reach)


def format_doctor(result: DoctorResult) -> str:
    width = max(len(check.name) for check in result.checks)
    marks = {"ok": "ok  ", "failed": "FAIL", "skipped": "skip"}
    lines = []
    for check in result.checks:
        lines.append(f"{marks[check.status]}  {check.name:<{width}}  {check.detail}")
        if check.status == "failed" and check.fix:
            lines.append(f"      {'':<{width}}  fix: {check.fix}")
    lines.append("")
    lines.append("All good." if result.ok else "Some checks failed: see the fixes above.")
    return "\n".join(lines)
