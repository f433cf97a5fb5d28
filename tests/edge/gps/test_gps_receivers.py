"""What receivers in the field send beyond RMC and GGA: GNS- and GLL-only positions, BeiDou's
BD and GB talkers, vendor sentences, ZDA dates, sentences of one burst stamped a few ms
apart, binary noise between sentences. Expected values are worked out from the sentences by
hand (ddmm.mmmm -> degrees), not by the code under test."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.gps.epoch import NmeaStreamDecoder
from edge.gps.nmea import format_sentence
from edge.types import Fix, FixMode, FixQuality

# 3114.8789 N, 12135.2442 E (beidou-gb.log) = 31 + 14.8789/60, 121 + 35.2442/60
LAT, LON = 31.247981666666667, 121.58740333333333


def decode(text: str) -> tuple[list[Fix], NmeaStreamDecoder]:
    decoder = NmeaStreamDecoder(accept_comments=True)
    fixes = decoder.feed(text.encode("latin-1"), 0) + decoder.finish(0)
    return fixes, decoder


def sentences(*bodies: str) -> str:
    return "".join(format_sentence(body) for body in bodies)


def gns_burst(second: int, talker: str = "GN", letters: str = "ANNA") -> str:
    t = f"0532{second:02d}.438"
    return sentences(
        f"{talker}GNS,{t},3114.8789,N,12135.2442,E,{letters},07,1.2,153.8,8.3,,0000",
        f"GNZDA,{t},02,03,2024,,",
    )


def test_a_gns_only_receiver_gives_dated_3d_positions() -> None:
    fixes, _ = decode("".join(gns_burst(s) for s in (32, 33, 34)))
    assert [f.time_utc for f in fixes] == [
        datetime(2024, 3, 2, 5, 32, s, 438000, tzinfo=UTC) for s in (32, 33, 34)
    ]
    for fix in fixes:
        assert (fix.lat_deg, fix.lon_deg) == pytest.approx((LAT, LON), abs=1e-9)
        assert fix.mode == FixMode.FIX_3D  # an altitude from 7 satellites
        assert (fix.sats_used, fix.hdop, fix.alt_msl_m) == (7, 1.2, 153.8)
        assert fix.quality == FixQuality.GPS  # 'A': autonomous


def test_beidou_gns_with_either_talker_is_the_same_fix() -> None:
    reference, _ = decode(gns_burst(32) + gns_burst(33))
    assert len(reference) == 2 and all(f.has_position for f in reference)
    for talker in ("BD", "GB", "GA", "GL", "GP", "GQ"):
        fixes, _ = decode(gns_burst(32, talker) + gns_burst(33, talker))
        assert fixes == reference, talker


def test_gns_without_a_fix_gives_no_position() -> None:
    fixes, _ = decode("".join(gns_burst(s, letters="NNNN") for s in (29, 30)))
    assert len(fixes) == 2
    assert all(f.mode == FixMode.NO_FIX and not f.has_position for f in fixes)
    differential, _ = decode(gns_burst(32, letters="DNNN"))
    assert differential[0].quality == FixQuality.DGPS


def test_a_gll_only_receiver_gives_2d_positions_dated_by_zda() -> None:
    text = "".join(
        sentences(
            f"GPGLL,3114.8789,N,12135.2442,E,0532{s}.00,A,A", f"GPZDA,0532{s}.00,02,03,2024,,"
        )
        for s in (32, 33, 34)
    )
    fixes, _ = decode(text)
    assert [f.time_utc for f in fixes] == [
        datetime(2024, 3, 2, 5, 32, s, tzinfo=UTC) for s in (32, 33, 34)
    ]
    for fix in fixes:
        assert (fix.lat_deg, fix.lon_deg) == pytest.approx((LAT, LON), abs=1e-9)
        assert fix.mode == FixMode.FIX_2D


def test_gll_with_status_v_or_mode_n_is_no_position() -> None:
    for status in ("V,A", "A,N", "V"):
        text = sentences(
            f"GPGLL,3114.8789,N,12135.2442,E,053232.00,{status}", "GPZDA,053232.00,02,03,2024,,"
        )
        fixes, _ = decode(text * 2)
        assert fixes and all(not f.has_position for f in fixes), status


def test_gll_stamped_a_few_ms_off_its_burst_is_the_same_epoch() -> None:
    """Magellan eXplorist: GLL at 200619.295, GGA and RMC at 200619.30 - one epoch."""
    text = "".join(
        sentences(
            f"GPGLL,5313.2228,N,00634.4228,E,20062{s}.29{s},A",
            f"GPGGA,20062{s}.30,5313.2228,N,00634.4228,E,1,05,2.6,00000,M,,,,",
            f"GPRMC,20062{s}.30,A,5313.2228,N,00634.4228,E,00.0,000.0,200524,00,W",
        )
        for s in range(4)
    )
    fixes, _ = decode(text)
    assert [f.time_utc for f in fixes] == [
        datetime(2024, 5, 20, 20, 6, 20 + s, 300000, tzinfo=UTC) for s in range(4)
    ]


def test_garmin_gll_only_epochs_between_full_ones_keep_the_mode() -> None:
    """Garmin 48: RMC+GGA+GSA at :08, then only a GLL at :09 - a fix of its own, still 3D."""
    text = "".join(
        sentences(
            f"GPRMC,2253{s:02d},A,4527.458,S,16709.165,E,000.0,094.5,060624,024.1,E",
            f"GPGGA,2253{s:02d},4527.458,S,16709.165,E,1,05,2.1,14.7,M,1.1,M,,",
            "GPGSA,A,3,01,,,,13,20,22,,,,28,,3.1,2.1,2.0",
            "PGRME,9.1,M,15.0,M,12.0,M",
            f"GPGLL,4527.459,S,16709.166,E,2253{s + 1:02d},A",
            "PGRMZ,48,f,3",
        )
        for s in (8, 10, 12)
    )
    fixes, _ = decode(text)
    assert [f"{f.time_utc:%S}" for f in fixes] == ["08", "09", "10", "11", "12", "13"]
    assert all(f.mode == FixMode.FIX_3D for f in fixes)
    gll = fixes[1]
    assert gll.lat_deg == pytest.approx(-(45 + 27.459 / 60), abs=1e-9)
    assert gll.lon_deg == pytest.approx(167 + 9.166 / 60, abs=1e-9)


def test_vendor_sentence_at_the_start_of_each_burst_does_not_lose_the_last_epoch() -> None:
    """SiRF's $PSRFEPE opens every burst; it must not be taken for the end of one."""
    text = "".join(
        sentences(
            f"PSRFEPE,0532{s}.438,A,1.2,5.77,12.97,1.2,180.0",
            f"GPGGA,0532{s}.438,3114.8789,N,12135.2442,E,1,06,1.2,153.8,M,8.3,M,,0000",
            f"GNRMC,0532{s}.438,A,3114.8789,N,12135.2442,E,0.26,167.42,020324,,,A",
        )
        for s in (32, 33, 34)
    )
    fixes, decoder = decode(text)
    assert [f"{f.time_utc:%S}" for f in fixes] == ["32", "33", "34"]
    assert decoder.counters().incomplete_epochs == 0


