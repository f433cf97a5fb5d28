"""`python -m tui`: the same as `roadpatrol tui`, without needing the entry point installed."""

from __future__ import annotations

import argparse
import sys

from edge.cli import UsageError
from tui.cli import add_arguments


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tui", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args()
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        print(f"python -m tui: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
