"""`python -m tui`: the same as `roadpatrol tui`, without needing the entry point installed."""

from __future__ import annotations

import argparse
import sys

from edge.cli import dispatch
from tui.cli import add_arguments


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tui", description=__doc__)
    add_arguments(parser)
    return dispatch(parser)


if __name__ == "__main__":
    sys.exit(main())
