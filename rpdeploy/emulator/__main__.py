"""``python -m rpdeploy.emulator``: the ``rpdeploy emulator`` command on its own."""

from __future__ import annotations

import typer

from rpdeploy.commands.emulator import emulator


def main() -> None:
    typer.run(emulator)


if __name__ == "__main__":
    main()
