"""Frame sources: a V4L2 camera, a video file, an RTSP stream, a folder of images.

All decode through OpenCV. A source is opened, read until it ends or fails, and closed; the
capture thread reopens a failed source with backoff. Sequence numbers keep counting across
reopens so that a consumer can see gaps.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from edge.config.capture import CameraConfig
from edge.types import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


class SourceUnavailable(Exception):
    """The source cannot be opened or stopped delivering; the message says which and why."""


@runtime_checkable
class FrameSource(Protocol):
    """Something that yields camera frames; see :func:`open_frame_source`."""

    @property
    def name(self) -> str:
        """Printable description for status and logs (no credentials)."""
        ...

    @property
    def finite(self) -> bool:
        """True when the source can come to an end (a file or folder that does not loop)."""
        ...

    def open(self) -> None:
        """Open or reopen; raises SourceUnavailable."""
        ...

    def read(self) -> Frame | None:
        """The next frame; None when a finite source has ended; raises SourceUnavailable."""
        ...

    def close(self) -> None: ...


class _Stamper:
    """Gives each frame its sequence number and both clocks at the moment it is decoded."""

    def __init__(self, source_name: str) -> None:
        self._next_seq = 0
        self._source_name = source_name

    def stamp(self, image: np.ndarray) -> Frame:
        frame = Frame(
            seq=self._next_seq,
            mono_ns=time.monotonic_ns(),
            captured_at_utc=datetime.now(UTC),
            image=image,
            source=self._source_name,
        )
        self._next_seq += 1
        return frame


class _Pacer:
    """Releases frames at a fixed rate, like a camera would, without drifting."""

    def __init__(self, fps: float) -> None:
        self._period_ns = int(1e9 / fps)
        self._due_ns: int | None = None

    def reset(self) -> None:
        self._due_ns = None

    def wait(self) -> None:
        now = time.monotonic_ns()
        if self._due_ns is None or now - self._due_ns > 10 * self._period_ns:
            # First frame, or far behind (a slow disk, a suspended machine): start afresh
            # instead of rushing out a burst to catch up.
            self._due_ns = now
        elif self._due_ns > now:
            time.sleep((self._due_ns - now) / 1e9)
        self._due_ns += self._period_ns


def redact_url(url: str) -> str:
    """The URL without a password, for status lines and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


class _VideoCaptureSource:
    """Shared part of the sources that are one cv2.VideoCapture."""

    def __init__(self, name: str, *, finite: bool) -> None:
        self._name = name
        self._finite = finite
        self._cap: cv2.VideoCapture | None = None
        self._stamper = _Stamper(name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def finite(self) -> bool:
        return self._finite

    def _create(self) -> cv2.VideoCapture:
        raise NotImplementedError

    def open(self) -> None:
        self.close()
        cap = self._create()
        if not cap.isOpened():
            cap.release()
            raise SourceUnavailable(
                f"{self._name}: cannot open (not there, or a format OpenCV cannot decode)"
            )
        self._cap = cap

    def _grab(self) -> np.ndarray | None:
        if self._cap is None:
            raise SourceUnavailable(f"{self._name}: not open")
        ok, image = self._cap.read()
        return image if ok and image is not None else None

    def read(self) -> Frame | None:
        image = self._grab()
        if image is None:
            raise SourceUnavailable(f"{self._name}: no frame (disconnected or stream stopped)")
        return self._stamper.stamp(image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class DeviceSource(_VideoCaptureSource):
    """A V4L2 camera, by path (``/dev/video0``) or index (``0``)."""

    def __init__(self, device: str, *, width: int, height: int) -> None:
        super().__init__(f"device:{device}", finite=False)
        self._device = device
        self._width = width
        self._height = height

    def _create(self) -> cv2.VideoCapture:
        if not self._device.isdigit() and not Path(self._device).exists():
            raise SourceUnavailable(f"{self._name}: no such device (unplugged?)")
        target: int | str = int(self._device) if self._device.isdigit() else self._device
        cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._height)
        # One buffered frame: the newest picture matters, not a queue of old ones.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap


class RtspSource(_VideoCaptureSource):
    """A network stream through OpenCV's FFmpeg backend, with open and read timeouts."""

    def __init__(self, url: str, *, timeout_s: float) -> None:
        super().__init__(redact_url(url), finite=False)
        self._url = url
        self._timeout_ms = max(1, int(timeout_s * 1000))

    def _create(self) -> cv2.VideoCapture:
        # Without these timeouts a stalled stream would hang the capture thread forever.
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            self._timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            self._timeout_ms,
        ]
        return cv2.VideoCapture(self._url, cv2.CAP_FFMPEG, params)


