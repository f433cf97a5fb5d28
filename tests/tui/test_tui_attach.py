"""A screen in its own process: killing it leaves recording alone, and a new one attaches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.status_socket import StatusServer, socket_path_for

from support.tui_screen import ScreenProcess, wait_until

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)


def _manual_ids(recorder: Any) -> list[str]:
    return [r.id for r in recorder.status().recent if r.origin == "manual"]


def test_killed_screen_leaves_recording_alone_and_a_new_one_attaches(
    demo_recorder: Any, tmp_path: Path
) -> None:
    recorder = demo_recorder
    path = socket_path_for(tmp_path)
    # What `roadpatrol run` does beside its recorder.
    with StatusServer(recorder, path) as server:
        first = ScreenProcess(["--socket", str(path), "--lang", "en"])
        try:
            assert wait_until(lambda: "RECORDING" in first.output, 30.0), first.output[-2000:]
            assert server.client_count == 1
            first.press("m")
            assert wait_until(lambda: len(_manual_ids(recorder)) == 1, 10.0)
            assert first.kill() == -9
        finally:
            first.close()
        assert wait_until(lambda: server.client_count == 0, 5.0)

        # Recording went on without any screen.
        frames = recorder.status().camera.frames
        assert wait_until(lambda: recorder.status().camera.frames >= frames + 2, 10.0)
        assert recorder.status().recording

        # The second finds the recorder and its language through the vehicle's config file.
        config = tmp_path / "vehicle.toml"
        config.write_text(
            f'[vehicle]\ndata_dir = "{tmp_path}"\n[screen]\nlang = "ja"\n', encoding="utf-8"
        )
        second = ScreenProcess(["--config", str(config)])
        try:
            assert wait_until(lambda: "記録中" in second.output, 30.0), second.output[-2000:]
            assert server.client_count == 1
            second.press("m")
            assert wait_until(lambda: len(_manual_ids(recorder)) == 2, 10.0)
            second.press("q")
            assert second.proc.wait(timeout=10) == 0
        finally:
            second.close()
        assert wait_until(lambda: server.client_count == 0, 5.0)
        assert recorder.status().recording  # leaving the screen with q stops nothing either
