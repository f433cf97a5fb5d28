"""The lockstep replay driver (`demo --fast`, tests): every frame of a finite recording, in
order, on one time line with its NMEA log.

The whole log is read before the first frame, timed by the receiver's clock rather than by
when this machine got to parse it, and each frame's time is its place in the video at the
configured fps from the log's first fix: so a replay grades and geotags the same frames the
same way however fast or loaded the machine is. No GPS thread runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

from edge.capture.thread import CaptureThread
from edge.config.loader import AppConfig
from edge.gps import FixHistory, open_fix_source
from edge.gps.sources import EndOfFixes
from edge.outbox import Outbox
from edge.status import CameraStatus, GpsStatus
from edge.types import Frame


class ReplayDriver:
    lossless = True
    samples_track = False

    def __init__(self, config: AppConfig, history: FixHistory, outbox: Outbox) -> None:
        self.config = config
        self.history = history
        self.outbox = outbox
        self.capture = CaptureThread.from_config(config.camera)  # its source; never started
        self._base_ns = time.monotonic_ns()
        self._first_utc: datetime | None = None

    def start(self) -> None:
        """Read the whole NMEA log into the history, and its track into the outbox."""
        source = open_fix_source(self.config.gps, keep_going=True)
        next_track_s = 0.0
        try:
            while True:
                try:
                    fix = source.read(timeout_s=1.0)
                except EndOfFixes:
                    break
                if fix is None or fix.time_utc is None:
                    continue
                self._first_utc = self._first_utc or fix.time_utc
                offset_s = (fix.time_utc - self._first_utc).total_seconds()
                fix = replace(fix, mono_ns=self._base_ns + int(offset_s * 1e9))
                self.history.add(fix)
                if fix.has_position and offset_s >= next_track_s:
                    self.outbox.add_track_point(fix)
                    next_track_s = offset_s + self.config.mqtt.track_interval_s
        finally:
            source.close()

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        source = self.capture.source
        fps = self.config.camera.fps or 1.0
        try:
            source.open()
            while not stop.is_set():
                frame = source.read()
                if frame is None:
                    return
                offset_s = frame.seq / fps
                yield replace(
                    frame,
                    mono_ns=self._base_ns + int(offset_s * 1e9),
                    captured_at_utc=(self._first_utc or frame.captured_at_utc)
                    + timedelta(seconds=offset_s),
                )
        finally:
            source.close()

    def stop(self) -> None:
        self.capture.stop()

    def camera_status(self, frames_seen: int, ended: bool) -> CameraStatus:
        return replace(self.capture.status(), connected=not ended, frames=frames_seen)

    def gps_status(self, last_frame: Frame | None) -> GpsStatus:
        """The fix at the frame being graded: the log was read ahead, so its newest fix is
        the drive's end, not where the replay is."""
        fix = self.history.latest_with_position()
        if fix is None:
            return GpsStatus()
        at = last_frame.mono_ns if last_frame else fix.mono_ns
        pos = self.history.position_at(at)
        return GpsStatus(
            mode=int(fix.mode),
            quality=str(fix.quality),
            sats_used=fix.sats_used,
            hdop=fix.hdop,
            speed_mps=pos.speed_mps if pos else fix.speed_mps,
            lat_deg=pos.lat_deg if pos else fix.lat_deg,
            lon_deg=pos.lon_deg if pos else fix.lon_deg,
            fix_age_s=pos.fix_age_s if pos else None,
        )
