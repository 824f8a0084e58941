"""The exceptions rpdeploy raises on purpose, and the exit code each one means.

Every error a user can cause or fix is an ``RpdeployError``; anything else is a bug and
crashes with a traceback (without locals: see ``cli.py``). Third-party exceptions are
translated where the library is called (``raise ...Error(...) from exc``), so nothing from
docker, httpx or subprocess reaches ``commands/``.

    RpdeployError                     1  something we understood went wrong
    ├── ConfigError                   3  deploy.yaml missing or invalid, secret reference unset,
    │   └── MissingValueError         3  a value a prompt would ask for, in non-interactive mode
    ├── FileConflictError             4  refusing to overwrite a file the user changed
    ├── TemplateError                 4  a template failed to render (unsafe value, bad template)
    ├── DockerError                   5  engine unreachable, build failed, not enough disk
    ├── RegistryError                 6  registry login or push failed
    ├── ApiError                      7  RunPod control plane / invoke API failed
    │   ├── NotOursError              7  a same-named endpoint/template is not this deployment's
    │   ├── ApiRetiredError           7  RunPod answered that the API used (GraphQL) is retired
    │   └── AuthError                 8  RunPod API key missing, invalid or without permission
    ├── BackendError                  9  SSH, env file, restart or health check of the backend
    │   └── BackendRolledBackError    9  ...and the previous env was restored (rpdeploy.backend)
    ├── SmokeTestError               10  the new release did not answer correctly (before the backend)
    ├── PreflightError               11  a check before a slow step failed
    │   └── DoesNotFitError          11  the model does not fit the GPU (rpdeploy.preflight)
    ├── LockError                    12  another deploy of this config is running
    ├── IntegrationTestError         13  the backend did not reach the model (stage integration-test);
    │                                    its previous env was restored
    ├── DeclinedError                14  a confirmation was answered no: nothing was changed
    ├── Interrupted                 130  Ctrl-C (at a prompt too): re-run to resume
    └── StageError          (its cause)  a deploy stage failed; names the stage

Exit code 2 is Click's usage error (under ``--json`` it is printed as the same JSON error
document, type ``UsageError``); ``plan --detailed-exitcode`` exits 20 when changes are pending.
The table is repeated in the README and pinned by ``tests/test_contract.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_DECLINED = 14
EXIT_CHANGES_PENDING = 20
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Location:
    """Where in a file an error is: 1-based line and column."""

    path: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.path
        if self.column is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.column}"


class RpdeployError(Exception):
    """Base class: an error with a message meant for the user, an exit code and a hint."""

    exit_code: int = 1
    default_hint: ClassVar[str | None] = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The error as the ``error`` member of a ``--json`` document."""
        return {
            "type": type(self).__name__,
            "exit_code": self.exit_code,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in deploy.yaml: where, which field, what was wrong."""

    location: Location
    field: str
    message: str

    def __str__(self) -> str:
        field = f"{self.field}: " if self.field else ""
        return f"{self.location}: {field}{self.message}"


class ConfigError(RpdeployError):
    """deploy.yaml is missing or invalid; every problem found is listed, with its location."""

    exit_code = 3

    def __init__(self, message: str, *, issues: tuple[ConfigIssue, ...] = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.issues = issues

    def __str__(self) -> str:
        if not self.issues:
            return self.message
        lines = [self.message] + [f"  {issue}" for issue in self.issues]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["issues"] = [
            {
                "path": issue.location.path,
                "line": issue.location.line,
                "column": issue.location.column,
                "field": issue.field,
                "message": issue.message,
            }
            for issue in self.issues
        ]
        return data


class MissingValueError(ConfigError):
    """A value that a prompt would ask for is missing and we may not prompt (CI, no TTY)."""

    def __init__(self, name: str, *, flag: str | None = None) -> None:
        how = f"pass {flag}" if flag else "set it in deploy.yaml"
        super().__init__(
            f"missing value: {name} (not prompting: no terminal, or CI is set)",
            hint=f"{how}, or run in a terminal to be asked",
        )
        self.name = name


class FileConflictError(RpdeployError):
    """A generated file was changed by the user; we never overwrite it silently."""

    exit_code = 4
    default_hint = "keep your edits (nothing was written), or re-run with --force to back them up and overwrite"


class TemplateError(RpdeployError):
    """A template could not be rendered safely."""

    exit_code = 4


class DockerError(RpdeployError):
    """The docker engine is unreachable, a build failed, or a build preflight failed."""

    exit_code = 5


class RegistryError(RpdeployError):
    """Logging in to or pushing to the image registry failed."""

    exit_code = 6


class ApiError(RpdeployError):
    """A RunPod API call failed. ``status`` is the HTTP status when there was one."""

    exit_code = 7

    def __init__(
        self, message: str, *, hint: str | None = None, status: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["status"] = self.status
        return data


class NotOursError(ApiError):
    """An endpoint or template with the name deploy.yaml gives exists on RunPod, but nothing
    says it is this deployment's (no ownership mark, or another deployment's). Exit 7."""


class ApiRetiredError(ApiError):
    """RunPod answered that the API rpdeploy spoke is gone (GraphQL's retirement: HTTP 410, or its
    deprecation error). Exit 7; the message is one line and the hint names the switch."""

    default_hint = "set `runpod.api: rest` in deploy.yaml (or RPDEPLOY_RUNPOD_API=rest) to use RunPod's REST API v2"


class AuthError(ApiError):
    """The RunPod API key is missing, invalid, or lacks permission."""

    exit_code = 8


class BackendError(RpdeployError):
    """Configuring, restarting or checking the backend service failed."""

    exit_code = 9


class SmokeTestError(RpdeployError):
    """The endpoint did not answer as it should."""

    exit_code = 10


class PreflightError(RpdeployError):
    """A check before a slow or costly step failed."""

    exit_code = 11


class IntegrationTestError(RpdeployError):
    """The request through the backend's own API did not reach the model; the message says whether
    the previous env was restored and the same request passes with it."""

    exit_code = 13


class LockError(RpdeployError):
    """Another rpdeploy process holds the deploy lock for this config."""

    exit_code = 12


class DeclinedError(RpdeployError):
    """A question was answered "no" (or the input ended before an answer): nothing was changed."""

    exit_code = EXIT_DECLINED
    default_hint = "nothing was changed; --yes answers the question without asking"


class Interrupted(RpdeployError):
    """Ctrl-C, at a prompt or while working. Nothing is left half-written."""

    exit_code = EXIT_INTERRUPTED
    default_hint = "run the command again to resume"


class StageError(RpdeployError):
    """A deploy stage failed. Exits with its cause's code so CI sees the real reason."""

    def __init__(self, stage: str, cause: RpdeployError) -> None:
        super().__init__(f"stage {stage!r} failed: {cause.message}", hint=cause.hint)
        self.stage = stage
        self.cause = cause
        self.exit_code = cause.exit_code

    def __str__(self) -> str:
        return f"stage {self.stage!r} failed: {self.cause}"

    def to_dict(self) -> dict[str, Any]:
        data = self.cause.to_dict()
        data["stage"] = self.stage
        data["message"] = self.message
        return data


