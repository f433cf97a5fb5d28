"""`python -m edge …`: the same as `roadpatrol …`, without the console script installed."""

import sys

from edge.cli import main

sys.exit(main())
