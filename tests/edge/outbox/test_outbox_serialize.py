"""Finding ids (UUIDv7), the boot id, and the finding's JSON form."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.types import Damage, FindingOrigin
from edge.wire.ids import boot_id, new_finding_id, uuid7_unix_ms
from edge.wire.serialize import FindingFormatError, finding_from_dict, finding_to_dict

from support.outbox import T0, make_finding


def test_finding_id_is_an_rfc9562_uuid7_carrying_the_time() -> None:
    before_ms = time.time_ns() // 1_000_000
    value = new_finding_id()
    after_ms = time.time_ns() // 1_000_000
    parsed = uuid.UUID(value)
    assert str(parsed) == value
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before_ms <= uuid7_unix_ms(value) <= after_ms + 1


def test_finding_ids_sort_in_creation_order_across_threads() -> None:
    sequential = [new_finding_id() for _ in range(5000)]
    assert sequential == sorted(sequential)
    assert len(set(sequential)) == len(sequential)

    per_thread: list[list[str]] = [[] for _ in range(4)]

    def make(bucket: list[str]) -> None:
        bucket.extend(new_finding_id() for _ in range(2000))

    threads = [threading.Thread(target=make, args=(b,)) for b in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for bucket in per_thread for i in bucket]
    assert len(set(everything)) == len(everything)
    assert all(bucket == sorted(bucket) for bucket in per_thread)


def test_boot_id_is_the_kernels_and_stable() -> None:
    kernel = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert boot_id() == kernel
    assert boot_id() == boot_id()


@pytest.mark.parametrize("positioned", [True, False])
def test_json_form_round_trips_exactly(positioned: bool) -> None:
    finding = make_finding(3, T0 + timedelta(microseconds=123457), seq=4, positioned=positioned)
    text = json.dumps(finding_to_dict(finding), allow_nan=False)
    back = finding_from_dict(json.loads(text))
    assert back == finding
    raw = json.loads(text)
    assert raw["captured_at_utc"] == "2025-04-01T00:30:00.123457Z"
    assert raw["origin"] == "model"
    if positioned:
        assert raw["position"]["source"] == "interpolated"
        assert raw["position"]["fix_mode"] == "fix_3d"
        assert raw["position"]["fix_quality"] == "dgps"
    else:
        assert raw["position"] is None


def test_times_in_other_zones_are_written_as_utc() -> None:
    jst = timezone(timedelta(hours=9))
    finding = make_finding(1, datetime(2025, 4, 1, 9, 30, tzinfo=jst))
    raw = finding_to_dict(finding)
    assert raw["captured_at_utc"] == "2025-04-01T00:30:00.000000Z"
    assert finding_from_dict(raw).captured_at_utc == datetime(2025, 4, 1, 0, 30, tzinfo=UTC)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    score=finite,
    box=st.tuples(finite, finite, finite, finite),
    micro=st.integers(0, 999_999),
    distance=st.none() | finite,
    origin=st.sampled_from(list(FindingOrigin)),
)
def test_round_trip_holds_for_any_finite_values(
    lat: float,
    lon: float,
    score: float,
    box: tuple[float, float, float, float],
    micro: int,
    distance: float | None,
    origin: FindingOrigin,
) -> None:
    base = make_finding(2, T0.replace(microsecond=micro), origin=origin)
    assert base.position is not None
    finding = replace(
        base,
        position=replace(base.position, lat_deg=lat, lon_deg=lon, hdop=None),
        damages=(Damage("D20", score, box, 2), Damage("D00", 0.5, (0, 0, 1, 1), 1)),
        distance_m=distance,
    )
    assert finding_from_dict(json.loads(json.dumps(finding_to_dict(finding)))) == finding


def test_bad_dicts_are_refused_naming_the_field() -> None:
    good = finding_to_dict(make_finding(2, seq=3))
    cases = {
        "grade": {k: v for k, v in good.items() if k != "grade"},
        "captured_at_utc": {**good, "captured_at_utc": "2025-04-01T00:30:00"},
        "position.fix_mode": {**good, "position": {**good["position"], "fix_mode": "4d"}},
        "damages[0].score": {**good, "damages": [{**good["damages"][0], "score": "high"}]},
        "damages[0].box_norm": {**good, "damages": [{**good["damages"][0], "box_norm": [1, 2]}]},
        "seq": {**good, "seq": True},
        "origin": {**good, "origin": "guess"},
    }
    for field, bad in cases.items():
        with pytest.raises(FindingFormatError, match=field.replace("[", r"\[").replace("]", r"\]")):
            finding_from_dict(bad)


def test_values_json_cannot_carry_are_refused_when_writing() -> None:
    finding = make_finding(2)
    with pytest.raises(ValueError, match=r"damages\[0\]\.score"):
        finding_to_dict(replace(finding, damages=(Damage("D20", math.nan, (0, 0, 1, 1), 2),)))
    with pytest.raises(ValueError, match="time zone"):
        finding_to_dict(replace(finding, captured_at_utc=datetime(2025, 4, 1, 0, 30)))
