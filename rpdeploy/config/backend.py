"""The ``backend:`` and ``smoke_test:`` sections: the application pointed at the endpoint, and the checks.

Owns: :class:`BackendConfig` (SSH host, dotenv or systemd, restart and health), the env var
names the backend reads, :class:`IntegrationTestConfig` (one request through the backend's own
API; credential headers only as references) and :class:`SmokeTestConfig`.
"""

from __future__ import annotations

import re
import shlex
from enum import Enum
from typing import Any

from pydantic import Field, field_validator

from rpdeploy.config.refs import _CONTROL, _ENV_NAME, SecretRef, _Model, check_service_name
from rpdeploy.config.sections import EnvValue
from rpdeploy.limits import shorten

_HOST = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:]+\])(?::(?P<port>[0-9]{1,5}))?$"
)


class BackendMode(str, Enum):
    DOTENV = "dotenv"
    SYSTEMD = "systemd"


class BackendEnvNames(_Model):
    """Names of the env vars the backend reads (Spring's relaxed binding of runpod.*)."""

    endpoint_url: str = Field(default="RUNPOD_ENDPOINT_URL")
    api_key: str = Field(default="RUNPOD_API_KEY")
    endpoint_id: str = Field(default="RUNPOD_ENDPOINT_ID")

    @field_validator("endpoint_url", "api_key", "endpoint_id")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError(f"{shorten(value)} is not a valid environment variable name")
        return value


