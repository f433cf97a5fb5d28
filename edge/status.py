"""The recorder's compact status snapshot, published a few times a second.

The TUI, the MQTT status topic and `roadpatrol tui` attaching over a local socket all read
this one shape; ``to_json``/``from_json`` make it cross a process boundary unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# What became of the last package pushed from the office (sync.model_updates).
ModelUpdateResult = Literal["installed", "already installed", "refused"]


@dataclass(frozen=True, slots=True)
class CameraStatus:
    connected: bool = False
    source: str = ""
    fps: float = 0.0
    frames: int = 0
    dropped_frames: int = 0
    reconnects: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class GpsStatus:
    mode: int = 0  # FixMode value
    quality: str = "none"
    sats_used: int | None = None
    hdop: float | None = None
    speed_mps: float | None = None
    lat_deg: float | None = None
    lon_deg: float | None = None
    fix_age_s: float | None = None  # None: never had a fix
    bad_sentences: int = 0
    clock_set: bool = True
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ModelStatus:
    model_id: str = ""
    name: str = ""
    version: str = ""
    infer_ms: float = 0.0
    graded: int = 0
    paused: bool = False
    error: str | None = None  # e.g. a model refused at start
    # The last package pushed from the office; all None until one arrives. A refusal here
    # does not touch ``error``: the model in use keeps grading.
    last_update_model_id: str | None = None
    last_update_result: ModelUpdateResult | None = None
    last_update_reason: str | None = None  # why it was refused
    last_update_activated: bool = False  # installed and made active by the push
    last_update_at_utc: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    pending: int = 0
    pending_bytes: int = 0
    oldest_age_s: float | None = None
    evictions: int = 0
    stored: int = 0
    disk_free_bytes: int | None = None
    disk_low: bool = False
    evicting: bool = False  # images were deleted lately to make room (cap or free-space floor)
    pruned: int = 0  # findings deleted after the office receipted them (keep_sent_days)
    # Findings and images the broker acknowledged that the office has not receipted yet.
    awaiting_receipt: int = 0
    awaiting_receipt_age_s: float | None = None  # since the oldest was first acknowledged
    office_silent_s: float | None = None  # the office confirmed nothing for this long


@dataclass(frozen=True, slots=True)
class PrivacyStatus:
    """The privacy stage (edge.privacy): whether finding images are anonymised, and by what."""

    enabled: bool = True
    by: str = ""  # detectors and their versions
    error: str | None = None  # why images are being withheld (model missing, corrupt, failing)
    queued: int = 0  # images waiting to be anonymised
    stored: int = 0  # images stored since the start
    withheld: int = 0  # images not stored (stage behind or failing; a better frame counts too)
    regions: int = 0  # regions blurred since the start
    detect_ms: float = 0.0  # the last image's detection time


@dataclass(frozen=True, slots=True)
class LinkStatus:
    enabled: bool = False
    connected: bool = False
    offline_since_utc: str | None = None
    last_acked_id: str | None = None
    last_error: str | None = None
    # last_error in one word for the screen: refused, not_authorised, tls, timeout,
    # unreachable, lost, config (a certificate or password file), other.
    last_reason: str | None = None


@dataclass(frozen=True, slots=True)
class RecentFinding:
    id: str
    captured_at_utc: str
    grade: int
    type_codes: tuple[str, ...]
    origin: str
    distance_m: float | None


@dataclass(frozen=True, slots=True)
class Status:
    recording: bool = False
    vehicle_id: str = ""
    started_at_utc: str = ""
    distance_m: float = 0.0
    findings_by_grade: dict[str, int] = field(default_factory=lambda: dict.fromkeys("0123", 0))
    camera: CameraStatus = CameraStatus()
    gps: GpsStatus = GpsStatus()
    model: ModelStatus = ModelStatus()
    outbox: OutboxStatus = OutboxStatus()
    link: LinkStatus = LinkStatus()
    privacy: PrivacyStatus = PrivacyStatus()
    recent: tuple[RecentFinding, ...] = ()
    alerts: tuple[str, ...] = ()  # alert codes; the UI's message catalogue words them

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Status:
        raw: dict[str, Any] = json.loads(text)
        return cls(
            recording=bool(raw["recording"]),
            vehicle_id=raw["vehicle_id"],
            started_at_utc=raw["started_at_utc"],
            distance_m=float(raw["distance_m"]),
            findings_by_grade={str(k): int(v) for k, v in raw["findings_by_grade"].items()},
            camera=CameraStatus(**raw["camera"]),
            gps=GpsStatus(**raw["gps"]),
            model=ModelStatus(**raw["model"]),
            outbox=OutboxStatus(**raw["outbox"]),
            link=LinkStatus(**raw["link"]),
            privacy=PrivacyStatus(**raw.get("privacy", {})),  # absent from older recorders
            recent=tuple(
                RecentFinding(**{**r, "type_codes": tuple(r["type_codes"])}) for r in raw["recent"]
            ),
            alerts=tuple(raw["alerts"]),
        )


class Alert:
    """Alert codes a driver must act on; the TUI's catalogue has the words."""

    NO_GPS_FIX = "no_gps_fix"
    CAMERA_LOST = "camera_lost"
    DISK_LOW = "disk_low"
    EVICTING_IMAGES = "evicting_images"
    MODEL_REFUSED = "model_refused"
    CLOCK_NOT_SET = "clock_not_set"
    # A replayed drive (the demo, a video file or folder that does not loop) has been played
    # to its end: the screen says so and closes, and no hardware alert is raised any more.
    REPLAY_FINISHED = "replay_finished"
    # Records wait for the office's receipt and none came for mqtt.receipt_alert_s.
    OFFICE_SILENT = "office_silent"
    PRIVACY_OFF = "privacy_off"  # [privacy] enabled = false: raw frames are stored
    PRIVACY_FAILED = "privacy_failed"  # the anonymiser cannot run: images are withheld
