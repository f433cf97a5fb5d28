"""A type correction in `roadpatrol office review` moves the finding between damage sites, as
`office export --sites` shows; and the review's note reaches the per-finding export."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sync.drain import drain

from support.broker import Broker, mqtt_cfg, wait_until
from support.collect import Office
from support.office_review import (
    OLD_FINDING_COLUMNS,
    OLD_SITE_COLUMNS,
    REVIEW_FIELDS,
    VEHICLE,
    VEHICLE_TWO,
    ReceivedOffice,
    cli,
    sql,
)
from support.sync_data import open_outbox


def _db(office: ReceivedOffice) -> str:
    return office.db


def _review(capsys: pytest.CaptureFixture[str], office: ReceivedOffice, *args: str) -> None:
    rc, _, err = cli(capsys, "office", "review", "--db", _db(office), *args, "--by", "anna")
    assert rc == 0, err


def _geojson(capsys: pytest.CaptureFixture[str], office: ReceivedOffice, *args: str) -> list[Any]:
    rc, out, err = cli(capsys, "office", "export", "--db", _db(office), "--format", "geojson",
                       *args)  # fmt: skip
    assert rc == 0, err
    features: list[Any] = json.loads(out)["features"]
    return features


def _sites(capsys: pytest.CaptureFixture[str], office: ReceivedOffice) -> dict[int, dict]:
    """`export --sites` by site id: the properties, with ``at`` = [lon, lat]."""
    return {
        f["properties"]["site_id"]: {**f["properties"], "at": f["geometry"]["coordinates"]}
        for f in _geojson(capsys, office, "--sites")
    }


def _members(capsys: pytest.CaptureFixture[str], office: ReceivedOffice) -> dict[int, set[str]]:
    """Site id → the finding ids that count in it, from the per-finding export's ``site_ids``."""
    out: dict[int, set[str]] = {}
    for f in _geojson(capsys, office):
        for site_id in (f["properties"]["site_ids"] or "").split(","):
            if site_id:
                out.setdefault(int(site_id), set()).add(f["properties"]["id"])
    return out


def _at(office: ReceivedOffice, *fids: str) -> list[float]:
    """The mean [lon, lat] of these findings as the vehicles sent them."""
    found = [f.position for f in office.findings + office.pair if f.id in fids]
    places = [(p.lon_deg, p.lat_deg) for p in found if p is not None]
    assert len(places) == len(fids)
    return [sum(lon for lon, _ in places) / len(fids), sum(lat for _, lat in places) / len(fids)]


def _pair_site(sites: dict[int, dict], type_code: str) -> list[dict]:
    return [
        s for s in sites.values() if s["type_code"] == type_code and s["vehicles"] == VEHICLE_TWO
    ]


@pytest.mark.slow
def test_a_finding_corrected_to_another_type_joins_a_site_of_that_type(
    office_pair: ReceivedOffice, capsys: pytest.CaptureFixture[str]
) -> None:
    p0, p1 = (f.id for f in office_pair.pair)
    before = _sites(capsys, office_pair)
    [crack] = _pair_site(before, "D00")
    assert (crack["sightings"], _members(capsys, office_pair)[crack["site_id"]]) == (2, {p0, p1})
    assert not _pair_site(before, "D40")

    _review(capsys, office_pair, p0, "--grade", "3", "--types", "D40")
    after = _sites(capsys, office_pair)
    [pothole] = _pair_site(after, "D40")
    assert (pothole["sightings"], pothole["max_grade"], pothole["office_grade"]) == (1, 3, 3)
    assert pothole["first_seen_utc"] == pothole["last_seen_utc"] == crack["first_seen_utc"]
    assert (pothole["last_finding_id"], pothole["review_verdict"]) == (p0, "corrected")
    assert pothole["at"] == pytest.approx(_at(office_pair, p0), abs=2e-7)
    # The crack site keeps its id and now counts only the other sighting, where that one was.
    left = after[crack["site_id"]]
    assert (left["sightings"], left["last_finding_id"], left["max_grade"]) == (1, p1, 1)
    assert left["first_seen_utc"] == left["last_seen_utc"] == crack["last_seen_utc"]
    assert left["at"] == pytest.approx(_at(office_pair, p1), abs=2e-7)
    members = _members(capsys, office_pair)
    assert (members[crack["site_id"]], members[pothole["site_id"]]) == ({p1}, {p0})
    assert len(after) == len(before) + 1


