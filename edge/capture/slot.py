"""A one-frame mailbox between the capture thread and whoever grades frames."""

from __future__ import annotations

from edge.dropqueue import DropOldestQueue
from edge.types import Frame


class LatestFrameSlot(DropOldestQueue[Frame]):
    """Holds only the newest frame: a slow consumer never works through stale frames.

    A drop-oldest queue of one: ``put`` never blocks, and a frame overwritten before anyone
    took it counts as dropped. ``close`` marks the end (a finished replay): ``take`` then
    hands out what is left and afterwards returns None at once. One producer and one
    consumer, so the counters need no lock of their own.
    """

    def __init__(self) -> None:
        super().__init__(maxsize=1)
        self.put_count = 0
        self.taken_count = 0

    def put(self, item: Frame) -> None:
        super().put(item)
        self.put_count += 1

    def take(self, timeout_s: float | None = None) -> Frame | None:
        """The newest frame not yet taken; None after ``timeout_s`` or once closed and empty."""
        frame = self.get(timeout_s)
        if frame is not None:
            self.taken_count += 1
        return frame
