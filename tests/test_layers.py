"""The vehicle's command line loads every command module and never torch (a vehicle has none).

The import contracts in pyproject.toml check this statically (`lint-imports` in .ci/run); this
checks what a real start of `roadpatrol` loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
from edge.cli import build_parser
parser = build_parser()
commands = sorted(parser._subparsers._group_actions[0].choices)
print(json.dumps({"commands": commands, "torch": "torch" in sys.modules}))
"""


@pytest.mark.slow
def test_the_command_line_lists_every_command_without_loading_torch() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120,
        check=True,
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["torch"] is False
    assert probe["commands"] == sorted(
        ["config", "demo", "gps", "model", "office", "outbox", "privacy", "run", "sync", "tui"]
    )


def test_no_entry_point_groups_are_declared() -> None:
    # The command list and the composition root import their parts: nothing is found through
    # install metadata, so a missing egg-info can never silently drop the publisher.
    pyproject = (REPO / "pyproject.toml").read_text("utf-8")
    assert "entry-points" not in pyproject and "entry_points" not in pyproject
    for module in (REPO / "edge").rglob("*.py"):
        assert "entry_points" not in module.read_text("utf-8"), module
