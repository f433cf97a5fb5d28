"""Merging the sentences of one receiver epoch (RMC, GGA, GSA, VTG of the same time) into a Fix.

Receivers print one burst of sentences per epoch. The burst ends either when a sentence
with a new time arrives, or, without waiting for the next burst, when the sentence type that
ended the previous burst is seen again (gpsd learns the end of cycle the same way). Each Fix
is stamped with the arrival time of the first sentence of its burst: that is the moment
closest to the receiver's own measurement that this machine can observe.

Dates and times are resolved like gpsd's (edge.gps.clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from edge.gps.clock import ReceiverClock
from edge.gps.nmea import (
    Gga,
    Gsa,
    LineSplitter,
    Rmc,
    Sentence,
    SentenceError,
    TimeOfDay,
    Vtg,
    Zda,
    decode_gga,
    decode_gsa,
    decode_rmc,
    decode_vtg,
    decode_zda,
    gsv_is_last,
    parse_sentence,
)
from edge.types import Fix, FixMode, FixQuality

_MAX_STASHED = 16

_GGA_QUALITY = {
    0: FixQuality.NONE,
    1: FixQuality.GPS,
    2: FixQuality.DGPS,
    3: FixQuality.PPS,
    4: FixQuality.RTK_FIXED,
    5: FixQuality.RTK_FLOAT,
    6: FixQuality.ESTIMATED,
    7: FixQuality.MANUAL,
    8: FixQuality.SIMULATED,
}
_FAA_QUALITY = {
    "A": FixQuality.GPS,
    "D": FixQuality.DGPS,
    "E": FixQuality.ESTIMATED,
    "F": FixQuality.RTK_FLOAT,
    "R": FixQuality.RTK_FIXED,
    "P": FixQuality.PPS,
    "M": FixQuality.MANUAL,
    "S": FixQuality.SIMULATED,
    "N": FixQuality.NONE,
}


@dataclass(frozen=True, slots=True)
class NmeaCounters:
    sentences: int = 0  # checksum-valid sentences
    bad_sentences: int = 0  # garbage, truncated, wrong checksum, malformed fields
    ignored_sentences: int = 0  # valid but not used (GSV, TXT, proprietary, comments)
    late_sentences: int = 0  # arrived after their epoch had been closed
    incomplete_epochs: int = 0  # cut short by the end of the stream
    epochs: int = 0


_Record = Rmc | Gga | Gsa | Vtg | Zda


def _decode(s: Sentence) -> tuple[_Record | None, TimeOfDay | None]:
    """The decoded record (None for types not used) and the time it carries."""
    if s.kind == "RMC":
        rmc = decode_rmc(s)
        return rmc, rmc.time
    if s.kind == "GGA":
        gga = decode_gga(s)
        return gga, gga.time
    if s.kind == "ZDA":
        zda = decode_zda(s)
        return zda, zda.time
    if s.kind == "GSA":
        return decode_gsa(s), None
    if s.kind == "VTG":
        return decode_vtg(s), None
    return None, None


@dataclass
class _Epoch:
    tod: TimeOfDay | None
    mono_ns: int
    addresses: set[str] = field(default_factory=set)
    rmc: Rmc | None = None
    gga: Gga | None = None
    gsa: list[Gsa] = field(default_factory=list)
    vtg: Vtg | None = None
    lat_deg: float | None = None
    lon_deg: float | None = None
    two_digit_date: tuple[int, int, int] | None = None
    full_date: tuple[int, int, int] | None = None

    @property
    def has_fix_sentence(self) -> bool:
        return self.rmc is not None or self.gga is not None


class EpochAssembler:
    """Feed it checksum-framed lines with their arrival time; it returns finished Fixes."""

    def __init__(self, *, accept_comments: bool = False) -> None:
        self.clock = ReceiverClock()
        self._accept_comments = accept_comments
        self._open: _Epoch | None = None
        self._closed_tod: TimeOfDay | None = None
        self._stash: list[Sentence] = []
        self._cycle_end: str | None = None
        self._last_key: str | None = None
        self._last_mono_ns = 0
        self._sentences = 0
        self._bad = 0
        self._ignored = 0
        self._late = 0
        self._incomplete = 0
        self._epochs = 0

    def counters(self, extra_bad: int = 0) -> NmeaCounters:
        return NmeaCounters(
            sentences=self._sentences,
            bad_sentences=self._bad + extra_bad,
            ignored_sentences=self._ignored,
            late_sentences=self._late,
            incomplete_epochs=self._incomplete,
            epochs=self._epochs,
        )

    def feed_line(self, line: str, mono_ns: int) -> list[Fix]:
        if line.startswith("#"):
            if self._accept_comments:
                self._ignored += 1
                self.clock.note_comment(line)
            else:
                self._bad += 1
            return []
        try:
            sentence = parse_sentence(line)
            return self._feed_sentence(sentence, mono_ns)
        except SentenceError:
            self._bad += 1
            return []

    def flush(self) -> list[Fix]:
        """End of stream: close the open epoch, unless its burst was cut short.

        Once the end-of-cycle sentence is known, an epoch that never reached it is a log
        or a cable cut mid-burst; gpsd does not report such an epoch, and neither do we.
        """
        if self._open is not None and self._cycle_end is not None:
            self._open = None
            self._incomplete += 1
            return []
        return self._close()

    def flush_now(self) -> list[Fix]:
        """Close the open epoch whatever state its burst is in."""
        return self._close()

    def flush_if_idle(self, now_ns: int, idle_ns: int) -> list[Fix]:
        """Close the open epoch when the line has been quiet for ``idle_ns``."""
        if self._open is not None and now_ns - self._last_mono_ns >= idle_ns:
            return self._close()
        return []

    # ---- internals ----

    def _feed_sentence(self, s: Sentence, mono_ns: int) -> list[Fix]:
        out: list[Fix] = []
        record, tod = _decode(s)
        self._sentences += 1
        key = s.address + (":last" if s.kind == "GSV" and gsv_is_last(s) else "")

        if record is None:
            self._ignored += 1
        elif tod is not None or s.kind in ("RMC", "GGA"):
            if tod is not None and self._open is None and tod == self._closed_tod:
                self._late += 1
                self._cycle_end = None  # the receiver changed its order: learn the end again
            else:
                out.extend(self._start_if_new_epoch(s, tod, mono_ns))
                assert self._open is not None
                self._apply(self._open, s, record)
        elif self._open is not None:
            self._apply(self._open, s, record)
        elif len(self._stash) < _MAX_STASHED:
            self._stash.append(s)  # e.g. GSA printed before the epoch's first timed sentence

        self._last_key = key
        self._last_mono_ns = mono_ns
        if self._open is not None and key == self._cycle_end and self._open.has_fix_sentence:
            out.extend(self._close())
        return out

    def _start_if_new_epoch(self, s: Sentence, tod: TimeOfDay | None, mono_ns: int) -> list[Fix]:
        current = self._open
        if current is not None:
            if tod is not None and tod == current.tod:
                return []
            # Without a time (receiver has no fix yet) only a repeated RMC/GGA shows that a
            # new burst began.
            if (tod is None or current.tod is None) and s.address not in current.addresses:
                if current.tod is None:
                    current.tod = tod
                return []
        out: list[Fix] = []
        if current is not None:
            self._cycle_end = self._last_key  # the burst that just ended ended with this
            out = self._close()
        self._open = _Epoch(tod=tod, mono_ns=mono_ns)
        stashed, self._stash = self._stash, []
        for early in stashed:
            self._apply(self._open, early, _decode(early)[0])
        return out

    def _apply(self, epoch: _Epoch, s: Sentence, record: _Record | None) -> None:
        epoch.addresses.add(s.address)
        if isinstance(record, Rmc):
            epoch.rmc = record
            if record.date is not None:
                epoch.two_digit_date = record.date
            if record.lat_deg is not None:
                epoch.lat_deg, epoch.lon_deg = record.lat_deg, record.lon_deg
        elif isinstance(record, Gga):
            epoch.gga = record
            if record.lat_deg is not None:
                epoch.lat_deg, epoch.lon_deg = record.lat_deg, record.lon_deg
        elif isinstance(record, Gsa):
            epoch.gsa.append(record)
        elif isinstance(record, Vtg):
            epoch.vtg = record
        elif isinstance(record, Zda) and record.date is not None:
            epoch.full_date = record.date

    def _close(self) -> list[Fix]:
        epoch, self._open = self._open, None
        if epoch is None:
            return []
        self._closed_tod = epoch.tod
        if not epoch.has_fix_sentence:
            return []
        if epoch.full_date is not None:
            self.clock.set_full_date(*epoch.full_date)
        if epoch.two_digit_date is not None and (epoch.rmc is None or epoch.rmc.valid):
            self.clock.set_two_digit_date(*epoch.two_digit_date)
        time_utc = self.clock.resolve(epoch.tod) if epoch.tod is not None else None
        self._epochs += 1
        return [_to_fix(epoch, time_utc)]


def _to_fix(e: _Epoch, time_utc: datetime | None) -> Fix:
    mode = _mode(e)
    has_position = mode >= FixMode.FIX_2D
    speed = e.rmc.speed_mps if e.rmc is not None else None
    track = e.rmc.track_deg if e.rmc is not None else None
    if e.vtg is not None and e.vtg.valid:
        speed = e.vtg.speed_mps if speed is None else speed
        track = e.vtg.track_deg if track is None else track
    gsa_hdop = next((g.hdop for g in e.gsa if g.hdop is not None), None)
    hdop = e.gga.hdop if e.gga is not None and e.gga.hdop is not None else gsa_hdop
    sats = e.gga.sats_used if e.gga is not None else None
    if sats is None and e.gsa:
        sats = sum(g.sats for g in e.gsa)
    return Fix(
        mono_ns=e.mono_ns,
        time_utc=time_utc,
        lat_deg=e.lat_deg if has_position else None,
        lon_deg=e.lon_deg if has_position else None,
        mode=mode,
        quality=_quality(e) if has_position else FixQuality.NONE,
        speed_mps=speed,
        track_deg=track,
        hdop=hdop,
        sats_used=sats,
        alt_msl_m=e.gga.alt_msl_m if e.gga is not None else None,
    )


def _mode(e: _Epoch) -> FixMode:
    if e.lat_deg is None or e.lon_deg is None:
        return FixMode.NO_FIX
    if (e.rmc is not None and not e.rmc.valid) or (e.gga is not None and not e.gga.quality):
        return FixMode.NO_FIX
    gsa_modes = [g.mode for g in e.gsa if g.mode is not None]
    if gsa_modes:
        return FixMode(max(gsa_modes))
    if e.gga is not None:
        three_d = e.gga.alt_msl_m is not None and (e.gga.sats_used or 0) >= 4
        return FixMode.FIX_3D if three_d else FixMode.FIX_2D
    return FixMode.FIX_2D


def _quality(e: _Epoch) -> FixQuality:
    if e.gga is not None and e.gga.quality is not None:
        return _GGA_QUALITY.get(e.gga.quality, FixQuality.GPS)
    if e.rmc is not None and e.rmc.faa_mode:
        return _FAA_QUALITY.get(e.rmc.faa_mode, FixQuality.GPS)
    return FixQuality.GPS


class NmeaStreamDecoder:
    """Bytes in, Fixes out: line framing plus epoch assembly, with one set of counters."""

    def __init__(self, *, accept_comments: bool = False) -> None:
        self._splitter = LineSplitter()
        self._assembler = EpochAssembler(accept_comments=accept_comments)

    def feed(self, data: bytes, mono_ns: int) -> list[Fix]:
        fixes: list[Fix] = []
        for line in self._splitter.feed(data):
            fixes.extend(self._assembler.feed_line(line, mono_ns))
        return fixes

    def finish(self, mono_ns: int) -> list[Fix]:
        fixes: list[Fix] = []
        for line in self._splitter.flush():
            fixes.extend(self._assembler.feed_line(line, mono_ns))
        fixes.extend(self._assembler.flush())
        return fixes

    def flush_if_idle(self, now_ns: int, idle_ns: int) -> list[Fix]:
        return self._assembler.flush_if_idle(now_ns, idle_ns)

    def interrupt(self) -> list[Fix]:
        """The byte stream broke (device lost): drop the partial line, close the epoch."""
        self._splitter.discard_partial()
        return self._assembler.flush_now()

    def counters(self) -> NmeaCounters:
        return self._assembler.counters(extra_bad=self._splitter.garbage_fragments)
