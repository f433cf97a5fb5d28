"""NMEA 0183 sentences: framing a byte stream into lines, checksums, and field decoding.

Nothing here raises on bad input from the receiver. Garbage bytes, truncated or binary lines
and wrong checksums come out as counted rejects, because a serial line in a vehicle sees all
of them (ignition spikes, a receiver booting at the wrong baud rate, a cable half plugged in).
Decoders raise ``SentenceError``; the epoch assembler counts those as bad sentences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KNOTS_TO_MPS = 1852.0 / 3600.0
KMH_TO_MPS = 1000.0 / 3600.0

# Receivers exceed the standard's 82 characters (survey receivers print 8 decimals), so allow
# more, but bound it: a line that never ends is noise, not a sentence.
MAX_SENTENCE_CHARS = 160
_MAX_PENDING_BYTES = 4 * MAX_SENTENCE_CHARS

_ADDRESS = re.compile(r"^(?:P[A-Z0-9]{1,15}|[A-Z][A-Z0-9][A-Z]{3})$")
_LINE_END = re.compile(rb"[\r\n]")


class SentenceError(ValueError):
    """A line that is not a usable NMEA sentence; the message says why."""


@dataclass(frozen=True, slots=True)
class Sentence:
    """A checksum-verified sentence. ``kind`` is RMC, GGA...; proprietary ones keep their
    whole address (``PSTMCPU``) and an empty talker."""

    talker: str
    kind: str
    fields: tuple[str, ...]

    @property
    def address(self) -> str:
        return self.talker + self.kind


def nmea_checksum(body: str) -> int:
    """XOR of the characters between ``$`` and ``*``."""
    value = 0
    for char in body.encode("ascii"):
        value ^= char
    return value


def parse_sentence(line: str) -> Sentence:
    """Verify framing and checksum of one line (``$...*hh``, line end already removed)."""
    if not line.startswith("$"):
        raise SentenceError("does not start with '$'")
    if len(line) > MAX_SENTENCE_CHARS:
        raise SentenceError(f"longer than {MAX_SENTENCE_CHARS} characters")
    star = line.rfind("*")
    if star < 0:
        raise SentenceError("no checksum")
    body, given = line[1:star], line[star + 1 :].strip()
    if len(given) != 2 or any(c not in "0123456789ABCDEFabcdef" for c in given):
        raise SentenceError(f"malformed checksum {given!r}")
    if any(not (" " <= c <= "~") or c in "$*" for c in body):
        raise SentenceError("non-printable or reserved character")
    if nmea_checksum(body) != int(given, 16):
        raise SentenceError(f"checksum mismatch: computed {nmea_checksum(body):02X}, sent {given}")
    address, *fields = body.split(",")
    if not _ADDRESS.match(address):
        raise SentenceError(f"malformed address {address!r}")
    if address.startswith("P"):
        return Sentence(talker="", kind=address, fields=tuple(fields))
    return Sentence(talker=address[:2], kind=address[2:], fields=tuple(fields))


def format_sentence(body: str) -> str:
    """``body`` (without ``$``/``*``) as a complete sentence with checksum and CRLF."""
    return f"${body}*{nmea_checksum(body):02X}\r\n"


class LineSplitter:
    """Cuts a byte stream into candidate sentences.

    A ``$`` always starts a new candidate, so a valid sentence survives garbage glued in
    front of it. Every discarded fragment that is not blank counts as one bad line.
    """

    def __init__(self) -> None:
        self._pending = b""
        self.garbage_fragments = 0

    def feed(self, data: bytes) -> list[str]:
        self._pending += data
        parts = _LINE_END.split(self._pending)
        self._pending = parts.pop()
        if len(self._pending) > _MAX_PENDING_BYTES:
            # A line that never ends: drop it, but keep a sentence that may be starting.
            self.garbage_fragments += 1
            start = self._pending.rfind(b"$")
            tail = self._pending[start:] if start >= 0 else b""
            self._pending = tail if len(tail) <= MAX_SENTENCE_CHARS else b""
        lines: list[str] = []
        for raw in parts:
            lines.extend(self._candidates(raw))
        return lines

    def flush(self) -> list[str]:
        """Whatever is left at the end of a stream (an unterminated last line)."""
        rest, self._pending = self._pending, b""
        return self._candidates(rest)

    def discard_partial(self) -> None:
        if self._pending.strip():
            self.garbage_fragments += 1
        self._pending = b""

    def _candidates(self, raw: bytes) -> list[str]:
        if not raw.strip():
            return []
        if raw.lstrip().startswith(b"#"):
            glued = _sentence_after_noise(raw)
            if glued is None:
                return [_to_text(raw.strip())]
            # Line noise that happens to start with '#' swallowed no comment: the sentence
            # behind it is whole (its checksum holds), so keep it and count the noise.
            self.garbage_fragments += 1
            return [glued]
        head, *sentences = raw.split(b"$")
        if head.strip():
            self.garbage_fragments += 1
        return [_to_text(b"$" + s.rstrip()) for s in sentences]


def _sentence_after_noise(raw: bytes) -> str | None:
    """The checksum-valid sentence at the end of a ``#`` line, if there is one."""
    dollar = raw.rfind(b"$")
    if dollar <= 0:
        return None
    tail = _to_text(raw[dollar:].rstrip())
    try:
        parse_sentence(tail)
    except SentenceError:
        return None  # a comment that mentions '$GLGSV' stays a comment
    return tail