#: The documented exit-code table: (code, meaning). README and the contract test use it.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success"),
    (RpdeployError.exit_code, "unexpected error (a bug: please report the traceback)"),
    (EXIT_USAGE, "usage error: unknown command, bad option or argument"),
    (ConfigError.exit_code, "deploy.yaml invalid, secret reference unset, or a required value missing in CI"),
    (FileConflictError.exit_code, "a generated file was edited by you (not overwritten), or a template failed"),
    (DockerError.exit_code, "docker engine unreachable, image build failed, base image unpullable, or not enough disk"),
    (RegistryError.exit_code, "registry credentials missing or refused, registry unreachable, or push failed"),
    (
        ApiError.exit_code,
        "RunPod API error (validation, network, rate limit, server error), or a same-named object that is not "
        "this deployment's",
    ),
    (AuthError.exit_code, "RunPod API key missing, invalid or without permission"),
    (BackendError.exit_code, "backend host: SSH, env file, restart or health check failed"),
    (
        SmokeTestError.exit_code,
        "endpoint check (smoke test) failed: the new release did not answer correctly; the backend was not touched",
    ),
    (PreflightError.exit_code, "preflight failed: the model does not fit the GPU, or a doctor check failed"),
    (LockError.exit_code, "another deploy of this config is running"),
    (
        IntegrationTestError.exit_code,
        "integration test through the backend failed; the backend was rolled back to its previous env",
    ),
    (DeclinedError.exit_code, "a confirmation was answered no: nothing was changed"),
    (EXIT_CHANGES_PENDING, "plan --detailed-exitcode: changes are pending (not an error)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C, at a prompt too); re-run to resume"),
)
