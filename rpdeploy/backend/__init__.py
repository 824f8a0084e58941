"""Point the backend (a Spring Boot service on a host) at the endpoint: env file, restart, check, rollback.

Owns: the backend's env file (parsing, merging, masking: ``envfile``), the values rpdeploy
hands the service (``values``), the host session and its POSIX sh scripts (``host``: this
machine or OpenSSH; ``session``; ``scripts/*.sh``, shipped in the wheel and checked by
shellcheck), configure/observe/rollback (``writes``), restart and check (``service``), the safe
sequence stages 9-10 run (``sequence``) and their results (``results``), and step 11's request
through the backend's own API (``integration``).

May import: the ground floor (``rpdeploy.config``, ``errors``, ``limits``, ``output``,
``secrets``), nothing else of rpdeploy. Never ``rpdeploy.commands``, docker or rich.

This package's API is re-exported here (``from rpdeploy import backend; backend.configure(...)``):
the backend is one concern whose parts are always used together, so commands and stages
name the package, not its modules. Internal helpers (``_name``) are imported from their module.

Two ways to hand the service its settings, chosen by ``backend.mode``:

* ``dotenv``: merge three keys (endpoint URL, API key, endpoint id) into the env file the
  service's unit already reads (``EnvironmentFile=``), keeping every other line as it was.
* ``systemd``: write the keys to a file of our own (``/etc/rpdeploy/<service>.env``) and a
  drop-in ``/etc/systemd/system/<service>.service.d/rpdeploy.conf`` that points the unit at
  it, then ``systemctl daemon-reload``.

Every write is atomic (a temp file in the same folder, then ``mv``), mode 0600, keeps the
owner of the file it replaces, and first keeps a timestamped backup of it (0600; or an
``.absent`` marker when there was none, so a rollback removes the file again). The write is
a compare-and-swap: if the file changed after we read it, nothing is written.

The safe sequence deploy stages 9-10 use, :func:`apply`: configure, restart, wait for the
service (systemd says active, ``health_url`` answers 2xx, polled *on the host*), and when it
does not come back: restore the backup, restart again, and raise an error that says both
what failed and whether the rollback brought the service back.

Secrets: the API key reaches the host only inside the env file's bytes on stdin (see
:mod:`rpdeploy.backend.host`); results carry it masked as ``****``; the previous key read from the
host's file is registered for redaction too.

What a diff or a confirmation shows of the env file (:func:`shown_in_clear`): the env file
holds the service's other settings too, a datasource URL with its password or a JWT signing
key among them, so every value is masked as ``****`` except

1. the endpoint URL and endpoint id rpdeploy writes (the API key, which it also writes, is
   always masked);
2. values that are plainly not secret, under a name that does not look like a credential
   (one containing KEY, TOKEN, SECRET, PASS, PWD, AUTH, CRED, CERT, PRIVATE, SALT, SIGN,
   JWT, DSN, COOKIE or SESSION, in any case): the empty value, a decimal number (at most 15
   digits before and after the point, optional sign), and a short word of 1 to 12 ASCII
   letters, ``_`` or ``-`` starting with a letter (``true``, ``off``, ``INFO``, ``prod``,
   ``en_US``). Anything with a digit next to letters, a ``/``, ``:``, ``@`` or ``=`` in it is
   masked, which covers URLs, paths, keys and passwords.

Comment lines are shown, except that the value of a commented-out assignment (``#KEY=...``)
follows the same rule; a line that is neither is masked whole. A changed masked value still
shows up as a changed line (its ``****`` lines differ), so a diff says *that* it changed.

Env file values are written so that systemd's ``EnvironmentFile=``, ``sh``'s ``.``, and the
common dotenv readers (python-dotenv, docker compose, dotenv-java) all read the same value:
unquoted when the value only has characters none of them treats specially
(``A-Za-z0-9_./:@%+,=-``: every URL, id and key RunPod hands out), otherwise in single quotes,
which all of them read literally; values with a single quote, a backslash, ``${`` (which
python-dotenv expands even inside single quotes) or a control character have no spelling
they all agree on and are refused, as are newlines and NUL.
"""

from __future__ import annotations

from rpdeploy.backend.envfile import (
    dropin_path,
    dropin_text,
    env_values,
    mask_env,
    merge_env,
    parse_env,
    render_value,
    shown_in_clear,
)
from rpdeploy.backend.results import (
    ApplyResult,
    BackendRolledBackError,
    CheckResult,
    ConfigureResult,
    HostEnv,
    KeyChange,
    RestartResult,
    RollbackResult,
)
from rpdeploy.backend.sequence import apply, restart_or_rollback
from rpdeploy.backend.service import check, restart
from rpdeploy.backend.session import FILE_TIMEOUT, KEEP_BACKUPS, MAX_ENV_FILE, cksum
from rpdeploy.backend.values import BackendValues, backend_key, check_endpoint_id, endpoint_url, properties
from rpdeploy.backend.writes import configure, observe, rollback

__all__ = [
    "FILE_TIMEOUT",
    "KEEP_BACKUPS",
    "MAX_ENV_FILE",
    "ApplyResult",
    "BackendRolledBackError",
    "BackendValues",
    "CheckResult",
    "ConfigureResult",
    "HostEnv",
    "KeyChange",
    "RestartResult",
    "RollbackResult",
    "apply",
    "backend_key",
    "check",
    "check_endpoint_id",
    "cksum",
    "configure",
    "dropin_path",
    "dropin_text",
    "endpoint_url",
    "env_values",
    "mask_env",
    "merge_env",
    "observe",
    "parse_env",
    "properties",
    "render_value",
    "restart",
    "restart_or_rollback",
    "rollback",
    "shown_in_clear",
]
