"""NMEA framing, checksums, talkers, dates and epoch assembly, on real receiver logs."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.gps.epoch import EpochAssembler, NmeaStreamDecoder
from edge.gps.nmea import SentenceError, format_sentence, nmea_checksum, parse_sentence
from edge.types import FixMode, FixQuality

from support.gps import DEMO_TRACK, GPSD_LOGS

RMC = "GPRMC,010000.00,A,3536.43800,N,14006.37800,E,16.20,42.0,140524,,,A"
GGA = "GPGGA,010000.00,3536.43800,N,14006.37800,E,1,09,0.9,4.6,M,36.9,M,,"


def decode_all(data: bytes, *, comments: bool = True) -> tuple[list, NmeaStreamDecoder]:
    decoder = NmeaStreamDecoder(accept_comments=comments)
    fixes = decoder.feed(data, 0) + decoder.finish(0)
    return fixes, decoder


def test_checksum_matches_the_receivers_own() -> None:
    # A sentence as a SiRF receiver printed it, checksum and all.
    line = "$GPRMC,030719.000,A,3747.0873,S,17518.8938,E,0.69,181.39,311214,,,A*7D"
    assert nmea_checksum(line[1 : line.index("*")]) == 0x7D
    sentence = parse_sentence(line)
    assert (sentence.talker, sentence.kind) == ("GP", "RMC")


def test_wrong_checksum_truncation_and_noise_are_rejected_with_a_reason() -> None:
    good = format_sentence(RMC).strip()
    wrong = good[:-2] + ("00" if good[-2:] != "00" else "11")
    for bad in (wrong, good[:30], good.replace("A,3536", "A,35\x0036"), "$GP*00", "GPRMC,1*00"):
        try:
            parse_sentence(bad)
        except SentenceError as exc:
            assert str(exc)
        else:
            raise AssertionError(f"accepted {bad!r}")


def test_any_talker_gives_the_same_fix() -> None:
    expected = decode_all((format_sentence(RMC) + format_sentence(GGA)).encode())[0]
    assert len(expected) == 1 and expected[0].has_position
    for talker in ("GN", "GL", "GA", "GB", "BD", "QZ", "GI"):
        text = format_sentence(talker + RMC[2:]) + format_sentence(talker + GGA[2:])
        fixes, _ = decode_all(text.encode())
        assert len(fixes) == 1, talker
        assert (fixes[0].lat_deg, fixes[0].lon_deg) == (expected[0].lat_deg, expected[0].lon_deg)
        assert fixes[0].time_utc == datetime(2024, 5, 14, 1, 0, tzinfo=UTC)


def test_bad_lines_are_counted_and_do_not_stop_the_stream() -> None:
    clean = DEMO_TRACK.read_bytes()
    reference, _ = decode_all(clean)
    lines = clean.split(b"\r\n")
    noisy = b"\r\n".join(
        [b"\x00\xff\xfe binary noise", lines[4][:25], lines[5][:-2] + b"00", *lines]
    )
    fixes, decoder = decode_all(noisy)
    assert [f.time_utc for f in fixes] == [f.time_utc for f in reference]
    assert decoder.counters().bad_sentences == 3


def test_binary_log_with_garbage_decodes_the_same_whatever_the_read_sizes() -> None:
    data = (GPSD_LOGS / "ublox-8.log").read_bytes()
    reference, ref_decoder = decode_all(data)
    assert ref_decoder.counters().bad_sentences >= 2  # binary head and incomplete tail

    @settings(max_examples=30, deadline=None)
    @given(st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=50))
    def check(sizes: list[int]) -> None:
        decoder = NmeaStreamDecoder(accept_comments=True)
        fixes, pos, i = [], 0, 0
        while pos < len(data):
            size = sizes[i % len(sizes)]
            fixes += decoder.feed(data[pos : pos + size], 0)
            pos, i = pos + size, i + 1
        fixes += decoder.finish(0)
        assert fixes == reference
        assert decoder.counters() == ref_decoder.counters()

    check()


def test_epoch_is_emitted_at_the_end_of_its_burst_not_one_second_late() -> None:
    """After the first cycle, the sentence type that ends a burst is known and the epoch is
    handed out with that sentence, not when the next second's sentences arrive."""
    assembler = EpochAssembler(accept_comments=True)
    emitted_with: list[tuple[str, str]] = []
    for line in (GPSD_LOGS / "bu353s4.log").read_text().splitlines():
        for fix in assembler.feed_line(line, 0):
            assert fix.time_utc is not None
            emitted_with.append((f"{fix.time_utc:%H%M%S}", line))
    assert len(emitted_with) >= 20
    for hhmmss, line in emitted_with[1:]:
        assert line.startswith("$GPRMC") and f",{hhmmss}." in line, (hhmmss, line)


