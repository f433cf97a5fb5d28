"""The recording stage: graded frames and the crew's marks become findings in the outbox.

Repeat sightings of the same damage merge into one finding (see ``edge.recording.merge``).
The finding is written at its first sighting and improved in place while it is unsent: a crash never
loses it, and a better frame later still reaches the office if the first has not left yet.
Images go through the privacy stage (edge.privacy.stage): the record is written first, its
image follows once anonymised.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from edge.errors import log_failure
from edge.gps import FixHistory
from edge.outbox import Outbox
from edge.privacy.stage import FindingImages
from edge.recording.merge import MergeRules, Sighting, better, covers, same_damage
from edge.status import RecentFinding
from edge.types import ClockSource, Damage, Finding, FindingOrigin, Frame, GradedFrame
from edge.wire.ids import new_finding_id
from edge.wire.serialize import format_utc

log = logging.getLogger(__name__)

MANUAL_GRADE = 2  # a crew member thought it worth a stop: the office looks at it like "repair"
_RECENT = 20


@dataclass
class _OpenFinding:
    finding: Finding
    best: Sighting
    last: Sighting


class FindingWriter:
    """Thread-safe: the record thread and the screen's manual mark both write through it."""

    def __init__(
        self,
        outbox: Outbox,
        history: FixHistory,
        *,
        vehicle_id: str,
        boot_id: str,
        rules: MergeRules,
        images: FindingImages,
    ) -> None:
        self.outbox, self.history = outbox, history
        self.vehicle_id, self.boot_id = vehicle_id, boot_id
        self.rules, self.images = rules, images
        self._lock = threading.Lock()  # seq, the open finding, counters
        self._seq = 0
        self._open: _OpenFinding | None = None
        self._by_grade = dict.fromkeys("0123", 0)
        self._recent: collections.deque[RecentFinding] = collections.deque(maxlen=_RECENT)

    def counts(self) -> tuple[dict[str, int], tuple[RecentFinding, ...]]:
        """Findings per grade this shift ("0": frames without damage, "manual": crew marks)
        and the latest findings, newest first."""
        with self._lock:
            return dict(self._by_grade), tuple(self._recent)

    def record(self, graded: GradedFrame) -> None:
        self.outbox.count_frame(graded.grade)
        if graded.grade == 0:
            with self._lock:
                self._by_grade["0"] += 1
            return
        frame = graded.frame
        odometer = self.history.odometer_m_at(frame.mono_ns) if self.history.latest() else None
        sighting = Sighting(graded.damages, frame.mono_ns, odometer)
        with self._lock:
            current = self._open
            if (
                current is not None
                and same_damage(current.last, sighting, self.rules)
                and covers(current.best, sighting)
            ):
                self._merge(current, graded, sighting)
                return
            finding = self._new_finding(
                frame, frame.mono_ns, graded.grade, graded.damages, graded.model_id
            )
            self.outbox.add(finding, None)
            self._open = _OpenFinding(finding, sighting, sighting)
            self._count(finding)
        self.images.submit(finding, frame.image)

    def mark_manual(
        self,
        frame: Frame | None,
        mono_ns: int,
        model_id: str,
        stamp: tuple[datetime, ClockSource] | None = None,
    ) -> str | None:
        """Store ``frame`` (if any) and the position at ``mono_ns`` as a crew-marked finding;
        ``stamp`` (UTC and its clock) dates it when there is no frame."""
        with self._lock:
            finding = self._new_finding(
                frame, mono_ns, MANUAL_GRADE, (), model_id, FindingOrigin.MANUAL, stamp
            )
            try:
                self.outbox.add(finding, None)
            except Exception:
                log_failure(log, "manual mark could not be stored")
                return None
            self._count(finding)
        if frame is not None:
            self.images.submit(finding, frame.image)
        return finding.id

    def _merge(self, current: _OpenFinding, graded: GradedFrame, sighting: Sighting) -> None:
        sightings = current.finding.sightings + 1
        if better(sighting, current.best):
            finding = replace(
                current.finding,
                captured_at_utc=graded.frame.captured_at_utc,
                clock_source=graded.frame.clock_source,
                position=self.history.position_at(graded.frame.mono_ns),
                grade=graded.grade,
                damages=graded.damages,
                model_id=graded.model_id,
                sightings=sightings,
                distance_m=sighting.odometer_m,
            )
            if self.outbox.replace_unsent(finding, None):
                self.images.submit(finding, graded.frame.image)
            current.best = sighting
        else:
            finding = replace(current.finding, sightings=sightings)
            self.outbox.replace_unsent(finding, None)
        current.finding, current.last = finding, sighting

    def _new_finding(
        self,
        frame: Frame | None,
        mono_ns: int,
        grade: int,
        damages: tuple[Damage, ...],
        model_id: str,
        origin: FindingOrigin = FindingOrigin.MODEL,
        stamp: tuple[datetime, ClockSource] | None = None,
    ) -> Finding:
        self._seq += 1
        has_fix = self.history.latest() is not None
        if frame is not None:
            stamp = (frame.captured_at_utc, frame.clock_source)
        utc, clock = stamp or (datetime.now(UTC), None)
        return Finding(
            id=new_finding_id(),
            vehicle_id=self.vehicle_id,
            boot_id=self.boot_id,
            seq=self._seq,
            captured_at_utc=utc,
            clock_source=clock,
            position=self.history.position_at(mono_ns),
            grade=grade,
            damages=damages,
            model_id=model_id,
            origin=origin,
            distance_m=self.history.odometer_m_at(mono_ns) if has_fix else None,
        )

    def _count(self, finding: Finding) -> None:
        # Manual marks get their own counter: the crew's marks are not the model's grades.
        key = "manual" if finding.origin == FindingOrigin.MANUAL else str(finding.grade)
        self._by_grade[key] = self._by_grade.get(key, 0) + 1
        self._recent.appendleft(
            RecentFinding(
                id=finding.id,
                captured_at_utc=format_utc(finding.captured_at_utc),
                grade=finding.grade,
                type_codes=tuple(sorted({d.type_code for d in finding.damages})),
                origin=str(finding.origin),
                distance_m=finding.distance_m,
            )
        )
