"""The alert policy (edge.recording.alerts): one function, every alert the driver sees."""

from __future__ import annotations

from edge.config.mqtt import MqttConfig
from edge.recording.alerts import alerts_for
from edge.status import CameraStatus, GpsStatus, OutboxStatus, PrivacyStatus

GOOD_GPS = GpsStatus(mode=3, fix_age_s=0.4, clock_set=True)
CAMERA_ON = CameraStatus(connected=True)
PRIVACY_ON = PrivacyStatus(enabled=True)
MQTT_ON = MqttConfig(enabled=True, receipt_alert_s=3600.0)


def _alerts(**changes: object) -> tuple[str, ...]:
    parts: dict[str, object] = {
        "replay_over": False,
        "camera": CAMERA_ON,
        "gps": GOOD_GPS,
        "outbox": OutboxStatus(),
        "model_error": None,
        "privacy": PRIVACY_ON,
        "mqtt": MQTT_ON,
    } | changes
    return alerts_for(**parts)  # type: ignore[arg-type]


def test_a_healthy_vehicle_has_no_alert() -> None:
    assert _alerts() == ()


def test_a_stale_or_missing_fix_is_no_fix() -> None:
    assert _alerts(gps=GpsStatus(mode=3, fix_age_s=5.1, clock_set=True)) == ("no_gps_fix",)
    assert _alerts(gps=GpsStatus(mode=3, fix_age_s=5.0, clock_set=True)) == ()
    assert _alerts(gps=GpsStatus(mode=1, fix_age_s=0.1, clock_set=True)) == ("no_gps_fix",)
    assert _alerts(gps=GpsStatus(mode=3, fix_age_s=None, clock_set=False)) == (
        "no_gps_fix",
        "clock_not_set",
    )


def test_the_end_of_a_replay_replaces_the_hardware_alerts() -> None:
    dead = {"camera": CameraStatus(connected=False), "gps": GpsStatus(clock_set=False)}
    assert _alerts(**dead) == ("no_gps_fix", "clock_not_set", "camera_lost")
    assert _alerts(replay_over=True, **dead) == ("replay_finished",)
    # ...but not what the crew must still act on
    assert _alerts(replay_over=True, outbox=OutboxStatus(disk_low=True), **dead) == (
        "replay_finished",
        "disk_low",
    )


def test_the_office_silent_alert_needs_mqtt_and_the_full_wait() -> None:
    silent = OutboxStatus(office_silent_s=3600.0)
    assert _alerts(outbox=silent) == ("office_silent",)
    assert _alerts(outbox=OutboxStatus(office_silent_s=3599.0)) == ()
    assert _alerts(outbox=silent, mqtt=MqttConfig(enabled=False)) == ()


def test_privacy_off_and_privacy_failed_are_told_apart() -> None:
    assert _alerts(privacy=PrivacyStatus(enabled=False)) == ("privacy_off",)
    assert _alerts(privacy=PrivacyStatus(enabled=True, error="no detector")) == (
        "privacy_failed",
    )


def test_storage_and_model_alerts_in_the_screen_order() -> None:
    outbox = OutboxStatus(disk_low=True, evicting=True)
    assert _alerts(outbox=outbox, model_error="hash mismatch") == (
        "disk_low",
        "evicting_images",
        "model_refused",
    )