def test_two_sightings_corrected_to_one_type_form_one_site(
    office_pair: ReceivedOffice, capsys: pytest.CaptureFixture[str]
) -> None:
    p0, p1 = (f.id for f in office_pair.pair)
    before = _sites(capsys, office_pair)
    [crack] = _pair_site(before, "D00")
    for fid in (p0, p1):
        _review(capsys, office_pair, fid, "--grade", "3", "--types", "D40")
    after = _sites(capsys, office_pair)
    assert not _pair_site(after, "D00") and crack["site_id"] not in after  # emptied: deleted
    [pothole] = _pair_site(after, "D40")
    assert (pothole["sightings"], pothole["office_grade"], pothole["reviewed_sightings"]) == (
        2,
        3,
        2,
    )
    assert (pothole["first_seen_utc"], pothole["last_seen_utc"]) == (
        crack["first_seen_utc"], crack["last_seen_utc"],
    )  # fmt: skip
    assert pothole["last_finding_id"] == p1
    assert pothole["at"] == pytest.approx(_at(office_pair, p0, p1), abs=2e-7)
    assert _members(capsys, office_pair)[pothole["site_id"]] == {p0, p1}
    assert len(after) == len(before)
    assert sql(office_pair, "SELECT COUNT(*) FROM sites WHERE sightings < 1") == [(0,)]


def test_a_correction_joins_sites_within_the_radius_given(
    office_pair: ReceivedOffice, capsys: pytest.CaptureFixture[str]
) -> None:
    p0, p1 = (f.id for f in office_pair.pair)  # 3 m apart
    rc, _, err = cli(capsys, "office", "review", "--db", _db(office_pair), p0, "--grade", "3",
                     "--types", "D40", "--site-radius-m", "0")  # fmt: skip
    assert rc == 2 and "--site-radius-m 0" in err
    for fid in (p0, p1):
        _review(capsys, office_pair, fid, "--grade", "3", "--types", "D40", "--site-radius-m", "2")
    sites = _pair_site(_sites(capsys, office_pair), "D40")
    assert sorted((s["sightings"], s["last_finding_id"]) for s in sites) == sorted(
        [(1, p0), (1, p1)]
    )


def _shape(sites: dict[int, dict], members: dict[int, set[str]]) -> list[tuple]:
    """The sites without their ids and review columns: what a revert must restore."""
    keep = [c for c in OLD_SITE_COLUMNS if c not in ("site_id", "lat_deg", "lon_deg")]
    return sorted(
        (
            tuple(str(s[c]) for c in keep),
            tuple(sorted(members[i])),
            tuple(round(x, 6) for x in s["at"]),
        )
        for i, s in sites.items()
    )


