"""The alert policy: which of the recorder's conditions the driver must act on.

One function decides every alert of the status snapshot (edge.status.Alert); the screen and
the status topic only word and show them. The status socket's client adds one of its own
(the recorder is unreachable), which no recorder can report about itself.
"""

from __future__ import annotations

from edge.config.mqtt import MqttConfig
from edge.status import Alert, CameraStatus, GpsStatus, OutboxStatus, PrivacyStatus

# A fix older than this is no fix for the driver (the recorder dead-reckons a little longer).
NO_FIX_AFTER_S = 5.0


def alerts_for(
    *,
    replay_over: bool,
    camera: CameraStatus,
    gps: GpsStatus,
    outbox: OutboxStatus,
    model_error: str | None,
    privacy: PrivacyStatus,
    mqtt: MqttConfig,
) -> tuple[str, ...]:
    """The alert codes for one status snapshot, in the order the screen lists them."""
    alerts: list[str] = []
    if replay_over:
        # The replay's end, not a hardware fault: no antenna or cable advice.
        alerts.append(Alert.REPLAY_FINISHED)
    else:
        if gps.mode < 2 or gps.fix_age_s is None or gps.fix_age_s > NO_FIX_AFTER_S:
            alerts.append(Alert.NO_GPS_FIX)
        if not gps.clock_set:
            alerts.append(Alert.CLOCK_NOT_SET)
        if not camera.connected:
            alerts.append(Alert.CAMERA_LOST)
    if outbox.disk_low:
        alerts.append(Alert.DISK_LOW)
    if outbox.evicting:
        alerts.append(Alert.EVICTING_IMAGES)
    if model_error:
        alerts.append(Alert.MODEL_REFUSED)
    silent_s = outbox.office_silent_s
    if mqtt.enabled and silent_s is not None and silent_s >= mqtt.receipt_alert_s:
        alerts.append(Alert.OFFICE_SILENT)
    if not privacy.enabled:
        alerts.append(Alert.PRIVACY_OFF)
    elif privacy.error:
        alerts.append(Alert.PRIVACY_FAILED)
    return tuple(alerts)
