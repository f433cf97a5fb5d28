"""The capture thread and its newest-frame slot: slow consumers, ended replays, lost sources."""

from __future__ import annotations

import itertools
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from edge.capture import (
    CameraConfig,
    CaptureThread,
    DeviceSource,
    ImageFolderSource,
    LatestFrameSlot,
    VideoFileSource,
)
from edge.types import Frame

from support.capture import copy_frames, road_images, wait_until, write_video


def tiny_frame(seq: int) -> Frame:
    return Frame(seq, time.monotonic_ns(), datetime.now(UTC), np.zeros((2, 2, 3), np.uint8))


def test_slot_keeps_only_the_newest_frame_and_counts_the_rest() -> None:
    slot = LatestFrameSlot()
    for seq in range(5):
        slot.put(tiny_frame(seq))
    taken = slot.take(timeout_s=0)
    assert taken is not None and taken.seq == 4
    assert slot.dropped == 4
    assert slot.take(timeout_s=0) is None  # nothing new: no stale frame handed out twice
    slot.put(tiny_frame(5))
    slot.close()
    last = slot.take(timeout_s=0)
    assert last is not None and last.seq == 5  # what was left is still delivered
    started = time.monotonic()
    assert slot.take(timeout_s=5) is None  # closed and empty: returns at once
    assert time.monotonic() - started < 1.0
    assert (slot.put_count, slot.taken_count, slot.dropped) == (6, 2, 4)


def test_slot_take_waits_for_a_frame_and_times_out() -> None:
    slot = LatestFrameSlot()
    started = time.monotonic()
    assert slot.take(timeout_s=0.2) is None
    assert time.monotonic() - started >= 0.19
    threading.Timer(0.1, slot.put, args=(tiny_frame(7),)).start()
    got = slot.take(timeout_s=5)
    assert got is not None and got.seq == 7


