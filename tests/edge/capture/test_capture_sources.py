"""Frame sources on real road images: a video file written here, an image folder, and
devices/streams that are not there (the vehicle must get a clear error, not a hang)."""

from __future__ import annotations

import itertools
import logging
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import pytest
from pydantic import ValidationError

from edge.capture import (
    CameraConfig,
    DeviceSource,
    FrameSource,
    ImageFolderSource,
    RtspSource,
    SourceUnavailable,
    VideoFileSource,
    open_frame_source,
)
from edge.types import Frame

from support.capture import copy_frames, mean_abs_diff, road_images, write_video


def read_all(source: FrameSource, limit: int = 1000) -> list[Frame]:
    frames = []
    while len(frames) < limit and (frame := source.read()) is not None:
        frames.append(frame)
    return frames


def test_video_file_delivers_every_written_frame_in_order(tmp_path: Path) -> None:
    size = (640, 360)
    originals = [cv2.resize(img, size, interpolation=cv2.INTER_AREA) for img in road_images(12)]
    video = tmp_path / "drive.avi"
    write_video(video, originals, fps=25, size=size)

    source = VideoFileSource(video, fps=10, loop=False, pace=False)
    before = datetime.now(UTC)
    source.open()
    frames = read_all(source)
    after = datetime.now(UTC)

    assert len(frames) == len(originals)
    for i, frame in enumerate(frames):
        assert frame.image.shape == (360, 640, 3)
        diffs = [mean_abs_diff(frame.image, o) for o in originals]
        # The decoded frame is closest to the image written at the same position (MJPEG is
        # lossy, so compare by nearest rather than equality).
        assert min(range(len(diffs)), key=diffs.__getitem__) == i
        assert diffs[i] < 8.0
    assert [f.seq for f in frames] == list(range(len(originals)))
    assert all(a.mono_ns < b.mono_ns for a, b in itertools.pairwise(frames))
    assert all(before <= f.captured_at_utc <= after for f in frames)
    assert frames[0].source == f"file:{video}"
    assert source.read() is None  # stays ended
    source.close()


def test_video_file_is_paced_at_its_own_frame_rate(tmp_path: Path) -> None:
    video = tmp_path / "drive.avi"
    write_video(video, road_images(10), fps=20)
    # The config's fps (2) applies only to files without a rate; this one says 20.
    source = open_frame_source(CameraConfig(source="file", path=video, fps=2.0, pace=True))
    source.open()
    frames = read_all(source)
    span_s = (frames[-1].mono_ns - frames[0].mono_ns) / 1e9
    assert len(frames) == 10
    assert 9 / 20 * 0.9 <= span_s < 2.0


def test_folder_replays_in_name_order_at_configured_fps(tmp_path: Path) -> None:
    folder = tmp_path / "replay"
    copies = copy_frames(tmp_path / "src", 8)
    # Names that sort differently from the order the files are written in.
    folder.mkdir()
    for k, path in enumerate(copies):
        path.rename(folder / f"{(k * 5) % 8:02d}_frame.jpg")
    expected = sorted(folder.iterdir())

    source = ImageFolderSource(folder, fps=20, loop=False, pace=True)
    source.open()
    frames = read_all(source)

    assert len(frames) == len(expected)
    for frame, path in zip(frames, expected, strict=True):
        assert (frame.image == cv2.imread(str(path), cv2.IMREAD_COLOR)).all()
    span_s = (frames[-1].mono_ns - frames[0].mono_ns) / 1e9
    assert span_s >= 7 / 20 * 0.9
    assert source.finite
    assert source.read() is None


def test_looping_folder_starts_over(tmp_path: Path) -> None:
    paths = copy_frames(tmp_path / "replay", 3)
    source = ImageFolderSource(tmp_path / "replay", fps=100, loop=True, pace=False)
    source.open()
    frames = read_all(source, limit=7)
    originals = [cv2.imread(str(p)) for p in paths]
    assert not source.finite
    assert [f.seq for f in frames] == list(range(7))
    for i, frame in enumerate(frames):
        assert (frame.image == originals[i % 3]).all()


def test_folder_skips_an_unreadable_image_and_names_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "replay"
    good = copy_frames(folder, 2)
    (folder / f"{good[0].stem}_broken.jpg").write_bytes(b"this is not a jpeg")
    source = ImageFolderSource(folder, fps=100, loop=False, pace=False)
    source.open()
    with caplog.at_level(logging.WARNING):
        frames = read_all(source)
    assert len(frames) == 2
    assert (frames[1].image == cv2.imread(str(good[1]))).all()
    assert any(f"{good[0].stem}_broken.jpg" in r.getMessage() for r in caplog.records)


def test_missing_or_empty_folder_is_unavailable_with_its_path(tmp_path: Path) -> None:
    missing = ImageFolderSource(tmp_path / "nowhere", fps=10, loop=False, pace=True)
    with pytest.raises(SourceUnavailable, match="nowhere"):
        missing.open()
    (tmp_path / "empty").mkdir()
    empty = ImageFolderSource(tmp_path / "empty", fps=10, loop=False, pace=True)
    with pytest.raises(SourceUnavailable, match="no images"):
        empty.open()


def test_file_that_is_not_a_video_is_unavailable(tmp_path: Path) -> None:
    bogus = tmp_path / "drive.avi"
    bogus.write_bytes(b"\x00garbage" * 100)
    source = VideoFileSource(bogus, fps=10, loop=False, pace=True)
    with pytest.raises(SourceUnavailable, match=r"drive\.avi"):
        source.open()


def test_unplugged_device_is_unavailable_with_its_name() -> None:
    source = DeviceSource("/dev/video-roadpatrol-test", width=1280, height=720)
    with pytest.raises(SourceUnavailable, match="/dev/video-roadpatrol-test"):
        source.open()


@pytest.mark.slow
def test_rtsp_stream_that_never_answers_times_out_without_leaking_password() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the TCP connection, then says nothing
    port = listener.getsockname()[1]
    try:
        source = RtspSource(f"rtsp://crew:s3cret@127.0.0.1:{port}/live", timeout_s=1.0)
        started = time.monotonic()
        with pytest.raises(SourceUnavailable) as caught:
            source.open()
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert elapsed < 10.0
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in source.name
    assert f"127.0.0.1:{port}" in source.name


def test_config_picks_the_source_and_rejects_incomplete_sections(tmp_path: Path) -> None:
    assert isinstance(open_frame_source(CameraConfig()), DeviceSource)
    assert isinstance(
        open_frame_source(CameraConfig(source="folder", path=tmp_path)), ImageFolderSource
    )
    assert isinstance(
        open_frame_source(CameraConfig(source="file", path=tmp_path / "a.mp4")), VideoFileSource
    )
    assert isinstance(
        open_frame_source(CameraConfig(source="rtsp", url="rtsp://10.0.0.2/s")), RtspSource
    )
    with pytest.raises(ValidationError, match=r"camera\.path"):
        CameraConfig(source="folder")
    with pytest.raises(ValidationError, match=r"camera\.url"):
        CameraConfig(source="rtsp")
    with pytest.raises(ValidationError, match="fsp"):
        CameraConfig.model_validate({"fsp": 10})
    with pytest.raises(ValidationError):
        CameraConfig(fps=0)
    for name, field in CameraConfig.model_fields.items():
        assert field.description, f"camera.{name} has no description"
