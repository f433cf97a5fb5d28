"""Finding images on disk: GPS in the EXIF, written with fsync and an atomic rename."""

from __future__ import annotations

import io
import json
import logging
import os
from datetime import UTC
from fractions import Fraction
from pathlib import Path

import piexif
import piexif.helper

from edge.types import Finding
from edge.wire.serialize import finding_to_dict

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"
_SECONDS_DENOMINATOR = 1_000_000  # micro-arcseconds: far finer than any GPS


def _dms(value_deg: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    magnitude = abs(value_deg)
    degrees = int(magnitude)
    minutes_f = (magnitude - degrees) * 60
    minutes = int(minutes_f)
    seconds = round((minutes_f - minutes) * 60 * _SECONDS_DENOMINATOR)
    return (degrees, 1), (minutes, 1), (seconds, _SECONDS_DENOMINATOR)


def dms_to_deg(dms: tuple[tuple[int, int], ...], ref: bytes | str) -> float:
    """Read back an EXIF GPS latitude/longitude (for checks and tools)."""
    d, m, s = (Fraction(n, den) for n, den in dms)
    value = float(d + m / 60 + s / 3600)
    ref_text = ref.decode() if isinstance(ref, bytes) else ref
    return -value if ref_text in ("S", "W") else value


def _rational(value: float, denominator: int = 100) -> tuple[int, int]:
    return round(value * denominator), denominator


def exif_for(finding: Finding, note: str | None = None) -> bytes:
    """The finding's EXIF: its whole record in UserComment; ``note`` (ASCII JSON: how the
    image was anonymised) in MakerNote."""
    when = finding.captured_at_utc.astimezone(UTC)
    zeroth = {
        piexif.ImageIFD.Software: b"roadpatrol",
        piexif.ImageIFD.ImageDescription: (
            f"roadpatrol finding {finding.id} grade {finding.grade}".encode()
        ),
    }
    exif_ifd = {
        piexif.ExifIFD.DateTimeOriginal: when.strftime("%Y:%m:%d %H:%M:%S").encode(),
        piexif.ExifIFD.SubSecTimeOriginal: f"{when.microsecond:06d}".encode(),
        piexif.ExifIFD.OffsetTimeOriginal: b"+00:00",
        # The whole record, so that the picture alone can rebuild its finding when the row is
        # lost (edge.outbox.quarantine, edge.outbox.recover).
        piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(
            json.dumps(finding_to_dict(finding), separators=(",", ":")), encoding="ascii"
        ),
    }
    if note is not None:
        # Beside the record, not over it: a quarantined anonymised picture must still
        # rebuild its finding. We are the maker (Software = roadpatrol): our own note.
        exif_ifd[piexif.ExifIFD.MakerNote] = note.encode("ascii")
    gps: dict[int, object] = {}
    p = finding.position
    if p is not None:
        gps = {
            piexif.GPSIFD.GPSVersionID: (2, 3, 0, 0),
            piexif.GPSIFD.GPSLatitudeRef: b"N" if p.lat_deg >= 0 else b"S",
            piexif.GPSIFD.GPSLatitude: _dms(p.lat_deg),
            piexif.GPSIFD.GPSLongitudeRef: b"E" if p.lon_deg >= 0 else b"W",
            piexif.GPSIFD.GPSLongitude: _dms(p.lon_deg),
            piexif.GPSIFD.GPSTimeStamp: (
                (when.hour, 1),
                (when.minute, 1),
                (when.second * 1_000_000 + when.microsecond, 1_000_000),
            ),
            piexif.GPSIFD.GPSDateStamp: when.strftime("%Y:%m:%d").encode(),
            piexif.GPSIFD.GPSMapDatum: b"WGS-84",
        }
        if p.speed_mps is not None:
            gps[piexif.GPSIFD.GPSSpeedRef] = b"K"
            gps[piexif.GPSIFD.GPSSpeed] = _rational(p.speed_mps * 3.6)
        if p.heading_deg is not None:
            gps[piexif.GPSIFD.GPSImgDirectionRef] = b"T"
            gps[piexif.GPSIFD.GPSImgDirection] = _rational(p.heading_deg % 360)
        if p.hdop is not None:
            gps[piexif.GPSIFD.GPSDOP] = _rational(p.hdop)
    exif: bytes = piexif.dump({"0th": zeroth, "Exif": exif_ifd, "GPS": gps})
    return exif


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def with_exif(jpeg: bytes, finding: Finding, note: str | None = None) -> bytes:
    """The JPEG with the finding's time and position in its EXIF; unchanged if that fails."""
    try:
        out = io.BytesIO()
        piexif.insert(exif_for(finding, note), jpeg, out)
        return out.getvalue()
    except Exception as exc:  # a picture without EXIF beats a lost finding
        log.warning("finding %s: cannot add EXIF (%s); storing the JPEG as is", finding.id, exc)
        return jpeg


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` so that ``path`` is either absent or complete, even after a power cut.
    The file is the service user's only (0600): it shows the road and where the car was."""
    tmp = path.with_name(f".{path.name}{TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a disk-full leftover would only take more room
        raise
    fsync_dir(path.parent)


def store_image(
    images_dir: Path, finding: Finding, jpeg: bytes, note: str | None = None
) -> tuple[str | None, int]:
    """Write a finding's image as ``<id>.jpg``; returns its name and size, or (None, 0) on a
    disk error: the caller keeps the record without it (records matter most)."""
    data = with_exif(jpeg, finding, note)
    name = f"{finding.id}.jpg"
    try:
        write_atomic(images_dir / name, data)
    except OSError as exc:
        log.error(
            "finding %s: cannot write its image to %s (%s); storing the record without it",
            finding.id,
            images_dir,
            exc,
        )
        return None, 0
    return name, len(data)
