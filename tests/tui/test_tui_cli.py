"""`roadpatrol tui`: misuse is a clear usage error, a missing recorder a clear failure."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import UsageError
from tui.cli import register

from support.tui_screen import REPO, ScreenProcess


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="roadpatrol")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["tui", *argv])


def test_which_recorder_must_be_said() -> None:
    args = _parse()
    with pytest.raises(UsageError, match="--config FILE, --socket PATH or --data-dir DIR"):
        args.handler(args)


def test_socket_and_data_dir_exclude_each_other() -> None:
    with pytest.raises(SystemExit) as exc:
        _parse("--socket", "a.sock", "--data-dir", "d")
    assert exc.value.code == 2


def test_a_broken_config_is_named_with_its_problem(tmp_path: Path) -> None:
    config = tmp_path / "vehicle.toml"
    config.write_text('[screen]\nlang = "fr"\n', encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "tui", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    # Shown by edge.cli like every refused config: the file, the count, the line and field.
    assert proc.returncode == 2
    assert f"roadpatrol tui: {config}: configuration refused, 1 problem(s):" in proc.stderr
    assert "line 2: screen.lang" in proc.stderr and "Traceback" not in proc.stderr


def test_refresh_rate_is_checked(tmp_path: Path) -> None:
    args = _parse("--data-dir", str(tmp_path), "--refresh-hz", "0")
    with pytest.raises(UsageError, match="--refresh-hz"):
        args.handler(args)


@pytest.mark.slow
def test_without_a_terminal_it_says_so(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "tui", "--data-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert "interactive terminal" in proc.stderr


@pytest.mark.slow
def test_no_recorder_at_the_socket_is_a_clear_failure(tmp_path: Path) -> None:
    screen = ScreenProcess(["--data-dir", str(tmp_path)])
    try:
        assert screen.proc.wait(timeout=60) == 1
    finally:
        screen.close()
    assert str(tmp_path / "recorder.sock") in screen.output.replace("\r\n", "")
