"""Which frames to grade: one every few metres driven, none while standing, a timer without GPS."""

from __future__ import annotations

from edge.config.capture import SamplingConfig


class DistanceSampler:
    """Pure decision logic, fed once per captured frame, in time order.

    Distance comes from the GPS odometer when there is one; otherwise it is integrated from the
    GPS speed between calls. With neither (no fix) it grades every ``fallback_interval_s``.
    """

    def __init__(self, cfg: SamplingConfig | None = None) -> None:
        self._cfg = cfg if cfg is not None else SamplingConfig()
        self._last_grade_ns: int | None = None
        self._last_grade_m: float | None = None
        self._distance_m = 0.0  # integrated from speed when no odometer is given
        self._last_call_ns: int | None = None

    def should_grade(self, mono_ns: int, odometer_m: float | None, speed_mps: float | None) -> bool:
        cfg = self._cfg
        dt_s = 0.0 if self._last_call_ns is None else max(0, mono_ns - self._last_call_ns) / 1e9
        self._last_call_ns = mono_ns
        if odometer_m is not None:
            position_m: float | None = odometer_m
        elif speed_mps is not None:
            self._distance_m += max(0.0, speed_mps) * dt_s
            position_m = self._distance_m
        else:
            position_m = None

        if position_m is None:
            due = (
                self._last_grade_ns is None
                or mono_ns - self._last_grade_ns >= cfg.fallback_interval_s * 1e9
            )
            if due:
                self._last_grade_ns = mono_ns
            return due

        if speed_mps is not None and speed_mps < cfg.min_speed_mps:
            return False
        last_m = self._last_grade_m
        if last_m is not None and position_m < last_m:
            last_m = None  # the odometer restarted (new source or new boot): begin again
        if last_m is not None and position_m - last_m < cfg.sample_every_m:
            return False
        self._last_grade_m = position_m
        self._last_grade_ns = mono_ns
        return True
