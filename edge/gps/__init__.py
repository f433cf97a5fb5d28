"""GPS: NMEA and gpsd fix sources, the reader thread, and geotagging from recent fixes.

Typical use by the recorder: ``open_fix_source(cfg.gps)`` picks serial, gpsd or an NMEA log
by config; ``history_for(cfg.gps)`` makes the FixHistory with the configured limits;
``GpsThread(source, history).start()`` keeps it filled. Then per frame
``history.position_at(frame.mono_ns)`` (a Position, or None: ungeotagged) and
``history.odometer_m_at(frame.mono_ns)`` (metres driven), and ``gps.status()`` for the screen.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge.config.gps import GpsConfig
from edge.gps.gpsd_source import GpsdSource
from edge.gps.history import FixHistory
from edge.gps.sources import (
    EndOfFixes,
    FixSource,
    FixSourceError,
    NmeaReplaySource,
    SerialNmeaSource,
    SourceStats,
    UnreadableLogSource,
)
from edge.gps.thread import GpsThread

log = logging.getLogger(__name__)

DEMO_TRACK = Path(__file__).resolve().parent.parent / "demo" / "chiba_drive.nmea"


def open_fix_source(cfg: GpsConfig, *, keep_going: bool = False) -> FixSource:
    """The source the config names. A missing serial device or gpsd is reported in the
    source's status and retried. An unreadable NMEA log raises FixSourceError, unless
    ``keep_going`` (the recorder: it keeps recording, without fixes, and says why)."""
    if cfg.source == "serial":
        return SerialNmeaSource(cfg.serial_port, cfg.baud)
    if cfg.source == "gpsd":
        return GpsdSource(cfg.gpsd_host, cfg.gpsd_port)
    assert cfg.nmea_file is not None  # the config validator guarantees it
    try:
        return NmeaReplaySource(cfg.nmea_file, speed=cfg.replay_speed)
    except FixSourceError as exc:
        if not keep_going:
            raise
        log.error("gps.nmea_file: %s; recording goes on without fixes", exc)
        return UnreadableLogSource(cfg.nmea_file, f"gps.nmea_file: {exc}")


def history_for(cfg: GpsConfig) -> FixHistory:
    return FixHistory(
        capacity=cfg.history_size,
        max_dead_reckoning_s=cfg.max_dead_reckoning_s,
        max_interpolation_gap_s=cfg.max_interpolation_gap_s,
    )


__all__ = [
    "DEMO_TRACK",
    "EndOfFixes",
    "FixHistory",
    "FixSource",
    "FixSourceError",
    "GpsConfig",
    "GpsThread",
    "GpsdSource",
    "NmeaReplaySource",
    "SerialNmeaSource",
    "SourceStats",
    "history_for",
    "open_fix_source",
]
