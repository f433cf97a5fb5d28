"""Findings with real road images, and outboxes filled with them, for the sync tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.outbox import Outbox
from edge.types import Damage, Finding, FixMode, FixQuality, Position, PositionSource
from edge.wire.ids import boot_id, new_finding_id

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SAMPLE_FRAMES = SHARED_DATA / "rdd2022_china_motorbike" / "sample_frames"


def road_jpegs(count: int, *, side_px: int | None = None, quality: int = 80) -> list[bytes]:
    """Real road frames from the shared data, re-encoded (smaller when ``side_px`` is given)."""
    import cv2

    paths = sorted(SAMPLE_FRAMES.glob("*.jpg"))
    if not paths:
        pytest.fail(f"no sample frames in {SAMPLE_FRAMES}")
    out = []
    for path in paths[:count]:
        image = cv2.imread(str(path))
        assert image is not None, path
        if side_px is not None:
            image = cv2.resize(image, (side_px, side_px), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        out.append(buf.tobytes())
    return out


def make_finding(
    vehicle_id: str,
    seq: int,
    *,
    grade: int,
    lat_deg: float | None = 35.6,
    lon_deg: float | None = 140.1,
    type_code: str | None = None,
    captured_at_utc: datetime | None = None,
) -> Finding:
    type_code = type_code or {0: "D00", 1: "D00", 2: "D20", 3: "D40"}[grade]
    position = None
    if lat_deg is not None and lon_deg is not None:
        position = Position(
            lat_deg=lat_deg,
            lon_deg=lon_deg,
            source=PositionSource.INTERPOLATED,
            fix_age_s=0.2,
            fix_mode=FixMode.FIX_3D,
            fix_quality=FixQuality.GPS,
            hdop=0.9,
            speed_mps=8.5,
            heading_deg=90.0,
        )
    return Finding(
        id=new_finding_id(),
        vehicle_id=vehicle_id,
        boot_id=boot_id(),
        seq=seq,
        captured_at_utc=captured_at_utc or datetime.now(UTC),
        position=position,
        grade=grade,
        damages=(Damage(type_code, 0.8, (0.1, 0.2, 0.4, 0.5), grade),),
        model_id="roadpatrol-test-1.0.0",
        distance_m=12.5 * seq,
    )


def open_outbox(data_dir: Path) -> Outbox:
    return Outbox.open(data_dir, image_cap_bytes=1 << 40, min_free_bytes=0)


def fill_outbox(
    data_dir: Path,
    vehicle_id: str,
    count: int,
    jpegs: list[bytes],
    *,
    grades: tuple[int, ...] = (1, 2, 3, 1, 2),
    image_every: int = 1,
) -> list[Finding]:
    """``count`` findings (each ``image_every``-th with an image), spread along a road."""
    findings = []
    with open_outbox(data_dir) as outbox:
        for i in range(count):
            f = make_finding(vehicle_id, i, grade=grades[i % len(grades)], lat_deg=35.6 + i * 1e-4)
            jpeg = jpegs[i % len(jpegs)] if jpegs and i % image_every == 0 else None
            assert outbox.add(f, jpeg)
            findings.append(f)
    return findings
