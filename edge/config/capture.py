"""Config sections: the camera (``[camera]``) and which frames to grade (``[sampling]``)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from edge.config.types import SECTION_CONFIG, ConfigPath


class CameraConfig(BaseModel):
    """Where frames come from. Every source goes through OpenCV."""

    model_config = SECTION_CONFIG

    source: Literal["device", "file", "rtsp", "folder"] = Field(
        default="device",
        description=(
            "Kind of frame source: 'device' a V4L2 camera, 'file' a video file, "
            "'rtsp' a network stream, 'folder' a folder of images replayed in name order."
        ),
    )
    device: str = Field(
        default="/dev/video0",
        description="V4L2 device path, or its index as a number ('0'), for source = 'device'.",
    )
    path: ConfigPath | None = Field(
        default=None,
        description="Video file (source = 'file') or image folder (source = 'folder').",
    )
    url: str | None = Field(
        default=None,
        description="Stream URL for source = 'rtsp', e.g. 'rtsp://192.168.1.10:554/stream1'.",
    )
    fps: float = Field(
        default=10.0,
        gt=0,
        le=240,
        description=(
            "Replay rate in frames per second for folders, and for video files that do not "
            "state their own rate."
        ),
    )
    loop: bool = Field(
        default=False,
        description="Start a file or folder over when it ends, instead of ending the replay.",
    )
    pace: bool = Field(
        default=True,
        description=(
            "Replay files and folders at their frame rate (like a camera). False reads them "
            "as fast as they are asked for (the demo's --fast)."
        ),
    )
    width: int = Field(default=1280, gt=0, description="Frame width to request from a device.")
    height: int = Field(default=720, gt=0, description="Frame height to request from a device.")
    stream_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long an RTSP stream may take to open or to deliver a frame.",
    )
    reconnect_initial_s: float = Field(
        default=0.5,
        gt=0,
        description="First wait before reopening a lost source; doubles on every failure.",
    )
    reconnect_max_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest wait between attempts to reopen a lost source.",
    )

    @model_validator(mode="after")
    def _source_has_its_location(self) -> Self:
        if self.source in ("file", "folder") and self.path is None:
            raise ValueError(f"camera.path is required when camera.source = {self.source!r}")
        if self.source == "rtsp" and not self.url:
            raise ValueError("camera.url is required when camera.source = 'rtsp'")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("camera.reconnect_max_s must be >= camera.reconnect_initial_s")
        return self


class SamplingConfig(BaseModel):
    """Which captured frames get graded: one every few metres driven."""

    model_config = SECTION_CONFIG

    sample_every_m: float = Field(
        default=4.0, gt=0, description="Grade one frame every this many metres driven."
    )
    min_speed_mps: float = Field(
        default=0.5,
        ge=0,
        description="Below this GPS speed the vehicle counts as standing and nothing is graded.",
    )
    fallback_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="Without a GPS fix, grade one frame every this many seconds instead.",
    )
