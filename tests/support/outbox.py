"""Findings and real JPEGs for the outbox tests.

JPEGs are RDD2022 China_MotorBike sample frames (Arya, Maeda, Sekimoto et al., CC BY-SA 4.0).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.outbox import Outbox
from edge.types import (
    Damage,
    Finding,
    FindingOrigin,
    FixMode,
    FixQuality,
    Position,
    PositionSource,
)
from edge.wire.ids import boot_id, new_finding_id

from support.capture import sample_frame_paths

CHIBA_CITY_HALL = (35.6073, 140.1063)
T0 = datetime(2025, 4, 1, 0, 30, 0, tzinfo=UTC)
_DAMAGE_FOR_GRADE = {1: "D00", 2: "D20", 3: "D40"}


def real_jpegs(n: int, start: int = 0) -> list[bytes]:
    return [p.read_bytes() for p in sample_frame_paths(n, start)]


def make_finding(
    grade: int = 1,
    captured_at_utc: datetime = T0,
    *,
    seq: int = 0,
    positioned: bool = True,
    finding_id: str | None = None,
    origin: FindingOrigin = FindingOrigin.MODEL,
) -> Finding:
    position = None
    if positioned:
        position = Position(
            lat_deg=CHIBA_CITY_HALL[0] + seq * 1e-5,
            lon_deg=CHIBA_CITY_HALL[1] + seq * 2e-5,
            source=PositionSource.INTERPOLATED,
            fix_age_s=0.4,
            fix_mode=FixMode.FIX_3D,
            fix_quality=FixQuality.DGPS,
            hdop=0.9,
            speed_mps=11.5,
            heading_deg=87.25,
        )
    damages = ()
    if grade > 0:
        code = _DAMAGE_FOR_GRADE[grade]
        damages = (Damage(code, 0.81, (0.1, 0.55, 0.42, 0.9), grade),)
    return Finding(
        id=finding_id or new_finding_id(),
        vehicle_id="chiba-07",
        boot_id=boot_id(),
        seq=seq,
        captured_at_utc=captured_at_utc,
        position=position,
        grade=grade,
        damages=damages,
        model_id="rdd-effnet-lite0-1.0.0",
        origin=origin,
        sightings=2,
        distance_m=12.5 * seq,
    )


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Look at the database directly (read-only), not through the code under test."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


DAY_S = 86_400.0


class ManualClock:
    """A clock the test moves by hand (wall seconds or monotonic), instead of sleeping."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def deliver_findings(outbox: Outbox, ids: Iterable[str]) -> int:
    """The broker acknowledged these findings and the office receipted them: delivered.
    Returns how many the broker's acknowledgement changed."""
    ids = list(ids)
    acked = outbox.mark_findings_sent(ids)
    outbox.mark_receipted(ids, ())
    return acked


def deliver_images(outbox: Outbox, ids: Iterable[str]) -> int:
    ids = list(ids)
    acked = outbox.mark_images_sent(ids)
    outbox.mark_receipted((), ids)
    return acked


def deliver_finding(outbox: Outbox, finding_id: str) -> bool:
    return deliver_findings(outbox, [finding_id]) == 1


def deliver_image(outbox: Outbox, finding_id: str) -> bool:
    return deliver_images(outbox, [finding_id]) == 1
