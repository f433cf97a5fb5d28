"""Merging the sentences of one receiver epoch (RMC, GGA, GNS, GLL, GSA, VTG, ZDA of the same
time) into a Fix.

Receivers print one burst of sentences per epoch. The burst ends either when a sentence
with a new time arrives, or, without waiting for the next burst, when the sentence type that
ended the previous burst is seen again (gpsd learns the end of cycle the same way; a
proprietary sentence never counts as the end, vendors print them anywhere). Any of RMC,
GGA, GNS and GLL may carry the position: some receivers put it in only some of them. Each Fix
is stamped with the arrival time of the first sentence of its burst: that is the moment
closest to the receiver's own measurement that this machine can observe.

Dates and times are resolved like gpsd's (edge.gps.clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edge.gps.clock import ReceiverClock
from edge.gps.epoch_fix import POSITION_KINDS, EpochSentences, Record, epoch_to_fix
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
from edge.gps.nmea_position import Gll, Gns, decode_gll, decode_gns
from edge.types import Fix, FixMode

_MAX_STASHED = 16
# Sentences of one burst whose times differ by less than this are one epoch: some receivers
# stamp GLL a few milliseconds off their GGA/RMC (Magellan eXplorist: 200619.295 beside
# 200619.30). Well under the 50 ms between the epochs of a 20 Hz receiver.
_SAME_EPOCH_US = 20_000


@dataclass(frozen=True, slots=True)
class NmeaCounters:
    sentences: int = 0  # checksum-valid sentences
    bad_sentences: int = 0  # garbage, truncated, wrong checksum, malformed fields
    ignored_sentences: int = 0  # valid but not used (GSV, TXT, proprietary, comments)
    late_sentences: int = 0  # arrived after their epoch had been closed
    incomplete_epochs: int = 0  # cut short by the end of the stream
    epochs: int = 0


# The sentences that carry a time of day, each with its decoder.
_TIMED_DECODERS: dict[str, Callable[[Sentence], Rmc | Gga | Gns | Gll | Zda]] = {
    "RMC": decode_rmc,
    "GGA": decode_gga,
    "GNS": decode_gns,
    "GLL": decode_gll,
    "ZDA": decode_zda,
}


def _decode(s: Sentence) -> tuple[Record | None, TimeOfDay | None]:
    """The decoded record (None for types not used) and the time it carries."""
    timed = _TIMED_DECODERS.get(s.kind)
    if timed is not None:
        record = timed(s)
        return record, record.time
    if s.kind == "GSA":
        return decode_gsa(s), None
    if s.kind == "VTG":
        return decode_vtg(s), None
    return None, None


class EpochAssembler:
    """Feed it checksum-framed lines with their arrival time; it returns finished Fixes."""

    def __init__(self, *, accept_comments: bool = False) -> None:
        self.clock = ReceiverClock()
        self._accept_comments = accept_comments
        self._open: EpochSentences | None = None
        self._closed_tod: TimeOfDay | None = None
        self._stash: list[Sentence] = []
        self._cycle_end: str | None = None
        self._last_key: str | None = None
        self._last_position_addresses: frozenset[str] = frozenset()
        self._last_mode = FixMode.NO_FIX
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

        An epoch with only some of the position sentences of the epoch before it (its RMC
        and GGA, not the GLL that ended the burst) is a log or a cable cut mid-burst; gpsd
        does not report such an epoch, and neither do we. (Garmins alternate RMC+GGA epochs
        with GLL-only ones: a different set, not a part of one.)
        """
        if self._open is not None and (
            self._open.position_addresses < self._last_position_addresses
        ):
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
        elif tod is not None or s.kind in POSITION_KINDS:
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

        if s.talker:
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
            if (
                tod is not None
                and current.tod is not None
                and s.address not in current.addresses
                and abs(tod.micros - current.tod.micros) < _SAME_EPOCH_US
            ):
                current.tod = tod  # gpsd, too, reports the burst at its latest time
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
        self._open = EpochSentences(tod=tod, mono_ns=mono_ns)
        stashed, self._stash = self._stash, []
        for early in stashed:
            self._apply(self._open, early, _decode(early)[0])
        return out

    def _apply(self, epoch: EpochSentences, s: Sentence, record: Record | None) -> None:
        epoch.addresses.add(s.address)
        if isinstance(record, Rmc):
            epoch.rmc = record
            if record.date is not None:
                epoch.two_digit_date = record.date
            if record.lat_deg is not None:
                epoch.lat_deg, epoch.lon_deg = record.lat_deg, record.lon_deg
        elif isinstance(record, Gga | Gns | Gll):
            if isinstance(record, Gga):
                epoch.gga = record
            elif isinstance(record, Gns):
                epoch.gns = record
            else:
                epoch.gll = record
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
        self._last_position_addresses = epoch.position_addresses
        if not epoch.has_fix_sentence:
            return []
        if epoch.full_date is not None:
            self.clock.set_full_date(*epoch.full_date)
        if epoch.two_digit_date is not None and (epoch.rmc is None or epoch.rmc.valid):
            self.clock.set_two_digit_date(*epoch.two_digit_date)
        time_utc = None
        # gpsd dates a GLL-only epoch only once a sentence has given it a date.
        gll_only = epoch.rmc is None and epoch.gga is None and epoch.gns is None
        if epoch.tod is not None and (self.clock.knows_date or not gll_only):
            time_utc = self.clock.resolve(epoch.tod)
        self._epochs += 1
        fix = epoch_to_fix(epoch, time_utc, self._last_mode)
        self._last_mode = fix.mode
        return [fix]


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
