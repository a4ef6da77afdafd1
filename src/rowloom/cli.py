"""The `rowloom` command: every subcommand, each in the module that composes what it needs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from rowloom import engine_commands, keys_commands, platform_commands

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {
    "serve": platform_commands.serve_command,
    "worker": platform_commands.worker_command,
    "migrate": platform_commands.migrate_command,
    "keys": keys_commands.keys_command,
    "run": engine_commands.run_command,
    "validate": engine_commands.validate_command,
    "import-dataflux": engine_commands.import_dataflux_command,
}


def build_parser() -> argparse.ArgumentParser:
    """The `rowloom` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="rowloom", description="Run LLM workflows over tables.")
    commands = parser.add_subparsers(dest="command", required=True)
    platform_commands.add_commands(commands)
    keys_commands.add_commands(commands)
    engine_commands.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `rowloom` console script."""
    args = build_parser().parse_args(argv)
    sys.exit(COMMANDS[args.command](args))


if __name__ == "__main__":
    main()
