"""Where backend commands run: this machine, or a host reached with the system OpenSSH client.

Both kinds of :class:`Host` run a POSIX ``sh`` script with positional arguments, and nothing
else. The script itself and any data (file contents, the API key) travel on **stdin**; argv
on either side only ever holds a fixed bootstrap one-liner, the script's length and the
arguments (paths, unit names, URLs), which are not secret. So the key never shows up in
``/proc/*/cmdline``, ``ps``, an audit log of execve, or a shell history (the remote side runs
``sh -c`` non-interactively, which keeps none).

Over SSH we call the ``ssh`` binary rather than a Python SSH library, so ``~/.ssh/config``,
agents, ``ProxyJump`` and hardware keys work exactly as they do for the user's own ``ssh``.
We only add what automation needs: batch mode (never prompt), host keys verified (new ones
accepted only when the user said so), a connect timeout, and no forwarding of anything.
``RPDEPLOY_SSH_CONFIG`` names an ssh_config file to use instead of the user's (``ssh -F``),
for CI jobs that generate one with their own ``UserKnownHostsFile``.

Errors are translated here, where ssh and subprocess are called: an unknown or changed host
key, a refused login, a refused/timed out connection, and sudo refusing to run without a
password each become a :class:`~rpdeploy.errors.BackendError` with a hint. What the remote
side prints is untrusted text: callers show it with ``reporter.log_line`` (never as markup),
and it is redacted before it is stored in an error.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from rpdeploy.errors import BackendError
from rpdeploy.secrets import redact

if TYPE_CHECKING:
    from rpdeploy.config import BackendConfig

#: Seconds ssh may take to open the TCP connection and finish the SSH handshake.
DEFAULT_CONNECT_TIMEOUT = 10
#: Environment variable naming an ssh_config file to use instead of ~/.ssh/config (``ssh -F``).
SSH_CONFIG_ENV = "RPDEPLOY_SSH_CONFIG"
#: Exit code the bootstrap uses when the script arrived incomplete (ssh died mid-transfer).
EXIT_TRUNCATED = 97

# The last line of every script. The bootstrap evaluates the script only when it ends with
# this, so a connection that drops mid-transfer can never run the first half of a script.
_SCRIPT_END = "# rpdeploy-script-end"

_HOST_KEY_CHANGED = re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed", re.IGNORECASE)
_HOST_KEY_FAILED = re.compile(r"Host key verification failed", re.IGNORECASE)
_PERMISSION_DENIED = re.compile(r"Permission denied \((?P<methods>[^)]*)\)")
_REFUSED = re.compile(r"Connection refused", re.IGNORECASE)
_TIMED_OUT = re.compile(r"timed out|Operation timed out", re.IGNORECASE)
_RESOLVE = re.compile(r"Could not resolve hostname|Name or service not known|nodename nor servname", re.IGNORECASE)
_NO_ROUTE = re.compile(r"No route to host|Network is unreachable|Host is unreachable", re.IGNORECASE)
_CLOSED = re.compile(r"Connection (closed|reset) by|kex_exchange_identification|Broken pipe", re.IGNORECASE)
_SUDO_REFUSED = re.compile(
    r"sudo: (a password is required|a terminal is required|.*not in the sudoers file|.*not allowed to)"
    r"|sudo: (command )?not found|sudo: not found",
    re.IGNORECASE,
)


def bootstrap(script_length: int) -> str:
    """The only command line either side sees: read the script (its exact byte count) from stdin, run it.

    One line, no newlines and no backslashes, so any login shell passes it to ``sh`` intact.
    ``dd bs=1`` reads byte by byte and therefore never swallows the data that follows the
    script on stdin; that data is what the script then reads.
    """
    return (
        f"S=$(dd bs=1 count={script_length} 2>/dev/null) && "
        f'case "$S" in *"{_SCRIPT_END}") eval "$S" ;; *) exit {EXIT_TRUNCATED} ;; esac'
    )


def seal(script: str) -> bytes:
    """The script as sent: ending with the marker the bootstrap checks."""
    return (script.rstrip("\n") + "\n" + _SCRIPT_END).encode("utf-8")


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of ssh, sh and the restart command: an allow-list of ours (see :mod:`rpdeploy.secrets`).

    ``RUNPOD_API_KEY`` is usually an env var of ours, and deploy.yaml may name secrets under
    any name (``{env: OPAQUE_VAR}``); ssh, sudo and the restart command have no business
    inheriting them (a ``SendEnv *`` in someone's ssh config would even send them). Only
    the basics pass (PATH, HOME, locale, the ssh agent socket, proxies...), and only
    values holding no registered secret.
    """
    from rpdeploy.secrets import child_environment as allowed

    return allowed(os.environ if environ is None else environ)


