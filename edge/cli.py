"""`roadpatrol`: one command, subcommands contributed by each package.

edge registers its own subcommands directly. Packages above it in the import order (sync,
models, tui) contribute theirs through the ``roadpatrol.commands`` entry-point group, so
that edge never imports them and the command line still shows everything that is installed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

# "module:function" of edge's own subcommand registrars.
EDGE_COMMANDS: tuple[str, ...] = (
    "edge.config_cli:register",
    "edge.gps.cli:register",
    "edge.outbox.cli:register",
    "edge.privacy.cli:register",
    "edge.recorder_cli:register",
)


class UsageError(Exception):
    """Misuse of the command line: printed without a traceback, exit status 2."""


def _load(spec: str) -> Registrar:
    module_name, _, attr = spec.partition(":")
    registrar: Registrar = getattr(importlib.import_module(module_name), attr)
    return registrar


def _registrars() -> list[Registrar]:
    found = [_load(spec) for spec in EDGE_COMMANDS]
    found.extend(ep.load() for ep in entry_points(group="roadpatrol.commands"))
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roadpatrol",
        description="Road-damage patrol recorder, model tools and office sync.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _registrars():
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
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
