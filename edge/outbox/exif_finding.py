"""Rebuilding a finding from its JPEG alone (edge.outbox.images writes what this reads).

Pictures written since the outbox kept a full copy of the record in the EXIF UserComment
give the finding back exactly. Older ones carry the id and grade (ImageDescription), the
capture time (DateTimeOriginal, SubSecTimeOriginal) and the GPS position, speed, heading and
DOP: the rebuilt finding has those, no damage boxes, and ``model_id`` "recovered-from-image"
so that the office can tell.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import piexif
import piexif.helper

from edge.outbox.images import dms_to_deg
from edge.types import Finding, FindingOrigin, FixMode, FixQuality, Position, PositionSource
from edge.wire.serialize import FindingFormatError, finding_from_dict

REBUILT_MODEL_ID = "recovered-from-image"
_DESCRIPTION = re.compile(r"^roadpatrol finding (\S+) grade ([0-3])$")
# The id names the image file: only a UUID, never a path (a planted picture must not write
# outside images/).
FINDING_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class NotAFindingImage(ValueError):
    """The picture has no roadpatrol EXIF to rebuild a finding from; the message says why."""


def _ratio(value: Any) -> float | None:
    if not value or value[1] == 0:
        return None
    return float(value[0]) / float(value[1])


def _position(gps: dict[int, Any]) -> Position | None:
    if piexif.GPSIFD.GPSLatitude not in gps or piexif.GPSIFD.GPSLongitude not in gps:
        return None
    speed_kmh = _ratio(gps.get(piexif.GPSIFD.GPSSpeed))
    return Position(
        lat_deg=dms_to_deg(gps[piexif.GPSIFD.GPSLatitude], gps[piexif.GPSIFD.GPSLatitudeRef]),
        lon_deg=dms_to_deg(gps[piexif.GPSIFD.GPSLongitude], gps[piexif.GPSIFD.GPSLongitudeRef]),
        source=PositionSource.NEAREST_FIX,  # how it was found is not in the picture
        fix_age_s=0.0,
        fix_mode=FixMode.FIX_2D,
        fix_quality=FixQuality.GPS,
        hdop=_ratio(gps.get(piexif.GPSIFD.GPSDOP)),
        speed_mps=None if speed_kmh is None else speed_kmh / 3.6,
        heading_deg=_ratio(gps.get(piexif.GPSIFD.GPSImgDirection)),
    )


def _from_tags(exif: dict[str, Any], vehicle_id: str) -> Finding:
    description = exif["0th"].get(piexif.ImageIFD.ImageDescription, b"").decode(errors="replace")
    match = _DESCRIPTION.match(description)
    stamp = exif["Exif"].get(piexif.ExifIFD.DateTimeOriginal)
    if match is None or stamp is None:
        raise NotAFindingImage("no roadpatrol finding id, grade and time in its EXIF")
    sub = exif["Exif"].get(piexif.ExifIFD.SubSecTimeOriginal, b"0").decode() or "0"
    when = datetime.strptime(stamp.decode(), "%Y:%m:%d %H:%M:%S").replace(tzinfo=UTC)
    when = when.replace(microsecond=int(sub.ljust(6, "0")[:6]))
    return Finding(
        id=match.group(1),
        vehicle_id=vehicle_id,
        boot_id="recovered",
        seq=0,
        captured_at_utc=when,
        position=_position(exif["GPS"]),
        grade=int(match.group(2)),
        damages=(),
        model_id=REBUILT_MODEL_ID,
        origin=FindingOrigin.MODEL,
    )


def finding_from_jpeg(data: bytes, vehicle_id: str) -> Finding:
    """The finding a roadpatrol JPEG was written for; raises NotAFindingImage.
    ``vehicle_id`` is used only for older pictures, which do not carry it."""
    try:
        exif = piexif.load(data)
    except Exception as exc:  # piexif raises bare ValueError/struct.error on bad data
        raise NotAFindingImage(f"unreadable EXIF ({exc})") from exc
    finding = _from_comment(exif)
    if finding is None:
        try:
            finding = _from_tags(exif, vehicle_id)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            if isinstance(exc, NotAFindingImage):
                raise
            raise NotAFindingImage(f"unusable EXIF ({exc})") from exc
    if not FINDING_ID.match(finding.id):
        raise NotAFindingImage(f"finding id {finding.id[:80]!r} is not a UUID")
    return finding


def _from_comment(exif: dict[str, Any]) -> Finding | None:
    comment = exif["Exif"].get(piexif.ExifIFD.UserComment)
    if not comment:
        return None
    try:
        return finding_from_dict(json.loads(piexif.helper.UserComment.load(comment)))
    except (ValueError, FindingFormatError, TypeError, KeyError):
        return None  # a damaged copy of the record: the tags still hold the essentials
