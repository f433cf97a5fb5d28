"""Where the recorder's frames and fixes come from: the live devices, or a finite replay.

Both drivers have one face (``FrameDriver``), so the recorder has no replay branches: it
grades what ``frames()`` yields and asks the driver for the camera's and the GPS's status.
The replay driver is in ``edge.recording.replay``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from edge.capture.thread import CaptureThread
from edge.config.loader import AppConfig
from edge.gps import FixHistory, GpsThread, open_fix_source
from edge.status import CameraStatus, GpsStatus
from edge.types import Frame

_TAKE_TIMEOUT_S = 0.5  # how often grading looks up from an empty camera to see a stop


class FrameDriver(Protocol):
    """Frames to grade and fixes into the recorder's FixHistory, with their devices' status."""

    # Every frame graded and recorded in order, waiting for room (a replay), rather than the
    # newest one, dropping what a slow disk cannot take (a live camera).
    lossless: bool
    # The status loop samples the route for the office; a replay stores its own at start.
    samples_track: bool

    def start(self) -> None: ...

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        """Frames until ``stop`` is set or a finite source ends."""
        ...

    def stop(self) -> None: ...

    def camera_status(self, frames_seen: int, ended: bool) -> CameraStatus: ...

    def gps_status(self, last_frame: Frame | None) -> GpsStatus: ...


class LiveDriver:
    """The vehicle's camera (newest frame only) and GPS receiver, each in its own thread."""

    lossless = False
    samples_track = True

    def __init__(self, config: AppConfig, history: FixHistory) -> None:
        self.gps = GpsThread(open_fix_source(config.gps, keep_going=True), history)
        self.capture = CaptureThread.from_config(config.camera)

    def start(self) -> None:
        self.gps.start()
        self.capture.start()

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        while not stop.is_set():
            frame = self.capture.take(timeout_s=_TAKE_TIMEOUT_S)
            if frame is not None:
                yield frame
            elif self.capture.ended.is_set():
                return

    def stop(self) -> None:
        self.capture.stop()
        self.gps.stop()

    def camera_status(self, frames_seen: int, ended: bool) -> CameraStatus:
        del frames_seen, ended  # the capture thread counts and watches the camera itself
        return self.capture.status()

    def gps_status(self, last_frame: Frame | None) -> GpsStatus:
        del last_frame
        return self.gps.status()
