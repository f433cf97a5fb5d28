"""A WAL cut short after kill -9 drops committed rows: their pictures are quarantined, never
deleted, counted by `outbox status`, and `outbox recover` rebuilds the findings from them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import piexif
import pytest

from edge.cli import main
from edge.outbox import Outbox
from edge.outbox.images import dms_to_deg

from support import TESTS
from support.outbox import rows

TESTS_DIR = TESTS  # where `support` is: the crash scripts import it
BIG = 10**12

# Stores findings with real JPEGs, printing "<id> <seq>" once add() returned; checkpoints
# are off, so that every commit since the start is in the WAL the test then cuts short.
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path[:0] = [sys.argv[2], str(Path(sys.argv[2]).parent)]  # + repo: not tests/edge
    from support.outbox import T0, make_finding, minutes, real_jpegs
    from edge.outbox import Outbox

    jpegs = real_jpegs(4)
    outbox = Outbox.open(Path(sys.argv[1]), image_cap_bytes=10**12, min_free_bytes=0)
    outbox._wconn.execute("PRAGMA wal_autocheckpoint=0")
    for i in range(int(sys.argv[3])):
        f = make_finding(1 + i % 3, T0 + minutes(i), seq=i)
        outbox.add(f, jpegs[i % 4])
        print(f.id, i, flush=True)
    print("done", flush=True)
    sys.stdin.read()  # killed here, with everything in the WAL
    """
)


def _write_and_kill(tmp_path: Path, data_dir: Path, n: int) -> dict[str, int]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    child = subprocess.Popen(
        [sys.executable, str(script), str(data_dir), str(TESTS_DIR), str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    reported = {}
    for line in child.stdout:
        if line == "done\n":
            break
        fid, seq = line.split()
        reported[fid] = int(seq)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    return reported


@pytest.mark.slow
def test_a_truncated_wal_quarantines_images_and_recover_rebuilds_their_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    reported = _write_and_kill(tmp_path, data_dir, 40)
    assert len(reported) == 40
    wal = data_dir / "outbox.sqlite3-wal"
    size = wal.stat().st_size
    with open(wal, "r+b") as fh:  # what a card that lied about its fsync leaves
        fh.truncate(size * 2 // 3)

    with Outbox.open(data_dir, image_cap_bytes=BIG, min_free_bytes=0) as outbox:
        kept = {p.finding_id for p in outbox.pending_findings(100)}
        assert any("quarantine" in note for note in outbox.notes)
    lost = set(reported) - kept
    assert lost, "the cut WAL should have dropped the last commits"
    quarantine = data_dir / "quarantine"
    assert {p.stem for p in quarantine.glob("*.jpg")} == lost  # moved, not deleted
    assert main(["outbox", "status", "--data-dir", str(data_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quarantined_images"] == len(lost)

    assert main(["outbox", "recover", "--data-dir", str(data_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["salvaged"] == len(lost) and report["unreadable"] == 0

    db = data_dir / "outbox.sqlite3"
    back = dict(rows(db, "SELECT id, payload FROM findings"))
    assert set(reported) <= set(back)
    for fid in lost:
        payload = json.loads(back[fid])
        seq = reported[fid]
        assert payload["seq"] == seq and payload["grade"] == 1 + seq % 3
        assert (
            payload["captured_at_utc"]
            == f"2025-04-01T{(30 + seq) // 60:02d}:{(30 + seq) % 60:02d}:00.000000Z"
        )
        assert (data_dir / "images" / f"{fid}.jpg").is_file()
    assert not list(quarantine.glob("*.jpg"))
    assert main(["outbox", "status", "--data-dir", str(data_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quarantined_images"] == 0


def test_an_older_picture_rebuilds_time_and_gps_from_its_exif_tags(tmp_path: Path) -> None:
    """Pictures written before the record went into the EXIF carry id, grade, time, GPS."""
    data_dir = tmp_path / "data"
    reported = _write_and_kill(tmp_path, data_dir, 3)
    fid = next(iter(reported))
    image = data_dir / "images" / f"{fid}.jpg"
    exif = piexif.load(str(image))
    del exif["Exif"][piexif.ExifIFD.UserComment]
    lat = dms_to_deg(
        exif["GPS"][piexif.GPSIFD.GPSLatitude], exif["GPS"][piexif.GPSIFD.GPSLatitudeRef]
    )
    quarantine = tmp_path / "old-pictures"
    quarantine.mkdir()
    piexif.insert(piexif.dump(exif), str(image), str(quarantine / image.name))
    fresh = tmp_path / "fresh"

    assert main(["outbox", "recover", str(quarantine), "--data-dir", str(fresh)]) == 0

    (payload,) = (
        json.loads(p) for (p,) in rows(fresh / "outbox.sqlite3", "SELECT payload FROM findings")
    )
    assert payload["id"] == fid and payload["model_id"] == "recovered-from-image"
    assert payload["captured_at_utc"] == "2025-04-01T00:30:00.000000Z"
    assert payload["position"]["lat_deg"] == pytest.approx(lat, abs=1e-9)
    assert payload["position"]["lat_deg"] == pytest.approx(35.6073, abs=1e-6)
    assert payload["position"]["lon_deg"] == pytest.approx(140.1063, abs=1e-6)


def test_planted_and_duplicate_pictures_in_quarantine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A picture naming a path instead of an id writes nothing outside images/; one of a
    finding the outbox has is a duplicate and goes, the record keeping its picture."""
    data_dir = tmp_path / "data"
    reported = _write_and_kill(tmp_path, data_dir, 2)
    Outbox.open(data_dir, image_cap_bytes=BIG, min_free_bytes=0).close()
    quarantine = data_dir / "quarantine"
    quarantine.mkdir(exist_ok=True)
    fid = next(iter(reported))
    (quarantine / f"{fid}.jpg").write_bytes((data_dir / "images" / f"{fid}.jpg").read_bytes())
    exif = piexif.load(str(data_dir / "images" / f"{fid}.jpg"))
    del exif["Exif"][piexif.ExifIFD.UserComment]
    exif["0th"][piexif.ImageIFD.ImageDescription] = b"roadpatrol finding ../../evil grade 3"
    piexif.insert(
        piexif.dump(exif), str(data_dir / "images" / f"{fid}.jpg"), str(quarantine / "evil.jpg")
    )

    assert main(["outbox", "recover", "--data-dir", str(data_dir), "--json"]) == 0

    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["salvaged"] == 0 and report["already_present"] == 1
    assert report["unreadable"] == 1
    assert not (tmp_path / "evil.jpg").exists() and not (data_dir / "evil.jpg").exists()
    assert not (quarantine / f"{fid}.jpg").exists()  # the duplicate went
    assert (quarantine / "evil.jpg").exists()  # kept for a person to look at
    assert (data_dir / "images" / f"{fid}.jpg").is_file()
    assert len(rows(data_dir / "outbox.sqlite3", "SELECT id FROM findings")) == 2
