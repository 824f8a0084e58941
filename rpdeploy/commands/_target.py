"""``--emulator``: run a command against the project's emulator sandbox instead of RunPod."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rpdeploy.commands._common import EMULATOR_WEIGHTS_SCALE, reporter

if TYPE_CHECKING:
    from rpdeploy.config import Config

EmulatorOption = Annotated[
    bool,
    typer.Option(
        "--emulator",
        help="Run against the project's emulator sandbox: a local RunPod emulator started for this command "
        "(no account, no GPU), with its own ledger and the endpoints earlier --emulator commands made. "
        "The backend in deploy.yaml is not read, written or restarted.",
    ),
]
RealBackendOption = Annotated[
    bool,
    typer.Option(
        "--real-backend",
        help="With --emulator: also configure (and restart) the real backend in deploy.yaml, pointing it at the "
        "throw-away emulator. Without it the emulator never touches the backend.",
    ),
]

#: The sandbox's own folder inside .rpdeploy/: its ledger and the emulated account.
SANDBOX = "emulator"


def sandbox_dir(config: Config) -> Path:
    return config.state_dir / SANDBOX


@contextmanager
def target(
    config: Config, emulator: bool, *, real_backend: bool = False, quiet: bool = False
) -> Iterator[tuple[Config, dict[str, str], Path]]:
    """The config, environment and ledger folder to use: RunPod's, or the emulator sandbox's.

    The emulator lives as long as the command; the account it holds (templates, endpoints...)
    is saved when the command ends and restored by the next ``--emulator`` command
    (``rpdeploy.emulator.sandbox``), so ``deploy --emulator`` and then ``status --emulator``,
    ``smoke-test --emulator`` or ``destroy --emulator`` see the same endpoint. The sandbox's
    config has no ``backend:`` section, so nothing reads, writes or restarts the configured
    backend (its env would point at an emulator that is gone when the command ends);
    ``real_backend`` is the explicit opt-in.
    """
    if real_backend and not emulator:
        raise typer.BadParameter("only means something with --emulator", param_hint="--real-backend")
    if not emulator:
        yield config, dict(os.environ), config.state_dir
        return
    from rpdeploy.config import ApiKeyRef
    from rpdeploy.deploy.project import display_path
    from rpdeploy.emulator import Emulator, ids
    from rpdeploy.emulator.sandbox import ACCOUNT_FILE, emulator_settings, load_account, save_account

    folder = sandbox_dir(config)
    port, saved = emulator_settings(folder / ACCOUNT_FILE)
    # Always a key of its own: never RUNPOD_API_KEY from the environment (it is saved in the sandbox).
    key = saved or ids.api_key()
    emu = Emulator(key, port=port, runsync_wait=5.0, weights_scale=EMULATOR_WEIGHTS_SCALE)
    try:
        emu.start()
    except OSError:  # the last port is taken now: any free one (the RunPod stages then run again)
        emu = Emulator(key, runsync_wait=5.0, weights_scale=EMULATOR_WEIGHTS_SCALE)
        emu.start()
    with emu:
        restored = load_account(emu.state, folder / ACCOUNT_FILE)
        key_var = "RPDEPLOY_EMULATOR_API_KEY"
        runpod = config.runpod.model_copy(
            update={"api_url": emu.api_url, "endpoint_url": emu.endpoint_url, "api_key": ApiKeyRef(env=key_var)}
        )
        out = reporter()
        if not quiet:
            kept = "the sandbox's endpoints restored" if restored else "a new sandbox"
            out.info(f"Using a local RunPod emulator at {emu.api_url} ({kept}, in {display_path(folder)}/)")
        update: dict[str, object] = {"runpod": runpod}
        if config.backend is not None:
            where = config.backend.host or "this machine"
            if real_backend:
                out.warn(
                    f"--real-backend: the backend {config.backend.service} on {where} will be pointed at this "
                    "throw-away emulator; run a real deploy afterwards to point it back"
                )
            else:
                update["backend"] = None
                if not quiet:
                    out.info(
                        f"Emulator sandbox: the backend ({config.backend.service} on {where}) is not read, written "
                        "or restarted (--real-backend to include it)"
                    )
        try:
            yield config.model_copy(update=update), {**os.environ, key_var: emu.api_key}, folder
        finally:
            save_account(emu.state, folder / ACCOUNT_FILE, port=emu.port, api_key=emu.api_key)