class HttpMethod(str, Enum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class SendFrom(str, Enum):
    HOST = "host"
    LOCAL = "local"


# Header names that carry credentials: their values must come from env/file references.
_CREDENTIAL_HEADER = re.compile(r"AUTH|KEY|TOKEN|SECRET|PASS|COOKIE|SESSION|SIGN|CRED", re.IGNORECASE)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
_JSON_PATH = re.compile(r"^(?:\$\.?)?(?:[A-Za-z_][\w-]*|\[\d+\])(?:\.[A-Za-z_][\w-]*|\.\d+|\[\d+\])*$")


class IntegrationExpect(_Model):
    """What the backend's answer must be for the integration test to pass."""

    status: int = Field(default=200, ge=100, le=599, description="HTTP status the backend must answer.")
    json_path: str | None = Field(
        default=None,
        description="Path into the JSON answer that must hold a non-empty value, like choices[0].message.content.",
    )
    contains: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="Text the answer must contain (the json_path value's text, when json_path is set).",
    )

    @field_validator("json_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not _JSON_PATH.match(value):
            raise ValueError(f"{shorten(value)} is not a path like answer, data.items[0].text or $.choices[0]")
        return value


class IntegrationTestConfig(_Model):
    """Step 11 through the backend: one request to its own API that exercises the model."""

    url: str = Field(description="The backend's API URL, e.g. http://localhost:8080/api/chat.")
    send_from: SendFrom = Field(
        default=SendFrom.HOST,
        description="host: sent on the backend host (over SSH, like health_url); local: from where rpdeploy runs.",
    )
    method: HttpMethod = Field(default=HttpMethod.POST, description="HTTP method.")
    headers: dict[str, EnvValue] = Field(
        default_factory=dict,
        description="Request headers; credentials as {env: NAME} or {file: PATH}, never literal.",
    )
    body: Any = Field(default=None, description="Request body: an object or list is sent as JSON, text as is.")
    expect: IntegrationExpect = Field(default_factory=IntegrationExpect, description="What the answer must be.")
    timeout: int = Field(default=120, ge=1, le=3600, description="Seconds the backend has to answer.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s]+$", value) or _CONTROL.search(value):
            raise ValueError(f"{shorten(value)} is not an http(s) URL")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, item in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{shorten(name)} is not an HTTP header name")
            if isinstance(item, str):
                if _CONTROL.search(item):
                    raise ValueError(f"header {name}: the value contains a control character or line break")
                if _CREDENTIAL_HEADER.search(name):
                    raise ValueError(
                        f"header {name} carries a credential but has a literal value; write {name}: {{env: NAME}} "
                        "so the value stays out of deploy.yaml"
                    )
        return value


class BackendConfig(_Model):
    """The application that calls the endpoint (a Spring Boot service on a host)."""

    host: str | None = Field(default=None, description="user@host[:port] reached over SSH; unset means this machine.")
    identity_file: str | None = Field(
        default=None, description="SSH private key file (default: your ssh config/agent)."
    )
    accept_new_host_key: bool = Field(
        default=False, description="Trust the host key on first contact (otherwise it must already be in known_hosts)."
    )
    mode: BackendMode = Field(
        default=BackendMode.DOTENV, description="dotenv: edit an env file; systemd: a unit drop-in."
    )
    service: str = Field(default="spring-boot", description="systemd unit name of the backend.")
    env_file: str | None = Field(
        default=None,
        description=(
            "Env file to write (default: /opt/<service>/.env for dotenv, /etc/rpdeploy/<service>.env for systemd)."
        ),
    )
    restart: str | None = Field(
        default=None, description="Restart command (default: sudo systemctl restart <service>)."
    )
    health_url: str | None = Field(default=None, description="URL that answers 2xx when the backend is healthy.")
    health_timeout: int = Field(
        default=120, ge=1, le=3600, description="Seconds to wait for the backend to be healthy."
    )
    env_names: BackendEnvNames = Field(default_factory=BackendEnvNames, description="Env var names the backend reads.")
    api_key: SecretRef | None = Field(
        default=None,
        description="The RunPod key the backend gets (default: runpod.api_key). A restricted key that can only "
        "call this endpoint keeps the deploy key off the host.",
    )
    integration_test: IntegrationTestConfig | None = Field(
        default=None,
        description="Step 11 through the backend: a request to its own API that must reach the model.",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None:
            match = _HOST.match(value)
            if not match:
                raise ValueError(f"{shorten(value)} is not user@host[:port]")
            port = match.group("port")
            if port is not None and not 0 < int(port) < 65536:
                raise ValueError(f"port {port} is out of range")
        return value

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        return check_service_name(value)

    @field_validator("env_file")
    @classmethod
    def _env_file(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("/", "~")) or _CONTROL.search(value)):
            raise ValueError("must be an absolute path on the backend host")
        return value

    @field_validator("restart")
    @classmethod
    def _restart(cls, value: str | None) -> str | None:
        # Tabs and line breaks make a multi-line script; other control characters have no business there.
        if value is not None and (not value.strip() or re.search(r"[\x00-\x08\x0b-\x1f\x7f]", value)):
            raise ValueError("must be a command (without control characters)")
        return value

    @field_validator("health_url")
    @classmethod
    def _health(cls, value: str | None) -> str | None:
        if value is not None and (not re.match(r"^https?://[^\s]+$", value) or _CONTROL.search(value)):
            raise ValueError(f"{shorten(value)} is not an http(s) URL")
        return value

    @property
    def resolved_env_file(self) -> str:
        if self.env_file:
            return self.env_file
        if self.mode is BackendMode.SYSTEMD:
            return f"/etc/rpdeploy/{self.service}.env"
        return f"/opt/{self.service}/.env"

    @property
    def restart_command(self) -> str:
        # "--" and quoting: the unit name is validated, and still never read as an option or two words.
        return self.restart or f"sudo systemctl restart -- {shlex.quote(self.service)}"


class SmokeTestConfig(_Model):
    """The request that proves the endpoint works."""

    prompt: str = Field(default="Reply with one short sentence: what is RunPod?", min_length=1, max_length=20000)
    max_tokens: int = Field(default=32, ge=1, le=32768, description="Always set: vLLM's completions default is 16.")
    timeout: int = Field(default=600, ge=1, le=7200, description="Seconds to wait, cold start included.")
    stream: bool = Field(default=False, description="Also check a streamed answer on the OpenAI route.")