def test_slow_consumer_gets_fresh_frames_and_drops_are_counted(tmp_path: Path) -> None:
    copy_frames(tmp_path / "replay", 5)
    source = ImageFolderSource(tmp_path / "replay", fps=100, loop=True, pace=True)
    capture = CaptureThread(source, reconnect_initial_s=0.05).start()
    try:
        taken: list[Frame] = []
        staleness: list[int] = []
        while len(taken) < 8:
            frame = capture.take(timeout_s=5)
            assert frame is not None
            # How many frames had been produced after this one when we got it.
            staleness.append(capture.status().frames - 1 - frame.seq)
            taken.append(frame)
            time.sleep(0.1)  # a grader much slower than the camera
    finally:
        capture.stop()
    status = capture.status()
    gaps = [b.seq - a.seq for a, b in itertools.pairwise(taken)]
    # The consumer skipped frames instead of working a backlog (a starved producer on a busy
    # machine may now and then deliver just one frame between two takes).
    assert sorted(gaps)[len(gaps) // 2] >= 2, gaps
    assert max(staleness) <= 2, staleness
    produced = capture.slot.put_count
    assert status.frames == produced
    # Every frame produced was either taken, overwritten (dropped), or is the one left over.
    assert status.dropped_frames == capture.slot.dropped
    assert produced - len(taken) - 1 <= status.dropped_frames <= produced - len(taken)
    assert status.dropped_frames > 20


def test_finished_replay_sets_ended_and_closes_the_slot(tmp_path: Path) -> None:
    copy_frames(tmp_path / "replay", 6)
    capture = CaptureThread.from_config(
        CameraConfig(source="folder", path=tmp_path / "replay", fps=25)
    ).start()
    taken: list[Frame] = []
    while (frame := capture.take(timeout_s=5)) is not None:
        taken.append(frame)
    assert capture.ended.is_set()
    assert capture.slot.closed
    status = capture.status()
    assert status.frames == 6
    assert len(taken) + status.dropped_frames == 6
    assert taken[-1].seq == 5
    assert not status.connected
    assert wait_until(lambda: not capture.running, 2.0)


@pytest.mark.slow
def test_fps_is_measured_from_delivered_frames(tmp_path: Path) -> None:
    copy_frames(tmp_path / "replay", 4)
    capture = CaptureThread(
        ImageFolderSource(tmp_path / "replay", fps=20, loop=True, pace=True)
    ).start()
    try:
        assert wait_until(lambda: capture.status().frames >= 25, 10)
        status = capture.status()
    finally:
        capture.stop()
    assert status.connected and status.error is None
    assert 14 <= status.fps <= 26
    assert status.source == f"folder:{tmp_path / 'replay'}"


def test_folder_that_vanishes_and_returns_is_reconnected(tmp_path: Path) -> None:
    folder = tmp_path / "replay"
    copy_frames(folder, 4)
    source = ImageFolderSource(folder, fps=50, loop=True, pace=True)
    capture = CaptureThread(source, reconnect_initial_s=0.05, reconnect_max_s=0.2).start()
    try:
        assert wait_until(lambda: capture.status().frames >= 5)
        aside = tmp_path / "unplugged"
        os.rename(folder, aside)
        assert wait_until(lambda: not capture.status().connected)
        lost = capture.status()
        assert lost.error is not None and str(folder) in lost.error
        frames_while_lost = lost.frames
        time.sleep(0.5)
        assert capture.status().frames == frames_while_lost
        assert capture.running  # lost camera, live process
        os.rename(aside, folder)
        assert wait_until(lambda: capture.status().frames >= frames_while_lost + 5)
        back = capture.status()
    finally:
        capture.stop()
    assert back.connected and back.error is None
    assert back.reconnects >= 1


@pytest.mark.slow
def test_video_path_that_becomes_valid_is_picked_up(tmp_path: Path) -> None:
    video = tmp_path / "drive.avi"
    source = VideoFileSource(video, fps=10, loop=False, pace=True)
    capture = CaptureThread(source, reconnect_initial_s=0.05, reconnect_max_s=0.1).start()
    try:
        started = time.monotonic()
        assert wait_until(lambda: capture.status().reconnects >= 6, 30.0)
        took_s = time.monotonic() - started
        waiting = capture.status()
        assert not waiting.connected
        assert waiting.error is not None and str(video) in waiting.error
        # Backed off between attempts: five waits of 0.05 s then 0.1 s (capped) take at least
        # 0.45 s; no backoff at all would retry thousands of times in that time. (The cap
        # itself is the backoff's unit test: an upper bound here would time a busy CPU.)
        assert took_s >= 0.4, took_s
        partial = tmp_path / "drive.partial.avi"
        write_video(partial, road_images(8), fps=25)
        os.replace(partial, video)
        frames = []
        while (frame := capture.take(timeout_s=5)) is not None:
            frames.append(frame)
    finally:
        capture.stop()
    assert capture.ended.is_set()
    status = capture.status()
    assert status.frames == 8
    assert len(frames) + status.dropped_frames == 8


def test_missing_camera_is_reported_and_stop_is_prompt() -> None:
    capture = CaptureThread(
        DeviceSource("/dev/video-roadpatrol-test", width=1280, height=720),
        reconnect_initial_s=0.05,
        reconnect_max_s=0.2,
    ).start()
    assert wait_until(lambda: capture.status().reconnects >= 2)
    status = capture.status()
    assert not status.connected
    assert status.error is not None and "/dev/video-roadpatrol-test" in status.error
    assert capture.take(timeout_s=0.1) is None
    started = time.monotonic()
    capture.stop()
    assert not capture.running
    assert time.monotonic() - started < 2.0


def test_stop_wakes_a_consumer_waiting_for_frames() -> None:
    capture = CaptureThread(
        DeviceSource("/dev/video-roadpatrol-test", width=640, height=480),
        reconnect_initial_s=0.05,
    ).start()
    result: list[Frame | None] = []
    consumer = threading.Thread(target=lambda: result.append(capture.take(timeout_s=30)))
    consumer.start()
    time.sleep(0.1)
    capture.stop()
    consumer.join(2.0)
    assert not consumer.is_alive()
    assert result == [None]