def test_a_new_review_that_reverts_the_types_restores_the_sites(
    office_pair: ReceivedOffice, capsys: pytest.CaptureFixture[str]
) -> None:
    p0, p1 = (f.id for f in office_pair.pair)
    a1 = office_pair.findings[1].id  # the second of two sightings of one pothole
    original = _shape(_sites(capsys, office_pair), _members(capsys, office_pair))
    [pothole] = [s for s in _sites(capsys, office_pair).values() if s["sightings"] == 2
                 and s["vehicles"] == VEHICLE]  # fmt: skip
    _review(capsys, office_pair, a1, "--grade", "1", "--types", "D00")
    for fid in (p0, p1):
        _review(capsys, office_pair, fid, "--grade", "3", "--types", "D40")
    moved = _sites(capsys, office_pair)
    assert moved[pothole["site_id"]]["sightings"] == 1
    assert any(s["type_code"] == "D00" and s["last_finding_id"] == a1 for s in moved.values())
    assert _shape(moved, _members(capsys, office_pair)) != original

    _review(capsys, office_pair, a1, "--confirm")  # back into the pothole site it came from
    _review(capsys, office_pair, p0, "--grade", "1", "--types", "D00")
    _review(capsys, office_pair, p1, "--not-damage")  # back among its own types, counting 0
    restored = _sites(capsys, office_pair)
    assert restored[pothole["site_id"]]["sightings"] == 2
    assert _shape(restored, _members(capsys, office_pair)) == original
    [crack] = _pair_site(restored, "D00")
    assert (crack["office_grade"], crack["reviewed_sightings"]) == (1, 2)  # p0's grade 1 counts


@pytest.mark.slow
def test_a_redelivery_after_a_correction_counts_no_sighting_twice(
    broker: Broker,
    office_pair: ReceivedOffice,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    p0, p1 = (f.id for f in office_pair.pair)
    for fid in (p0, p1, office_pair.findings[1].id):
        _review(capsys, office_pair, fid, "--grade", "3", "--types", "D40,D20")
    corrected = _sites(capsys, office_pair)
    assert [s["sightings"] for s in _pair_site(corrected, "D20")] == [2]
    members = _members(capsys, office_pair)
    everything = len(office_pair.findings) + len(office_pair.pair)
    with Office(office_pair.office_dir, mqtt_cfg(broker.port), client_id="office-again",
                db=office_pair.db) as again:  # fmt: skip
        backups = {VEHICLE: office_pair.outbox_backup, VEHICLE_TWO: office_pair.pair_outbox_backup}
        for vehicle, backup in backups.items():
            assert backup is not None
            resend = tmp_path / f"resend-{vehicle}"
            shutil.copytree(backup, resend)
            with open_outbox(resend) as outbox:
                result = drain(mqtt_cfg(broker.port), outbox, vehicle, timeout_s=60)
            assert result.remaining == 0
        assert wait_until(lambda: again.store.counts().deliveries == 2 * everything, 20)
    assert _sites(capsys, office_pair) == corrected
    assert _members(capsys, office_pair) == members


def test_the_review_note_is_exported_per_finding(
    office_pair: ReceivedOffice, capsys: pytest.CaptureFixture[str]
) -> None:
    a0, a1, a2 = (f.id for f in office_pair.findings[:3])
    note = "深い穴, 車線の中央\n要連絡"  # a comma and a line break: CSV must quote them
    _review(capsys, office_pair, a0, "--not-damage", "--note", "shadow of a manhole")
    _review(capsys, office_pair, a1, "--confirm", "--note", "first look")
    _review(capsys, office_pair, a1, "--grade", "3", "--types", "D40", "--note", note)
    _review(capsys, office_pair, a2, "--confirm")
    props = {f["properties"]["id"]: f["properties"] for f in _geojson(capsys, office_pair)}
    assert props[a0]["review_note"] == "shadow of a manhole"
    assert props[a1]["review_note"] == note  # the newest review's
    assert props[a2]["review_note"] == ""  # reviewed, no note
    assert props[office_pair.findings[7].id]["review_note"] is None  # unreviewed

    rc, out, err = cli(capsys, "office", "export", "--db", _db(office_pair), "--format", "csv")
    assert rc == 0, err
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert list(next(iter(rows.values()))) == OLD_FINDING_COLUMNS + REVIEW_FIELDS + ["review_note"]
    assert (rows[a0]["review_note"], rows[a1]["review_note"]) == ("shadow of a manhole", note)
    assert rows[office_pair.findings[7].id]["review_note"] == ""
    site_props = _geojson(capsys, office_pair, "--sites")[0]["properties"]
    assert "review_note" not in site_props  # per finding only: site columns are unchanged
