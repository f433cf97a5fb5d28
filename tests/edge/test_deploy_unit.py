"""The systemd unit is sandboxed: `systemd-analyze security` rates it, offline."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from support import REPO

UNIT = REPO / "edge" / "deploy" / "roadpatrol.service"


def test_the_unit_is_sandboxed_and_rated_ok_by_systemd_analyze() -> None:
    text = UNIT.read_text()
    for line in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/roadpatrol",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "DevicePolicy=closed",
        "DeviceAllow=char-video4linux rw",
        "StateDirectoryMode=0700",
        "UMask=0077",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt package systemd) to rate the unit")
    out = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout + out.stderr)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= 2.0  # 9.2 "UNSAFE" without the sandbox