def _to_text(raw: bytes) -> str:
    # latin-1 never fails; non-ASCII characters are then rejected by parse_sentence.
    return raw.decode("latin-1")


# ---- field decoders ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeOfDay:
    """hhmmss.sss as microseconds since midnight (receiver UTC)."""

    micros: int

    @property
    def seconds(self) -> float:
        return self.micros / 1e6


@dataclass(frozen=True, slots=True)
class Rmc:
    time: TimeOfDay | None
    valid: bool
    lat_deg: float | None
    lon_deg: float | None
    speed_mps: float | None
    track_deg: float | None
    date: tuple[int, int, int] | None  # (two-digit year, month, day)
    faa_mode: str


@dataclass(frozen=True, slots=True)
class Gga:
    time: TimeOfDay | None
    quality: int | None
    lat_deg: float | None
    lon_deg: float | None
    sats_used: int | None
    hdop: float | None
    alt_msl_m: float | None


@dataclass(frozen=True, slots=True)
class Gsa:
    mode: int | None  # 1 no fix, 2 2D, 3 3D
    sats: int
    hdop: float | None


@dataclass(frozen=True, slots=True)
class Vtg:
    track_deg: float | None
    speed_mps: float | None
    valid: bool


@dataclass(frozen=True, slots=True)
class Zda:
    time: TimeOfDay | None
    date: tuple[int, int, int] | None  # (four-digit year, month, day)


def _field(fields: tuple[str, ...], index: int) -> str:
    return fields[index].strip() if index < len(fields) else ""