class VideoFileSource(_VideoCaptureSource):
    """A video file, played at its own frame rate (or ``fps`` when it states none)."""

    def __init__(self, path: Path, *, fps: float, loop: bool, pace: bool) -> None:
        super().__init__(f"file:{path}", finite=not loop)
        self._path = path
        self._default_fps = fps
        self._loop = loop
        self._pace = pace
        self._pacer: _Pacer | None = None
        self._position = 0  # frames delivered from the current pass, to resume after a failure

    def _create(self) -> cv2.VideoCapture:
        if not self._path.is_file():
            raise SourceUnavailable(f"{self._name}: no such file")
        return cv2.VideoCapture(str(self._path), cv2.CAP_FFMPEG)

    def open(self) -> None:
        super().open()
        assert self._cap is not None
        if self._position:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, self._position)
        file_fps = self._cap.get(cv2.CAP_PROP_FPS)
        fps = file_fps if 0 < file_fps <= 240 else self._default_fps
        self._pacer = _Pacer(fps) if self._pace else None

    def read(self) -> Frame | None:
        image = self._grab()
        if image is None:
            if not self._path.is_file():
                raise SourceUnavailable(f"{self._name}: file vanished during replay")
            if not self._loop:
                return None
            self._position = 0
            super().open()
            image = self._grab()
            if image is None:
                raise SourceUnavailable(f"{self._name}: no frame after rewinding")
        self._position += 1
        if self._pacer is not None:
            self._pacer.wait()
        return self._stamper.stamp(image)


class ImageFolderSource:
    """The images of a folder in name order at ``fps``: a replay drive, or a test camera.

    Unreadable images are skipped with a warning naming the file. After a failure (the folder
    vanished) the replay resumes after the last image it delivered.
    """

    def __init__(self, folder: Path, *, fps: float, loop: bool, pace: bool) -> None:
        self._folder = folder
        self._loop = loop
        self._name = f"folder:{folder}"
        self._pacer = _Pacer(fps) if pace else None
        self._stamper = _Stamper(self._name)
        self._queue: list[Path] = []
        self._last_name: str | None = None
        self._skipped: set[str] = set()
        self._listed = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def finite(self) -> bool:
        return not self._loop

    def _listing(self) -> list[Path]:
        try:
            entries = sorted(
                p for p in self._folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
            )
        except OSError as exc:
            raise SourceUnavailable(f"{self._name}: cannot list ({exc.strerror})") from exc
        if not entries:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise SourceUnavailable(f"{self._name}: no images ({suffixes})")
        self._listed = len(entries)
        return entries

    def open(self) -> None:
        entries = self._listing()
        last = self._last_name
        self._queue = [p for p in entries if last is None or p.name > last]
        if self._pacer is not None:
            self._pacer.reset()

    def read(self) -> Frame | None:
        misses = 0
        while True:
            if not self._queue:
                if not self._loop:
                    return None
                self._last_name = None
                self._queue = self._listing()
            path = self._queue.pop(0)
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                break
            if not self._folder.is_dir():
                self._queue.insert(0, path)
                raise SourceUnavailable(f"{self._name}: folder vanished during replay")
            self._last_name = path.name
            if path.name not in self._skipped:
                self._skipped.add(path.name)
                log.warning("%s: skipping %s: not a readable image", self._name, path.name)
            misses += 1
            if misses > self._listed:
                # A looping replay would otherwise spin forever on a folder of bad files.
                raise SourceUnavailable(f"{self._name}: none of its images can be read")
        self._last_name = path.name
        if self._pacer is not None:
            self._pacer.wait()
        return self._stamper.stamp(image)

    def close(self) -> None:
        self._queue = []


def open_frame_source(cfg: CameraConfig) -> FrameSource:
    """The source the config names, not yet opened (the capture thread opens it)."""
    if cfg.source == "device":
        return DeviceSource(cfg.device, width=cfg.width, height=cfg.height)
    if cfg.source == "rtsp":
        assert cfg.url is not None  # the config validator requires it
        return RtspSource(cfg.url, timeout_s=cfg.stream_timeout_s)
    assert cfg.path is not None  # the config validator requires it
    if cfg.source == "file":
        return VideoFileSource(cfg.path, fps=cfg.fps, loop=cfg.loop, pace=cfg.pace)
    return ImageFolderSource(cfg.path, fps=cfg.fps, loop=cfg.loop, pace=cfg.pace)
