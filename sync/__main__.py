"""`python -m sync …`: the sync and office subcommands without the `roadpatrol` entry points.

Same parser pieces as `roadpatrol sync …` / `roadpatrol office …`; useful before the package's
entry points are installed, and in tests.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edge.cli import dispatch
from sync import cli as sync_cli
from sync.office import cli as office_cli


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sync_cli.register(sub)
    office_cli.register(sub)
    return dispatch(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
