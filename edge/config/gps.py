"""The ``[gps]`` section of the recorder's configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from edge.config.types import SECTION_CONFIG, ConfigPath


class GpsConfig(BaseModel):
    """Where fixes come from, and how far a frame's position may be stretched from them."""

    model_config = SECTION_CONFIG

    source: Literal["serial", "gpsd", "nmea_file"] = Field(
        default="serial",
        description=(
            "Fix source: 'serial' reads NMEA 0183 from serial_port; 'gpsd' reads a gpsd daemon "
            "at gpsd_host:gpsd_port; 'nmea_file' replays the NMEA log nmea_file (demos, tests)."
        ),
    )
    serial_port: str = Field(
        default="/dev/ttyUSB0",
        description="Serial device of the NMEA receiver (a udev symlink such as /dev/gps0 "
        "survives re-plugging into another USB port).",
    )
    baud: int = Field(
        default=9600,
        ge=4800,
        le=921600,
        description="Serial line speed in bit/s; must match the receiver (often 4800 or 9600).",
    )
    gpsd_host: str = Field(default="127.0.0.1", description="Host where gpsd listens.")
    gpsd_port: int = Field(default=2947, ge=1, le=65535, description="gpsd's TCP port.")
    nmea_file: ConfigPath | None = Field(
        default=None,
        description="NMEA log to replay when source = 'nmea_file' ('# Date: YYYY-MM-DD' "
        "comments supply the date for logs whose sentences carry none).",
    )
    replay_speed: float = Field(
        default=1.0,
        ge=0.0,
        le=1000.0,
        description="Replay pace for nmea_file as a multiple of the receiver's own time; "
        "0 replays as fast as possible.",
    )
    max_dead_reckoning_s: float = Field(
        default=2.0,
        ge=0.0,
        le=30.0,
        description="Longest time after (or before) the nearest fix for which a frame's "
        "position is projected from that fix's speed and course; beyond, it is ungeotagged.",
    )
    max_interpolation_gap_s: float = Field(
        default=5.0,
        gt=0.0,
        le=120.0,
        description="Two fixes further apart than this are not interpolated between "
        "(a tunnel or a lost receiver in between).",
    )
    history_size: int = Field(
        default=600,
        ge=10,
        le=100_000,
        description="Fixes kept for geotagging (600 = ten minutes at 1 Hz).",
    )

    @model_validator(mode="after")
    def _file_given_for_replay(self) -> GpsConfig:
        if self.source == "nmea_file" and self.nmea_file is None:
            raise ValueError("nmea_file must be set when source = 'nmea_file'")
        return self
