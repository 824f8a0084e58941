"""`rpdeploy completion`."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from rpdeploy.output import print_result


class Shell(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion(shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.")]) -> None:
    """Print the shell completion script for bash, zsh or fish.

    Load it in your shell's start-up file (or use `rpdeploy --install-completion`, which
    detects the shell itself).

    Examples:

    \b
      rpdeploy completion bash > ~/.local/share/bash-completion/completions/rpdeploy
      rpdeploy completion zsh > "${fpath[1]}/_rpdeploy"
      rpdeploy completion fish > ~/.config/fish/completions/rpdeploy.fish
    """
    # Typer's own script generator (the one behind --show-completion): the scripts call back
    # into rpdeploy with _RPDEPLOY_COMPLETE set, which Typer answers.
    from typer._completion_shared import get_completion_script

    print_result(get_completion_script(prog_name="rpdeploy", complete_var="_RPDEPLOY_COMPLETE", shell=shell.value))
