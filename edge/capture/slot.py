"""A one-frame mailbox between the capture thread and whoever grades frames."""

from __future__ import annotations

import threading
import time

from edge.types import Frame


class LatestFrameSlot:
    """Holds only the newest frame: a slow consumer never works through stale frames.

    ``put`` never blocks; a frame overwritten before anyone took it counts as dropped.
    ``close`` marks the end (a finished replay): ``take`` then hands out what is left and
    afterwards returns None at once.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._closed = False
        self._put = 0
        self._taken = 0
        self._dropped = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self._dropped += 1
            self._frame = frame
            self._put += 1
            self._cond.notify_all()

    def take(self, timeout_s: float | None = None) -> Frame | None:
        """The newest frame not yet taken; None after ``timeout_s`` or once closed and empty."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._frame is None and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._frame = self._frame, None
            if frame is not None:
                self._taken += 1
            return frame

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once the producer has finished (the frame left in it may still be taken)."""
        with self._cond:
            return self._closed

    @property
    def dropped(self) -> int:
        with self._cond:
            return self._dropped

    @property
    def put_count(self) -> int:
        with self._cond:
            return self._put

    @property
    def taken_count(self) -> int:
        with self._cond:
            return self._taken
