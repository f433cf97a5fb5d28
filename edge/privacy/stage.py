"""The privacy stage: finding images are anonymised off the recording path, then stored.

The recorder writes a finding's record at once and hands its frame here. One thread hands it
to the anonymiser's process (edge.privacy.worker: detect, blur, encode, at a lower priority)
and attaches the JPEG that comes back to the stored record, so only anonymised pixels ever
reach the disk. The hand-over is bounded: when it is full, the waiting image of the
lowest-graded (then oldest) finding is dropped, its record stays without an image. A repeat
sighting's better frame replaces the waiting frame of the same finding.

If the detectors cannot be loaded (model missing, corrupt) or fail, images are withheld, the
records are still stored, and the status says why: never an image that was not anonymised.
With ``[privacy] enabled = false`` the stage is :class:`RawImages`: the frame is stored as is,
its EXIF saying so.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.config.privacy import PrivacyConfig
from edge.errors import log_failure
from edge.outbox import Outbox
from edge.privacy.anonymise import encode_jpeg, off_note
from edge.privacy.detect import PrivacyError
from edge.privacy.remote import AnonymiserProcess
from edge.status import PrivacyStatus
from edge.types import Finding

log = logging.getLogger(__name__)


class FindingImages(Protocol):
    """Where the recorder hands a stored finding's frame (BGR) for its image."""

    def submit(self, finding: Finding, image: np.ndarray) -> None: ...

    def status(self) -> PrivacyStatus: ...

    def wait_idle(self, timeout_s: float | None = None) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True, eq=False)
class _Job:
    finding: Finding
    image: np.ndarray


class RawImages:
    """Privacy off: the frame is stored as it is, at once, its EXIF saying it was not
    anonymised."""

    def __init__(self, outbox: Outbox, jpeg_quality: int) -> None:
        self.outbox, self.jpeg_quality = outbox, jpeg_quality
        self._stored = 0

    def submit(self, finding: Finding, image: np.ndarray) -> None:
        try:
            jpeg = encode_jpeg(image, self.jpeg_quality)
            if self.outbox.attach_image(finding, jpeg, off_note()):
                self._stored += 1
        except Exception:  # the record is stored; a broken disk must not stop recording
            log_failure(log, "image of finding %s not stored", finding.id)

    def status(self) -> PrivacyStatus:
        return PrivacyStatus(enabled=False, stored=self._stored)

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        return True  # stored before submit returns

    def close(self) -> None:
        pass


class PrivacyStage:
    """See the module docstring. ``start()`` the thread; ``close()`` finishes what waits."""

    def __init__(
        self, config: PrivacyConfig, outbox: Outbox, jpeg_quality: int, *, lossless: bool = False
    ) -> None:
        """``lossless``: submit waits while the queue is full instead of dropping (finite
        replays: demo --fast and tests, where every image matters more than latency)."""
        self.config, self.outbox, self.jpeg_quality = config, outbox, jpeg_quality
        self.lossless = lossless
        self.anonymiser: AnonymiserProcess | None = None
        self.error: str | None = None
        try:
            self.anonymiser = AnonymiserProcess(config)
        except PrivacyError as exc:
            self.error = str(exc)
            log.error("privacy: %s; finding images are withheld (records are kept)", exc)
        self._jobs: dict[str, _Job] = {}  # by finding id, oldest first
        self._cond = threading.Condition()
        self._closing = False
        self._busy = False
        self._stored = self._withheld = self._regions = 0
        self._last_ms = 0.0
        self._thread = threading.Thread(target=self._run, name="privacy", daemon=True)

    def start(self) -> PrivacyStage:
        self._thread.start()
        return self

    def submit(self, finding: Finding, image: np.ndarray) -> None:
        """Never blocks (unless ``lossless``): see the module docstring for what is dropped
        when it is full."""
        with self._cond:
            if self.lossless:
                self._cond.wait_for(
                    lambda: len(self._jobs) < self.config.queue_size or self._closing
                )
            if self.anonymiser is None or self._closing:
                self._withheld += 1
                return
            if (
                self._jobs.pop(finding.id, None) is None
                and len(self._jobs) >= self.config.queue_size
            ):
                victim = min(self._jobs.values(), key=lambda j: j.finding.grade)
                del self._jobs[victim.finding.id]
                self._withheld += 1
                log.warning("privacy: behind; image of finding %s dropped", victim.finding.id)
            self._jobs[finding.id] = _Job(finding, image)
            self._cond.notify_all()

    def _next(self) -> _Job | None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._jobs or self._closing)
            if not self._jobs:
                return None
            self._busy = True
            job = self._jobs.pop(next(iter(self._jobs)))
            self._cond.notify_all()  # a lossless submit may wait for the room
            return job

    def _run(self) -> None:
        while (job := self._next()) is not None:
            self._process(job)

    def _revive(self) -> None:
        """A worker that died (killed, out of memory) is started again for the next image;
        the image that found it dead was withheld."""
        assert self.anonymiser is not None
        if self.anonymiser.alive:
            return
        self.anonymiser.close()
        log.warning("privacy: the anonymiser's process had ended; starting it again")
        self.anonymiser = AnonymiserProcess(self.config)

    def _process(self, job: _Job) -> None:
        try:
            self._revive()
            assert self.anonymiser is not None
            jpeg, regions, detect_ms = self.anonymiser.run(job.image, self.jpeg_quality)
            stored = self.outbox.attach_image(job.finding, jpeg, self.anonymiser.note(len(regions)))
        except PrivacyError as exc:
            self.error = str(exc)
            log.error("privacy: %s; image of finding %s withheld", exc, job.finding.id)
            stored = False
        except Exception:
            # A disk or outbox error: the record is stored, the image is lost, grading goes on.
            log_failure(log, "privacy: image of finding %s not stored", job.finding.id)
            stored = False
        else:
            self.error = None
            self._regions += len(regions)
            self._last_ms = detect_ms
        with self._cond:
            if stored:
                self._stored += 1
            else:
                self._withheld += 1

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """True once nothing waits and nothing is being processed."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._jobs and not self._busy, timeout_s)

    def close(self) -> None:
        """Anonymise and store what waits, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        if self.anonymiser is not None:
            self.anonymiser.close()

    def status(self) -> PrivacyStatus:
        with self._cond:
            return PrivacyStatus(
                enabled=True,
                by=self.anonymiser.by if self.anonymiser else "",
                error=self.error,
                queued=len(self._jobs) + int(self._busy),
                stored=self._stored,
                withheld=self._withheld,
                regions=self._regions,
                detect_ms=round(self._last_ms, 1),
            )


def stage_for(
    config: PrivacyConfig, outbox: Outbox, jpeg_quality: int, *, lossless: bool = False
) -> FindingImages:
    if not config.enabled:
        return RawImages(outbox, jpeg_quality)
    return PrivacyStage(config, outbox, jpeg_quality, lossless=lossless).start()
