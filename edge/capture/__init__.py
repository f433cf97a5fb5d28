"""Camera capture: frame sources, the newest-frame capture thread, and distance sampling."""

from edge.capture.sampler import DistanceSampler
from edge.capture.slot import LatestFrameSlot
from edge.capture.sources import (
    DeviceSource,
    FrameSource,
    ImageFolderSource,
    RtspSource,
    SourceUnavailable,
    VideoFileSource,
    open_frame_source,
)
from edge.capture.thread import CaptureThread
from edge.config.capture import CameraConfig, SamplingConfig

__all__ = [
    "CameraConfig",
    "CaptureThread",
    "DeviceSource",
    "DistanceSampler",
    "FrameSource",
    "ImageFolderSource",
    "LatestFrameSlot",
    "RtspSource",
    "SamplingConfig",
    "SourceUnavailable",
    "VideoFileSource",
    "open_frame_source",
]
