"""`roadpatrol`: one command built from an explicit list of command modules.

With `edge.app` this is the top layer of the vehicle side: the only part of edge that imports
sync, models and tui (the import contract in `.ci/importlinter.ini` checks it). Each command
module offers ``register(subparsers)``; the list below is the whole command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from edge import app
from edge.config import check as config_check
from edge.config.loader import ConfigError
from edge.errors import UsageError
from edge.gps import cli as gps_cli
from edge.outbox import cli as outbox_cli
from edge.privacy import cli as privacy_cli
from models import cli as model_cli
from sync import cli as sync_cli
from sync.office import cli as office_cli
from tui import cli as tui_cli

__all__ = ["COMMAND_MODULES", "UsageError", "build_parser", "dispatch", "main"]

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

# Every `roadpatrol` subcommand, in the order `--help` lists them.
COMMAND_MODULES: tuple[Registrar, ...] = (
    config_check.register,  # config check
    gps_cli.register,  # gps …
    outbox_cli.register,  # outbox …
    privacy_cli.register,  # privacy …
    app.register,  # run, demo
    model_cli.register,  # model … (the vehicle's model store and the technicians' tools)
    tui_cli.register,  # tui
    sync_cli.register,  # sync …
    office_cli.register,  # office …
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roadpatrol",
        description="Road-damage patrol recorder, model tools and office sync.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in COMMAND_MODULES:
        register(sub)
    return parser


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse, run the chosen subcommand's handler, and turn misuse into exit status 2."""
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        print(f"{parser.prog} {getattr(args, 'command', '')}: error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:  # the one place a refused config file is shown
        lines = exc.lines()
        print(f"{parser.prog} {getattr(args, 'command', '')}: {lines[0]}", file=sys.stderr)
        print("\n".join(lines[1:]), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