def _float(text: str, name: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise SentenceError(f"{name} is not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SentenceError(f"{name} is not finite: {text!r}")
    return value


def _int(text: str, name: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise SentenceError(f"{name} is not an integer: {text!r}")
    return int(text)


def decode_time(text: str) -> TimeOfDay | None:
    if not text:
        return None
    if len(text) < 6 or not text[:6].isdigit() or (len(text) > 6 and text[6] != "."):
        raise SentenceError(f"malformed time {text!r}")
    frac = text[7:]
    if frac and not frac.isdigit():
        raise SentenceError(f"malformed time {text!r}")
    hh, mm, ss = int(text[0:2]), int(text[2:4]), int(text[4:6])
    if hh > 23 or mm > 59 or ss > 60:
        raise SentenceError(f"time out of range {text!r}")
    micros = round(float("0." + frac) * 1e6) if frac else 0
    return TimeOfDay(((hh * 60 + mm) * 60 + ss) * 1_000_000 + micros)


def _decode_ddmmyy(text: str) -> tuple[int, int, int] | None:
    if not text:
        return None
    if len(text) != 6 or not text.isdigit():
        raise SentenceError(f"malformed date {text!r}")
    day, month, yy = int(text[0:2]), int(text[2:4]), int(text[4:6])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise SentenceError(f"date out of range {text!r}")
    return yy, month, day


def decode_lat_lon(fields: tuple[str, ...], start: int) -> tuple[float | None, float | None]:
    """``ddmm.mmmm,N,dddmm.mmmm,E`` at ``fields[start:start+4]``; None when any part is empty."""
    lat_text, ns, lon_text, ew = (_field(fields, start + i) for i in range(4))
    if not (lat_text and ns and lon_text and ew):
        return None, None
    lat = _degrees(lat_text, "latitude", 90.0)
    lon = _degrees(lon_text, "longitude", 180.0)
    if ns not in "NS" or ew not in "EW" or len(ns) != 1 or len(ew) != 1:
        raise SentenceError(f"bad hemisphere {ns!r}/{ew!r}")
    return (-lat if ns == "S" else lat), (-lon if ew == "W" else lon)


def _degrees(text: str, name: str, limit: float) -> float:
    value = _float(text, name)
    if value is None or value < 0:
        raise SentenceError(f"malformed {name} {text!r}")
    degrees = float(int(value // 100))
    minutes = value - degrees * 100.0
    result = degrees + minutes / 60.0
    if minutes >= 60.0 or result > limit:
        raise SentenceError(f"{name} out of range {text!r}")
    return result


def decode_rmc(s: Sentence) -> Rmc:
    f = s.fields
    status = _field(f, 1)
    faa = _field(f, 11)[:1]
    valid = status in ("A", "D") and faa != "N"
    lat, lon = decode_lat_lon(f, 2) if valid else (None, None)
    knots = _float(_field(f, 6), "speed")
    return Rmc(
        time=decode_time(_field(f, 0)),
        valid=valid and lat is not None,
        lat_deg=lat,
        lon_deg=lon,
        speed_mps=None if knots is None else knots * KNOTS_TO_MPS,
        track_deg=_float(_field(f, 7), "track"),
        date=_decode_ddmmyy(_field(f, 8)),
        faa_mode=faa,
    )


@dataclass(frozen=True, slots=True)
class GgaLayout:
    """The fields GGA and GNS share, at the same places: time, satellites, HDOP, altitude."""

    time: TimeOfDay | None
    sats_used: int | None
    hdop: float | None
    alt_msl_m: float | None


def decode_gga_layout(f: tuple[str, ...]) -> GgaLayout:
    return GgaLayout(
        time=decode_time(_field(f, 0)),
        sats_used=_int(_field(f, 6), "satellites"),
        hdop=_float(_field(f, 7), "hdop"),
        alt_msl_m=_float(_field(f, 8), "altitude"),
    )


def decode_gga(s: Sentence) -> Gga:
    f = s.fields
    quality = _int(_field(f, 5), "fix quality")
    lat, lon = decode_lat_lon(f, 1) if quality else (None, None)
    common = decode_gga_layout(f)
    return Gga(
        time=common.time,
        quality=quality,
        lat_deg=lat,
        lon_deg=lon,
        sats_used=common.sats_used,
        hdop=common.hdop,
        alt_msl_m=common.alt_msl_m,
    )


def decode_gsa(s: Sentence) -> Gsa:
    f = s.fields
    mode = _int(_field(f, 1), "fix mode")
    if mode is not None and mode not in (1, 2, 3):
        raise SentenceError(f"fix mode out of range: {mode}")
    sats = sum(1 for i in range(2, 14) if _field(f, i))
    return Gsa(mode=mode, sats=sats, hdop=_float(_field(f, 15), "hdop"))


def decode_vtg(s: Sentence) -> Vtg:
    f = s.fields
    mode = _field(f, 8)[:1]
    knots = _float(_field(f, 4), "speed")
    kmh = _float(_field(f, 6), "speed")
    if knots is not None:
        speed: float | None = knots * KNOTS_TO_MPS
    else:
        speed = None if kmh is None else kmh * KMH_TO_MPS
    return Vtg(
        track_deg=_float(_field(f, 0), "track"),
        speed_mps=speed,
        valid=mode not in ("N", "E"),
    )


def decode_zda(s: Sentence) -> Zda:
    f = s.fields
    day, month, year = (_int(_field(f, i), "date") for i in (1, 2, 3))
    date = None
    if day is not None and month is not None and year is not None:
        if not (1 <= month <= 12 and 1 <= day <= 31 and year >= 1980):
            raise SentenceError(f"ZDA date out of range {year}-{month}-{day}")
        date = (year, month, day)
    return Zda(time=decode_time(_field(f, 0)), date=date)


def gsv_is_last(s: Sentence) -> bool:
    """True for the last message of a GSV group (the only GSV that can end a cycle)."""
    total, number = _field(s.fields, 0), _field(s.fields, 1)
    return bool(total) and total == number
