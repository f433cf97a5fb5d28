"""The recorder: capture → grade → record, with GPS beside it, publishing status snapshots.

Threads: capture (newest frame only) and GPS — or instead a finite replay in lockstep: the
frame driver (edge.recording.drivers, edge.recording.replay) — grading (one onnxruntime
session), recording (geotag, merge repeat sightings, write the outbox) and status. Grading
hands graded frames to recording through a bounded queue that drops the oldest when full (a
replay waits for room instead), so a slow disk never stalls grading and grading never stalls
capture.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol

from edge.capture.sampler import DistanceSampler
from edge.config.loader import AppConfig
from edge.dropqueue import DropOldestQueue
from edge.errors import log_failure
from edge.gps import history_for
from edge.gps.disciplined import DisciplinedClock
from edge.grading.grader import Grader
from edge.model_store.active import ActiveModel
from edge.outbox import Outbox
from edge.privacy.stage import stage_for
from edge.recording.alerts import alerts_for
from edge.recording.drivers import FrameDriver, LiveDriver
from edge.recording.findings import FindingWriter
from edge.recording.merge import MergeRules
from edge.recording.replay import ReplayDriver
from edge.status import (
    GpsStatus,
    LinkStatus,
    ModelStatus,
    ModelUpdateResult,
    OutboxStatus,
    Status,
)
from edge.types import Frame, GradedFrame
from edge.wire.ids import new_finding_id
from edge.wire.serialize import format_utc

log = logging.getLogger(__name__)

_OUTBOX_STATS_EVERY_S = 1.0


class Recorder:
    def __init__(self, config: AppConfig, *, lockstep: bool = False):
        """``lockstep``: grade every frame of a finite replay in order (demo --fast, tests),
        instead of always the newest frame of a live camera."""
        self.config = config
        self.run_id = new_finding_id()  # "boot id": one start of the recorder
        self.started_at_utc = datetime.now(UTC)
        self.outbox = Outbox.from_config(config.vehicle.data_dir, config.outbox)
        self.history = history_for(config.gps)
        self.utc = DisciplinedClock(self.history)  # frames' UTC: GPS-disciplined once known
        self.driver: FrameDriver = (
            ReplayDriver(config, self.history, self.outbox)
            if lockstep
            else LiveDriver(config, self.history)
        )
        self.sampler = DistanceSampler(config.sampling)
        self.models = ActiveModel(config)  # the store's active package, or the shipped one
        # Finding images are anonymised in a thread of their own (edge.privacy.stage).
        self.images = stage_for(
            config.privacy, self.outbox, config.pipeline.jpeg_quality, lossless=self.driver.lossless
        )
        self.findings = FindingWriter(
            self.outbox,
            self.history,
            vehicle_id=config.vehicle.vehicle_id,
            boot_id=self.run_id,
            rules=MergeRules(
                max_distance_m=config.pipeline.merge_distance_m,
                min_x_overlap=config.pipeline.merge_min_iou,
            ),
            images=self.images,
        )
        self._graded_q: DropOldestQueue[GradedFrame] = DropOldestQueue(config.pipeline.queue_size)
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._ended = threading.Event()
        self._last_frame: Frame | None = None
        self._graded = 0
        self._frames = 0
        self._last_infer_ms = 0.0
        self._outbox_status = OutboxStatus()
        self._model_update = ModelStatus()  # only its last_update_* fields are used
        self._link_provider: LinkProvider | None = None
        self._threads: list[threading.Thread] = []
        self._last_track_ns = 0
        self._last_track_odometer_m = 0.0

    # ---- model ----

    @property
    def grader(self) -> Grader | None:
        return self.models.grader

    @property
    def model_error(self) -> str | None:
        return self.models.error

    @model_error.setter
    def model_error(self, message: str | None) -> None:
        self.models.error = message

    def reload_model(self) -> bool:
        """Switch to the store's active package now if it changed (see ActiveModel)."""
        return self.models.reload()

    def note_model_update(
        self,
        model_id: str | None,
        result: ModelUpdateResult,
        reason: str | None = None,
        *,
        activated: bool = False,
    ) -> None:
        """What became of a package pushed from the office, for the model status."""
        self._model_update = ModelStatus(
            last_update_model_id=model_id,
            last_update_result=result,
            last_update_reason=reason,
            last_update_activated=activated,
            last_update_at_utc=format_utc(datetime.now(UTC)),
        )

    # ---- life cycle ----

    def start(self) -> Recorder:
        self._refresh_outbox_stats()
        self.driver.start()
        for name, target in (
            ("grade", self._grade_loop),
            ("record", self._record_loop),
            ("status", self._status_loop),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.driver.stop()
        self._graded_q.close()
        for thread in self._threads:
            thread.join(timeout=10.0)
        self.images.close()  # what waits is anonymised and stored before the outbox closes
        self.outbox.close()

    def wait_ended(self, timeout_s: float | None = None) -> bool:
        """True once a finite replay has been graded and recorded to its end."""
        return self._ended.wait(timeout_s)

    def attach_link(self, provider: LinkProvider) -> None:
        self._link_provider = provider

    # ---- control ----

    def set_paused(self, paused: bool) -> None:
        (self._paused.set if paused else self._paused.clear)()
        log.info("grading %s", "paused" if paused else "resumed")

    def mark_manual(self) -> str | None:
        """Store the current frame and position as a finding marked by the crew."""
        frame = self._last_frame
        model_id = self.grader.model_id if self.grader else ""
        mono_ns = frame.mono_ns if frame else time.monotonic_ns()
        return self.findings.mark_manual(frame, mono_ns, model_id, self.utc.at(mono_ns))

    # ---- grading ----

    def _grade_loop(self) -> None:
        try:
            for frame in self.driver.frames(self._stop):
                self._consider(frame)
        finally:
            self._graded_q.close()  # the source ended (or a stop): recording drains and ends

    def _consider(self, frame: Frame) -> None:
        utc, clock = self.utc.at(frame.mono_ns)
        frame = replace(frame, captured_at_utc=utc, clock_source=clock)
        self._last_frame = frame
        self._frames += 1
        grader = self.grader  # read once: a model switch takes effect from the next frame
        if self._paused.is_set() or grader is None:
            return
        fix = self.history.latest()
        # A fix too old to place this frame (GPS lost, a replay over) is no fix: without
        # this the frozen odometer would stop grading for the rest of the shift.
        located = fix is not None and self.history.position_at(frame.mono_ns) is not None
        odometer = self.history.odometer_m_at(frame.mono_ns) if located else None
        speed = fix.speed_mps if fix is not None and located else None
        if not self.sampler.should_grade(frame.mono_ns, odometer, speed):
            return
        graded = grader.grade(frame)
        self._graded += 1
        self._last_infer_ms = graded.infer_ms
        if self.driver.lossless:
            self._graded_q.put_wait(graded)
        else:
            self._graded_q.put(graded)

    # ---- recording ----

    def _record_loop(self) -> None:
        while True:
            graded = self._graded_q.get(timeout_s=0.5)
            if graded is None:
                if self._graded_q.closed:
                    self.images.wait_idle()  # a finite replay has ended once its images are in
                    self._ended.set()
                    return
                continue
            try:
                self.record(graded)
            except Exception:
                # A full or broken disk must not stop grading; the frame is counted as lost.
                log_failure(log, "could not record frame %d", graded.frame.seq)

    def record(self, graded: GradedFrame) -> None:
        self.findings.record(graded)

    # ---- status ----

    def _refresh_outbox_stats(self) -> None:
        try:
            self._outbox_status = self.outbox.stats()
        except Exception:
            log_failure(log, "outbox statistics unavailable")

    def _status_loop(self) -> None:
        next_stats = 0.0
        period = 1.0 / self.config.pipeline.status_hz
        while not self._stop.wait(period):
            now = time.monotonic()
            if now >= next_stats:
                self._refresh_outbox_stats()
                next_stats = now + _OUTBOX_STATS_EVERY_S
            if self.driver.samples_track and not self._paused.is_set():
                self._maybe_track_point()
            self.models.poll()

    def _maybe_track_point(self) -> None:
        """The patrol route for the office's log: a point every track_interval_s while the
        position changes, or whenever the vehicle has moved track_min_distance_m."""
        fix = self.history.latest_with_position()
        if fix is None or fix.mono_ns == self._last_track_ns:
            return
        moved_m = self.history.odometer_m - self._last_track_odometer_m
        due_s = (fix.mono_ns - self._last_track_ns) / 1e9 >= self.config.mqtt.track_interval_s
        if due_s or moved_m >= self.config.mqtt.track_min_distance_m:
            try:
                self.outbox.add_track_point(fix)
            except Exception:
                log_failure(log, "track point not stored")
                return
            self._last_track_ns, self._last_track_odometer_m = fix.mono_ns, self.history.odometer_m

    @property
    def dropped_graded(self) -> int:
        return self._graded_q.dropped

    def status(self) -> Status:
        camera = self.driver.camera_status(self._frames, self._ended.is_set())
        gps: GpsStatus = self.driver.gps_status(self._last_frame)
        gps = replace(gps, clock_set=self.utc.trusted())  # what stamps the findings
        model = replace(
            self._model_update,
            model_id=self.grader.model_id if self.grader else "",
            name=self.grader.manifest.name if self.grader else "",
            version=self.grader.manifest.version if self.grader else "",
            infer_ms=round(self._last_infer_ms, 2),
            graded=self._graded,
            paused=self._paused.is_set(),
            error=self.model_error,
        )
        outbox = self._outbox_status
        link = self._link_provider() if self._link_provider else LinkStatus()
        privacy = self.images.status()
        alerts = alerts_for(
            replay_over=self._ended.is_set() and not self._stop.is_set(),
            camera=camera,
            gps=gps,
            outbox=outbox,
            model_error=self.model_error,
            privacy=privacy,
            mqtt=self.config.mqtt,
        )
        by_grade, recent = self.findings.counts()
        return Status(
            recording=not self._stop.is_set() and not self._ended.is_set(),
            vehicle_id=self.config.vehicle.vehicle_id,
            started_at_utc=format_utc(self.started_at_utc),
            distance_m=round(self.history.odometer_m, 1),
            findings_by_grade=by_grade,
            camera=camera,
            gps=gps,
            model=model,
            outbox=outbox,
            link=link,
            privacy=privacy,
            recent=recent,
            alerts=alerts,
        )


class LinkProvider(Protocol):
    def __call__(self) -> LinkStatus: ...
