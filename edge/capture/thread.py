"""The capture thread: reads a frame source into a LatestFrameSlot, reconnecting when it fails."""

from __future__ import annotations

import collections
import logging
import threading
import time

from edge.backoff import Backoff
from edge.capture.slot import LatestFrameSlot
from edge.capture.sources import FrameSource, open_frame_source
from edge.config.capture import CameraConfig
from edge.status import CameraStatus
from edge.types import Frame

log = logging.getLogger(__name__)

_FPS_WINDOW_NS = 2_000_000_000


class CaptureThread:
    """Owns one FrameSource; never raises, never blocks on its consumer.

    A source that fails (camera unplugged, stream dropped, folder gone) is reopened after
    ``reconnect_initial_s``, doubling up to ``reconnect_max_s`` while it keeps failing.
    A finite source that ends sets :attr:`ended` and closes the slot.
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 10.0,
        slot: LatestFrameSlot | None = None,
    ) -> None:
        self.source = source
        self.slot = slot if slot is not None else LatestFrameSlot()
        self.ended = threading.Event()
        self._initial_s = reconnect_initial_s
        self._max_s = reconnect_max_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connected = False
        self._frames = 0
        self._reconnects = 0
        self._error: str | None = None
        self._recent_ns: collections.deque[int] = collections.deque()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    @classmethod
    def from_config(cls, cfg: CameraConfig) -> CaptureThread:
        return cls(
            open_frame_source(cfg),
            reconnect_initial_s=cfg.reconnect_initial_s,
            reconnect_max_s=cfg.reconnect_max_s,
        )

    def start(self) -> CaptureThread:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self.slot.close()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def take(self, timeout_s: float | None = None) -> Frame | None:
        """The newest frame (see LatestFrameSlot.take)."""
        return self.slot.take(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> CameraStatus:
        """``reconnects`` counts attempts to reopen the source after a loss or a failed open."""
        with self._lock:
            recent = self._recent_ns
            fps = 0.0
            if len(recent) >= 2 and recent[-1] > recent[0]:
                fps = (len(recent) - 1) * 1e9 / (recent[-1] - recent[0])
            if recent and time.monotonic_ns() - recent[-1] > _FPS_WINDOW_NS:
                fps = 0.0  # nothing arrived lately: do not show a stale rate
            return CameraStatus(
                connected=self._connected,
                source=self.source.name,
                fps=round(fps, 2),
                frames=self._frames,
                dropped_frames=self.slot.dropped,
                reconnects=self._reconnects,
                error=self._error,
            )

    # --- the thread ------------------------------------------------------------------------

    def _set_lost(self, error: str) -> None:
        with self._lock:
            self._connected = False
            self._error = error

    def _try_open(self, attempt: int) -> bool:
        if attempt > 0:
            with self._lock:
                self._reconnects += 1
        try:
            self.source.open()
        except Exception as exc:  # the camera must never take the process down
            self._set_lost(str(exc) or type(exc).__name__)
            if attempt == 0:
                log.warning("camera %s: %s; retrying", self.source.name, exc)
            return False
        with self._lock:
            self._connected = True
            self._error = None
        log.info("camera %s: open", self.source.name)
        return True

    def _record(self, frame: Frame) -> None:
        self.slot.put(frame)
        with self._lock:
            self._frames += 1
            self._recent_ns.append(frame.mono_ns)
            while self._recent_ns and frame.mono_ns - self._recent_ns[0] > _FPS_WINDOW_NS:
                self._recent_ns.popleft()

    def _run(self) -> None:
        backoff = Backoff(self._initial_s, self._max_s, jitter=False)  # a local device
        attempt = 0
        is_open = False
        try:
            while not self._stop.is_set():
                if not is_open:
                    is_open = self._try_open(attempt)
                    attempt += 1
                    if not is_open:
                        self._stop.wait(backoff.next_delay_s())
                        continue
                try:
                    frame = self.source.read()
                except Exception as exc:
                    log.warning("camera %s lost: %s", self.source.name, exc)
                    self._set_lost(str(exc) or type(exc).__name__)
                    self.source.close()
                    is_open = False
                    self._stop.wait(backoff.next_delay_s())
                    continue
                if frame is None:
                    log.info("camera %s: replay ended", self.source.name)
                    with self._lock:
                        self._connected = False
                    self.ended.set()
                    return
                backoff.reset()
                self._record(frame)
        finally:
            self.source.close()
            self.slot.close()