def test_date_from_comment_midnight_wrap_and_missing_date() -> None:
    ggas = [
        format_sentence(f"GPGGA,{t},3536.43800,N,14006.37800,E,1,09,0.9,4.6,M,36.9,M,,")
        for t in ("235958.00", "235959.00", "000000.00")
    ]
    body = "".join(ggas).encode()
    fixes, _ = decode_all(b"# Date: 2024-05-14\r\n" + body)
    assert [f.time_utc for f in fixes] == [
        datetime(2024, 5, 14, 23, 59, 58, tzinfo=UTC),
        datetime(2024, 5, 14, 23, 59, 59, tzinfo=UTC),
        datetime(2024, 5, 15, 0, 0, 0, tzinfo=UTC),
    ]
    undated, _ = decode_all(body)
    assert [f.time_utc for f in undated] == [None, None, None]
    assert all(f.has_position for f in undated)  # position does not need the date


def test_serial_stream_treats_comment_lines_as_bad() -> None:
    _, decoder = decode_all(
        b"# Date: 2024-05-14\r\n" + format_sentence(RMC).encode(), comments=False
    )
    assert decoder.counters().bad_sentences == 1


def test_noise_starting_with_hash_does_not_swallow_the_sentence_behind_it() -> None:
    glued = b"#\x00\x00" + format_sentence(RMC).encode()
    comment = b"# Notes: $GLGSV for GLONASS sats\r\n"
    for comments in (True, False):
        fixes, decoder = decode_all(comment + glued, comments=comments)
        assert [f.time_utc for f in fixes] == [datetime(2024, 5, 14, 1, 0, tzinfo=UTC)]
        counters = decoder.counters()
        assert counters.bad_sentences == (1 if comments else 2)  # the noise (+ the comment)


def test_old_dates_are_rollover_victims_unless_the_log_declares_them() -> None:
    old = format_sentence("GPRMC,120000.00,A,3536.43800,N,14006.37800,E,0.0,,180315,,,A").encode()
    rolled, _ = decode_all(old)
    assert rolled[0].time_utc == datetime(2034, 11, 1, 12, 0, tzinfo=UTC)  # +1024 weeks
    declared, _ = decode_all(b"# Date: 2015-03-18\r\n" + old)
    assert declared[0].time_utc == datetime(2015, 3, 18, 12, 0, tzinfo=UTC)


def test_mode_and_quality_follow_the_receiver() -> None:
    rtk = format_sentence(
        "GNGGA,132820.00,4134.498,N,09345.034,W,4,19,0.7,280.8,M,-31.4,M,6.0,0002"
    )
    no_fix = format_sentence("GPRMC,120001.00,V,,,,,,,140524,,,N")
    two_d = format_sentence("GPGSA,A,2,02,05,12,,,,,,,,,,2.1,1.9,0.9")
    fixes, _ = decode_all(rtk.encode())
    assert fixes[0].mode == FixMode.FIX_3D and fixes[0].quality == FixQuality.RTK_FIXED
    assert fixes[0].sats_used == 19 and fixes[0].hdop == 0.7
    fixes, _ = decode_all(no_fix.encode())
    assert fixes[0].mode == FixMode.NO_FIX and not fixes[0].has_position
    three_sats = GGA.replace(",1,09,", ",1,03,")
    gsa_2d, _ = decode_all((format_sentence(three_sats) + two_d).encode())
    assert gsa_2d[0].mode == FixMode.FIX_2D
    # An altitude from 9 satellites is a 3D fix whatever the GSA says: gpsd reports MediaTek
    # receivers (GSA mode 2 beside such a GGA) as 3D, in its own mtk-3329 regression log.
    mtk, _ = decode_all((format_sentence(GGA) + two_d).encode())
    assert mtk[0].mode == FixMode.FIX_3D


def test_receiver_without_fix_and_without_time_still_gives_one_epoch_per_burst() -> None:
    burst = format_sentence("GPRMC,,V,,,,,,,,,,N") + format_sentence("GPGGA,,,,,,0,00,99.99,,,,,,")
    fixes, _ = decode_all((burst * 4).encode())
    assert len(fixes) == 4
    assert all(f.mode == FixMode.NO_FIX and f.time_utc is None for f in fixes)


def test_a_receiver_that_changes_its_sentence_order_is_followed() -> None:
    def rmc(t: str) -> str:
        return format_sentence(f"GPRMC,{t},A,3536.43800,N,14006.37800,E,16.20,42.0,140524,,,A")

    def gga(t: str) -> str:
        return format_sentence(f"GPGGA,{t},3536.43800,N,14006.37800,E,1,09,0.9,4.6,M,36.9,M,,")

    times = [f"0100{s:02d}.00" for s in range(8)]
    # RMC then GGA for three seconds (GGA learnt as the end of a burst), then GGA first.
    text = "".join(rmc(t) + gga(t) for t in times[:3]) + "".join(gga(t) + rmc(t) for t in times[3:])
    assembler = EpochAssembler()
    fixes = [f for line in text.splitlines() for f in assembler.feed_line(line, 0)]
    fixes += assembler.flush()
    assert [f"{f.time_utc:%S}" for f in fixes] == [f"{s:02d}" for s in range(8)]
    assert assembler.counters().late_sentences == 1  # the RMC of 01:00:03, after its burst closed
    assert all(f.speed_mps is not None for f in fixes[4:])  # complete again from then on