def test_a_burst_cut_short_at_the_end_is_still_dropped() -> None:
    """The log ends after the RMC of a burst whose GLL (its last sentence) never came."""
    burst = (
        "GPRMC,2034{s},A,4215.07753,N,08811.88592,W,0.1,0.0,160326,,,D",
        "GPGGA,2034{s},4215.07753,N,08811.88592,W,2,15,0.6,233.47,M,-34.1,M,,",
        "GPGLL,4215.07753,N,08811.88592,W,2034{s},A,D",
    )
    text = "".join(sentences(*(b.format(s=s) for b in burst)) for s in ("51.000", "52.000"))
    text += sentences(burst[0].format(s="53.000"))
    fixes, decoder = decode(text)
    assert [f"{f.time_utc:%S}" for f in fixes] == ["51", "52"]
    assert decoder.counters().incomplete_epochs == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=40), min_size=6, max_size=6))
def test_binary_noise_between_gns_and_gll_sentences_is_counted_never_fatal(
    noise: list[bytes],
) -> None:
    lines = [
        line + "\r\n"
        for burst in (gns_burst(32), gns_burst(33), gns_burst(34))
        for line in burst.split("\r\n")
        if line
    ]
    reference, _ = decode("".join(lines))
    assert len(reference) == 3 and all(f.has_position for f in reference)
    decoder = NmeaStreamDecoder(accept_comments=True)
    stream = b"".join(
        # Noise lands after a line end, as line noise between sentences does; a '$' in it
        # would start a (broken) sentence of its own, which is also only counted.
        chunk.replace(b"$", b"") + line.encode()
        for chunk, line in zip(noise, lines, strict=True)
    )
    fixes = decoder.feed(stream, 0) + decoder.finish(0)
    assert fixes == reference
    noisy = sum(1 for chunk in noise if chunk.replace(b"$", b"").strip())
    assert decoder.counters().bad_sentences >= noisy