@dataclass(frozen=True)
class Completed:
    """How a script ended: exit code, stdout (bytes, may hold file contents), stderr (redacted)."""

    returncode: int
    stdout: bytes
    stderr: str
    seconds: float

    def __repr__(self) -> str:
        # stdout may carry an env file read from the host: never show it.
        return f"Completed(returncode={self.returncode}, stdout=<{len(self.stdout)} bytes>, seconds={self.seconds:.2f})"

    @property
    def stderr_tail(self) -> str:
        """The last few non-empty stderr lines, for an error message."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        tail = " / ".join(lines[-3:])
        return tail if len(tail) <= 600 else "..." + tail[-600:]


LineHandler = Callable[[str], None]


class Host:
    """A place to run scripts: :class:`LocalHost` or :class:`SshHost`."""

    #: For messages: "this machine" or "deploy@ec2-1-2-3-4...".
    label: str = ""
    _environ: Mapping[str, str] | None = None

    def environment(self) -> dict[str, str]:
        """The environment of every process we start: an allow-list of ours, without secrets."""
        return child_environment(self._environ)

    def argv(self, words: Sequence[str]) -> list[str]:
        """The local argv that runs ``words`` (a command and its arguments) on the host."""
        raise NotImplementedError

    def run(
        self,
        script: str,
        args: Sequence[str] = (),
        *,
        data: bytes = b"",
        root: bool = False,
        timeout: float = 60.0,
        on_line: LineHandler | None = None,
        what: str,
    ) -> Completed:
        """Run ``script`` with ``sh`` on the host, ``args`` as ``$1...``, ``data`` on stdin after it.

        ``root``: run under ``sudo -n`` unless the login is root already. ``on_line`` gets each
        stdout line as it arrives (for progress). ``what`` names the operation in errors. Raises
        :class:`BackendError` when the script could not be run at all (ssh, sudo, timeout); a
        script's own non-zero exit is returned for the caller to interpret.
        """
        for arg in args:
            if "\0" in arg or "\n" in arg:
                raise BackendError(f"{what}: an argument contains a newline or NUL byte; refusing to run")
        sealed = seal(script)
        words = ["sh", "-c", bootstrap(len(sealed)), "rpdeploy", *args]
        if root and not self.is_root():
            words = ["sudo", "-n", "--", *words]
        completed = _execute(self.argv(words), sealed + data, timeout=timeout, on_line=on_line, what=what, host=self)
        self.check_transport(completed, what=what)
        if root and completed.returncode != 0 and _SUDO_REFUSED.search(completed.stderr):
            raise BackendError(
                f"{what} needs root on {self.label}, and sudo refused: {completed.stderr_tail}",
                hint=self.sudo_hint(),
            )
        if completed.returncode == EXIT_TRUNCATED:
            raise BackendError(f"{what}: the script reached {self.label} incomplete (connection dropped?)")
        return completed

    def is_root(self) -> bool:
        """Whether commands run as root already (then ``sudo`` is not needed)."""
        raise NotImplementedError

    def check_transport(self, completed: Completed, *, what: str) -> None:
        """Raise when the connection itself failed (only SSH can)."""

    def sudo_hint(self) -> str:
        return (
            "give this user passwordless sudo (NOPASSWD), run as root, or point backend.env_file at a file it can write"
        )


class LocalHost(Host):
    """This machine: scripts run as ``sh -c`` subprocesses of rpdeploy."""

    label = "this machine"

    def __init__(self, *, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ

    def argv(self, words: Sequence[str]) -> list[str]:
        return list(words)

    def is_root(self) -> bool:
        return os.geteuid() == 0

    def __repr__(self) -> str:
        return "LocalHost()"


@dataclass(frozen=True)
class SshTarget:
    """``user@host[:port]`` taken apart. IPv6 literals come in brackets: ``[::1]:2222``."""

    user: str | None
    hostname: str
    port: int | None

    @classmethod
    def parse(cls, text: str) -> SshTarget:
        match = re.match(
            r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^:@\s\[\]]+)(?::(?P<port>\d{1,5}))?$", text
        )
        if not match:
            raise BackendError(f"backend.host {text!r} is not user@host[:port]")
        host = match.group("host")
        if host.startswith("-"):
            raise BackendError(f"backend.host {text!r}: a host name cannot start with '-'")
        port = int(match.group("port")) if match.group("port") else None
        return cls(match.group("user"), host.strip("[]"), port)

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.hostname}" if self.user else self.hostname

    def __str__(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        text = f"{self.user}@{host}" if self.user else host
        return f"{text}:{self.port}" if self.port else text


class SshHost(Host):
    """A host reached with the system ``ssh`` client."""

    def __init__(
        self,
        target: SshTarget,
        *,
        identity_file: str | None = None,
        accept_new_host_key: bool = False,
        connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
        ssh_config: str | None = None,
        ssh_binary: str = "ssh",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.target = target
        self.identity_file = identity_file
        self.accept_new_host_key = accept_new_host_key
        self.connect_timeout = connect_timeout
        self.ssh_config = ssh_config
        self.ssh_binary = ssh_binary
        self._environ = environ
        self.label = str(target)
        self._uid: int | None = None

    def __repr__(self) -> str:
        return f"SshHost({self.label!r})"

    def ssh_options(self) -> list[str]:
        """Everything before the destination, in the order ssh reads it (first value wins)."""
        argv = [self.ssh_binary]
        if self.ssh_config:
            argv += ["-F", self.ssh_config]
        argv += [
            "-T",  # no terminal: stdin stays a plain pipe (and sudo gets no pty to echo into)
            "-o", "BatchMode=yes",  # never ask for a password or a passphrase: fail instead
            "-o", f"StrictHostKeyChecking={'accept-new' if self.accept_new_host_key else 'yes'}",
            "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4",
            "-o", "ForwardAgent=no",
            "-o", "ForwardX11=no",
            "-o", "ClearAllForwardings=yes",
            "-o", "PermitLocalCommand=no",
            "-o", "LogLevel=ERROR",  # keeps banners and "Permanently added" notes out of stderr
        ]  # fmt: skip
        if self.identity_file:
            argv += ["-i", os.path.expanduser(self.identity_file), "-o", "IdentitiesOnly=yes"]
        if self.target.port:
            argv += ["-p", str(self.target.port)]
        return argv

    def argv(self, words: Sequence[str]) -> list[str]:
        # "--" ends ssh's options before the destination, so nothing after it is read as one.
        return [*self.ssh_options(), "--", self.target.destination, " ".join(shlex.quote(w) for w in words)]

    def is_root(self) -> bool:
        if self._uid is None:
            done = _execute(self.argv(["id", "-u"]), b"", timeout=self.connect_timeout + 30, what="id -u", host=self)
            self.check_transport(done, what="connecting")
            try:
                self._uid = int(done.stdout.decode().strip())
            except ValueError:
                raise BackendError(
                    f"connecting to {self.label}: `id -u` answered {done.stdout[:80]!r} ({done.stderr_tail})"
                ) from None
        return self._uid == 0

    def remember_uid(self, uid: int) -> None:
        """A script told us who we are: saves the `id -u` round trip."""
        self._uid = uid

    def check_transport(self, completed: Completed, *, what: str) -> None:
        """ssh exits 255 when it could not connect or log in: say why, and what to do."""
        if completed.returncode != 255:
            return
        raise ssh_error(completed.stderr, host=self, what=what)

    def sudo_hint(self) -> str:
        user = self.target.user or "the ssh user"
        return (
            f"give {user} passwordless sudo on {self.target.hostname} (NOPASSWD, without requiretty), "
            "log in as root, or point backend.env_file at a file that user can write"
        )


def ssh_error(stderr: str, *, host: SshHost, what: str) -> BackendError:
    """The BackendError for an ssh failure (exit 255), from what ssh printed."""
    target = host.target
    name = f"[{target.hostname}]:{target.port}" if target.port else target.hostname
    tail = " / ".join(line.strip() for line in stderr.splitlines() if line.strip())[-600:] or "no message"
    where = f"ssh {host.label}"
    port_flag = f" -p {target.port}" if target.port else ""
    if _HOST_KEY_CHANGED.search(stderr):
        return BackendError(
            f"{where}: the host key has CHANGED since it was recorded in known_hosts; refusing to connect ({what})",
            hint=(
                "this is what a man-in-the-middle looks like. If the host was rebuilt, check its new key "
                f"fingerprint out of band, then remove the old one with `ssh-keygen -R '{name}'` and add the new one"
            ),
        )
    if _HOST_KEY_FAILED.search(stderr) or ("No " in stderr and "host key is known" in stderr):
        return BackendError(
            f"{where}: the host key is not in known_hosts, and rpdeploy verifies host keys ({what})",
            hint=(
                f"check the key's fingerprint, then add it: `ssh-keyscan{port_flag} {target.hostname} "
                ">> ~/.ssh/known_hosts` (or connect once with ssh by hand); or set "
                "backend.accept_new_host_key: true to trust it on first contact"
            ),
        )
    if _PERMISSION_DENIED.search(stderr):
        key = f"the key {host.identity_file}" if host.identity_file else "your ssh keys (agent, ~/.ssh/config)"
        return BackendError(
            f"{where}: login refused for user {target.user or '(ssh default)'} ({tail})",
            hint=(
                f"check the user in backend.host and that {key} is in that user's ~/.ssh/authorized_keys; "
                f"try `ssh{' -i ' + host.identity_file if host.identity_file else ''} {target.destination} true`"
            ),
        )
    if _RESOLVE.search(stderr):
        return BackendError(
            f"{where}: cannot resolve host name {target.hostname!r}", hint="check backend.host (a typo?) and DNS"
        )
    if _REFUSED.search(stderr):
        port = target.port or 22
        return BackendError(
            f"{where}: connection refused on port {port}",
            hint=f"is sshd running on {target.hostname}, and listening on port {port}? Check backend.host's :port",
        )
    if _TIMED_OUT.search(stderr):
        return BackendError(
            f"{where}: no answer within {host.connect_timeout} s ({tail})",
            hint=f"the host may be down, or a firewall / security group drops SSH from here (port {target.port or 22})",
        )
    if _NO_ROUTE.search(stderr):
        return BackendError(f"{where}: host unreachable ({tail})", hint="check the address and the network path")
    if _CLOSED.search(stderr):
        return BackendError(
            f"{where}: the server closed the connection ({tail})",
            hint="sshd may refuse this client (MaxStartups, AllowUsers, fail2ban), or the port is not sshd",
        )
    return BackendError(f"{where} failed while {what} (exit 255): {tail}")


def host_for(
    backend: BackendConfig, *, environ: Mapping[str, str] | None = None, connect_timeout: int | None = None
) -> Host:
    """The host ``backend:`` in deploy.yaml points at: SSH when ``host`` is set, else this machine."""
    if backend.host is None:
        return LocalHost(environ=environ)
    env = os.environ if environ is None else environ
    ssh_config = env.get(SSH_CONFIG_ENV) or None
    if ssh_config is not None and not Path(os.path.expanduser(ssh_config)).is_file():
        raise BackendError(f"{SSH_CONFIG_ENV}={ssh_config}: no such file")
    return SshHost(
        SshTarget.parse(backend.host),
        identity_file=backend.identity_file,
        accept_new_host_key=backend.accept_new_host_key,
        connect_timeout=connect_timeout or DEFAULT_CONNECT_TIMEOUT,
        ssh_config=os.path.expanduser(ssh_config) if ssh_config else None,
        environ=environ,
    )


# --- running a process ----------------------------------------------------------------------


def _execute(
    argv: list[str],
    payload: bytes,
    *,
    timeout: float,
    what: str,
    host: Host,
    on_line: LineHandler | None = None,
) -> Completed:
    """Run argv with ``payload`` on stdin; stream stdout lines to ``on_line``; kill it after ``timeout``.

    The child gets a session of its own (so Ctrl-C reaches only us, and we end the whole group
    of it, ssh's ProxyCommand children included) and an environment without our secrets.
    """
    env = host.environment()
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise BackendError(
            f"{what}: {argv[0]!r} is not installed on this machine",
            hint="install the OpenSSH client (Debian/Ubuntu: apt install openssh-client)"
            if argv[0].endswith("ssh")
            else None,
        ) from None
    except OSError as exc:
        raise BackendError(f"{what}: cannot start {argv[0]}: {exc.strerror}") from None

    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        _kill_group(proc)

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    stderr_chunks: list[bytes] = []
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    writer = threading.Thread(target=_feed, args=(proc.stdin, payload), daemon=True)
    reader = threading.Thread(target=_drain, args=(proc.stderr, stderr_chunks), daemon=True)
    stdout = bytearray()
    try:
        timer.start()
        writer.start()
        reader.start()
        for raw in iter(proc.stdout.readline, b""):
            stdout += raw
            if on_line is not None:
                on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
        proc.wait()
        writer.join()
        reader.join()
    finally:
        timer.cancel()
        if proc.poll() is None:  # interrupted (Ctrl-C) or a callback raised: never leave it running
            _kill_group(proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()
    stderr = redact(b"".join(stderr_chunks).decode("utf-8", "replace"))
    seconds = time.monotonic() - started
    if timed_out.is_set():
        tail = " / ".join(line.strip() for line in stderr.splitlines() if line.strip())[-300:]
        raise BackendError(
            f"{what} on {host.label} did not finish within {timeout:.0f} s" + (f" ({tail})" if tail else ""),
            hint="the host or the command hangs; check it by hand",
        )
    return Completed(proc.returncode, bytes(stdout), stderr, seconds)


def _feed(stream: IO[bytes], payload: bytes) -> None:
    try:
        if payload:
            stream.write(payload)
        stream.close()
    except (BrokenPipeError, ValueError, OSError):
        # The far side stopped reading (it failed early): its exit code says why.
        pass


def _drain(stream: IO[bytes], chunks: list[bytes]) -> None:
    for chunk in iter(lambda: stream.read(65536), b""):
        chunks.append(chunk)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
