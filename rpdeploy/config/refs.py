"""Secret references, the base model every section derives from, and the field checks they share.

Owns: ``_Model`` (frozen, unknown keys forbidden), :class:`SecretRef` / :class:`ApiKeyRef` (a
secret is an env var name or a file, never a value), :func:`token_kind` (a pasted credential
where a name belongs) and the ``check_*`` validators other modules reuse (systemd service
names, display names, project-relative folders).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rpdeploy.errors import AuthError, ConfigError
from rpdeploy.limits import read_secret_file, shorten
from rpdeploy.secrets import Secret

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UPPER_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# systemd's unit name characters (src/basic/unit-name.c, VALID_CHARS plus the instance '@'),
# without the backslash of its \xNN escapes: the name also ends up in file paths.
_SERVICE = re.compile(r"^[A-Za-z0-9:_.@-]+$")
#: The longest unit name systemd takes is 255 characters, ".service" included (UNIT_NAME_MAX).
_UNIT_NAME_MAX = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


#: Prefixes of credentials people paste where the NAME of a variable belongs, and what each is.
#: RunPod API keys start with rpa_ (docs public-endpoints/ai-coding-tools.mdx: "rpa_YOUR_API_KEY"),
#: Hugging Face user tokens with hf_, GitHub tokens with ghp_/gho_/ghs_/ghu_/github_pat_.
_TOKEN_PREFIXES = (
    ("rpa_", "a RunPod API key"),
    ("hf_", "a Hugging Face token"),
    ("github_pat_", "a GitHub token"),
    ("ghp_", "a GitHub token"),
    ("gho_", "a GitHub token"),
    ("ghs_", "a GitHub token"),
    ("ghu_", "a GitHub token"),
)
# A variable name is words joined by "_"; 32+ characters of letters and digits without one is a key.
_RANDOM_LOOKING = re.compile(r"^(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{32,}$")


def token_kind(name: str) -> str | None:
    """What credential ``name`` looks like ("a RunPod API key"), or None for a plausible variable name."""
    lower = name.lower()
    for prefix, kind in _TOKEN_PREFIXES:
        if lower.startswith(prefix) and len(name) >= len(prefix) + 16:
            return kind
    return "a key" if _RANDOM_LOOKING.match(name) else None


def check_service_name(value: str) -> str:
    """``backend.service`` as systemd takes it for a service to restart, minus what rpdeploy cannot use safely.

    systemd (man systemd.unit; src/basic/unit-name.c ``unit_name_is_valid``): ASCII letters,
    digits and ``: _ . - \\``, an optional ``@instance``, a non-empty prefix, 255 characters
    at most with the ``.service`` suffix; ``name@.service`` is a template, which cannot be
    restarted. rpdeploy also refuses a leading ``-`` (systemctl would read it as an option),
    a leading ``.`` or ``..`` anywhere (the name is part of ``/opt/<service>/.env`` and the
    drop-in's path) and the backslash of systemd's ``\\xNN`` escapes.
    """
    name = value.removesuffix(".service")
    if not name or not _SERVICE.match(name):
        raise ValueError(
            f"{shorten(value)} is not a systemd service name (letters, digits and : _ . - @, like spring-boot)"
        )
    if len(name) + len(".service") > _UNIT_NAME_MAX:
        raise ValueError(f"a systemd unit name has at most {_UNIT_NAME_MAX} characters, .service included")
    if name.startswith(("-", ".", "@")) or ".." in name:
        raise ValueError(f"{shorten(value)}: a service name may not start with '-', '.' or '@', nor contain '..'")
    if name.endswith("@"):
        raise ValueError(f"{shorten(value)} is a template unit; name an instance (like app@1)")
    return name


# Unicode categories a display name must not contain: control, format (bidi overrides,
# zero-width), surrogate, private-use and unassigned characters, and line/paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def check_display_name(value: str) -> str:
    """An endpoint or template name: printable text only.

    RunPod takes 3 to 191 characters (runpodctl AGENTS.md, REST v1 ``name`` maxLength) and
    documents no character set (REST v2's OpenAPI: ``minLength: 1`` only), so letters of any
    script are fine. rpdeploy refuses what could disguise the name where it is shown (a
    terminal, a CI job summary): control characters (ESC, BEL, newlines), bidi overrides and
    other invisible format characters, and whitespace other than a plain space or at either end.
    """
    for char in value:
        if unicodedata.category(char) in _HIDDEN_CATEGORIES or (char.isspace() and char != " "):
            raise ValueError(f"contains the invisible or control character U+{ord(char):04X}; use printable text")
    if value != value.strip():
        raise ValueError("must not start or end with a space")
    return value


def check_project_path(value: str) -> str:
    """A folder deploy.yaml names for rpdeploy to write into: relative, inside the project, not ours."""
    text = value.replace("\\", "/")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if text.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", text) or ".." in parts:
        raise ValueError(
            f"{shorten(value)} must be a folder inside the project: a relative path without '..' (like worker)"
        )
    if parts and parts[0] in (".rpdeploy", ".git"):
        raise ValueError(f"{shorten(value)} is rpdeploy's or git's own folder; pick another (like worker)")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, validate_default=True)


# --- secrets -----------------------------------------------------------------------------


class SecretRef(_Model):
    """Where a secret lives: ``{env: NAME}``, ``{file: PATH}``, or the shorthand ``NAME``."""

    env: str | None = Field(default=None, description="Name of the environment variable holding the secret.")
    file: str | None = Field(default=None, description="Path of a file whose content is the secret.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("env:"):
                return {"env": text[4:].strip()}
            if text.startswith("file:"):
                return {"file": text[5:].strip()}
            if _UPPER_ENV_NAME.match(text):
                return {"env": text}
            raise ValueError(
                "this looks like a literal secret; deploy.yaml holds only references: "
                "write the NAME of an environment variable (e.g. HF_TOKEN), {env: NAME} or {file: PATH}"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env: or file:")
        if self.env is not None and not _ENV_NAME.match(self.env):
            raise ValueError(f"{shorten(self.env)} is not a valid environment variable name")
        if self.env is not None and (kind := token_kind(self.env)):
            # Never echoed: it is most likely the secret itself.
            raise ValueError(
                f"env: takes the NAME of an environment variable, and this looks like {kind} itself; write "
                "{env: NAME} (e.g. RUNPOD_API_KEY) and export NAME=... outside deploy.yaml"
            )
        if self.file is not None and not self.file.strip():
            raise ValueError("file: must not be empty")
        return self

    def describe(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"

    def resolve(self, *, base_dir: Path, environ: Mapping[str, str] | None = None, field: str = "") -> Secret:
        """Read the secret. Raises ConfigError naming the reference (never the value)."""
        environ = os.environ if environ is None else environ
        label = f"{field} ({self.describe()})" if field else self.describe()
        if self.env is not None:
            value = environ.get(self.env, "")
            if not value:
                raise ConfigError(
                    f"{label}: environment variable {self.env} is not set",
                    hint=f"export {self.env}=... (in CI, from the pipeline's secret store)",
                )
            return Secret(value, f"env:{self.env}")
        assert self.file is not None
        path = Path(os.path.expanduser(self.file))
        if not path.is_absolute():
            path = base_dir / path
        return Secret(read_secret_file(path, label=label), f"file:{self.file}")


class ApiKeyRef(SecretRef):
    """Where the RunPod API key is. A key that is not there is an AuthError (exit 8), as the
    exit-code table says for a missing key, not a config error."""

    def resolve(self, *, base_dir: Path, environ: Mapping[str, str] | None = None, field: str = "") -> Secret:
        try:
            return super().resolve(base_dir=base_dir, environ=environ, field=field)
        except ConfigError as exc:
            raise AuthError(exc.message, hint=exc.hint) from None


def _secret_ref(default_env: str) -> Any:
    return Field(default_factory=lambda: SecretRef(env=default_env))
