"""The health lines of the driver's screen: GPS, camera, model, outbox, link and disk."""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import RenderResult

from edge.status import Alert, Status
from tui import format as fmt
from tui.widgets import _BAD, _DIM, _SEP, _STALE, _WARN, StatusView, stale_line


class HealthGrid(StatusView):
    """GPS, camera, model, outbox, link and disk: label and value, two columns side by side.

    On a wide screen each line also carries the details a technician asks about on the phone.
    """

    WIDE_FROM_CELLS: ClassVar[int] = 110
    wide = False

    def part(self, status: Status) -> Hashable:
        return (status.gps, status.camera, status.model, status.outbox, status.link)

    def shape(self, status: Status) -> Hashable:
        # The lines of a model update, of the link's reason and of records awaiting the
        # office's receipt come and go: only then does the grid change height.
        return (
            status.model.last_update_result is not None,
            _link_reason(status) is not None,
            status.outbox.awaiting_receipt > 0,
        )

    def render(self) -> RenderResult:
        m = self.msgs
        self.wide = self.size.width >= self.WIDE_FROM_CELLS
        left = [*self._gps(), (m("label.camera"), self._camera())]
        right = [
            (m("label.model"), self._model()),
            *self._model_update(),
            (m("label.outbox"), self._outbox()),
            *self._awaiting_receipt(),
            (m("label.link"), self._link()),
            *self._link_reason(),
            (m("label.disk"), self._disk()),
        ]
        grid = Table.grid(expand=True, padding=(0, 1))
        for ratio in (None, 1, None, 1):
            grid.add_column(ratio=ratio, no_wrap=True, overflow="ellipsis")
        blank = ("", Text(""))
        for i in range(max(len(left), len(right))):
            l_label, l_value = left[i] if i < len(left) else blank
            r_label, r_value = right[i] if i < len(right) else blank
            grid.add_row(Text(l_label, style="bold"), l_value, Text(r_label, style="bold"), r_value)
        if self.stale_s is None:
            return grid
        # Frozen values must not pass for live ones ("fix 0.3 s ago" an hour later).
        for value in (v for _, v in (*left, *right)):
            value.stylize(_STALE)
        return Group(stale_line(m, self.stale_s), grid)

    def _gps(self) -> list[tuple[str, Text]]:
        m, gps = self.msgs, self.status.gps
        fix = Text(m(f"gps.fix.{gps.mode}" if 0 <= gps.mode <= 3 else "gps.fix.0"))
        if gps.mode < 2:
            fix.stylize(_BAD)
        line1 = fix + Text(_SEP + m("gps.sats", n="—" if gps.sats_used is None else gps.sats_used))
        line1.append(_SEP + m("gps.hdop", v="—" if gps.hdop is None else f"{gps.hdop:.1f}"))
        if self.wide and gps.quality != "none":
            line1.append(_SEP + gps.quality, style=_DIM)
        if self.wide and gps.bad_sentences:
            line1.append(_SEP + m("gps.bad", n=gps.bad_sentences), style=_WARN)
        if gps.fix_age_s is None:
            age = Text(m("gps.never"), style=_BAD)
        else:
            age = Text(m("gps.age", age=fmt.age(m, gps.fix_age_s)))
            if gps.fix_age_s > 5:
                age.stylize(_WARN)
        line2 = Text(fmt.speed(m, gps.speed_mps) + _SEP) + age
        line3 = Text(fmt.position(gps.lat_deg, gps.lon_deg))
        if gps.error:
            finished = Alert.REPLAY_FINISHED in self.status.alerts
            line3.append(_SEP + gps.error, style=_DIM if finished else _BAD)
        return [(m("label.gps"), line1), ("", line2), ("", line3)]

    def _camera(self) -> Text:
        m, cam = self.msgs, self.status.camera
        if Alert.REPLAY_FINISHED in self.status.alerts:
            text = Text(m("camera.finished"), style=_DIM)
        elif not cam.connected:
            text = Text(m("camera.lost"), style=_BAD)
        else:
            text = Text(m("camera.fps", fps=f"{cam.fps:.1f}"))
        text.append(
            _SEP + m("camera.dropped", n=cam.dropped_frames),
            style=_WARN if cam.dropped_frames else "",
        )
        if self.wide and cam.reconnects:
            text.append(_SEP + m("camera.reconnects", n=cam.reconnects), style=_WARN)
        if cam.error:
            text.append(_SEP + cam.error, style=_BAD)
        elif self.wide and cam.source:
            text.append(_SEP + cam.source, style=_DIM)
        return text

    def _model(self) -> Text:
        m, model = self.msgs, self.status.model
        if model.error:
            return Text(model.error, style=_BAD)
        if not model.name:
            return Text(m("model.none"), style=_BAD)
        text = Text(f"{model.name} {model.version}{_SEP}")
        text.append(m("unit.ms", v=f"{model.infer_ms:.1f}"))
        if model.paused:
            text.append(_SEP + m("model.paused"), style=_WARN)
        if self.wide:
            text.append(_SEP + m("model.graded", n=model.graded), style=_DIM)
        return text

    def _model_update(self) -> list[tuple[str, Text]]:
        """One line under the model once a package was pushed from the office; none before.

        The verdict comes first: on a narrow screen the end of the line is cut off."""
        m, model = self.msgs, self.status.model
        if model.last_update_result is None:
            return []
        model_id = model.last_update_model_id or "?"
        if model.last_update_result == "refused":
            reason = model.last_update_reason or ""
            text = Text(m("model.update.refused", id=model_id, reason=reason), style=_WARN)
        elif model.last_update_result == "already installed":
            text = Text(m("model.update.already", id=model_id))
        elif model.last_update_activated:
            text = Text(m("model.update.activated", id=model_id))
        else:
            text = Text(m("model.update.installed", id=model_id))
            if model.last_update_reason:  # was to be activated but failed to load
                text.append(_SEP + model.last_update_reason, style=_WARN)
        if self.wide and model.last_update_at_utc:
            text.append(_SEP + fmt.local_time(model.last_update_at_utc, False), style=_DIM)
        return [("", text)]

    def _outbox(self) -> Text:
        m, box = self.msgs, self.status.outbox
        text = Text(m("outbox.pending", n=box.pending))
        text.append(_SEP + fmt.size(m, box.pending_bytes))
        if box.oldest_age_s is not None:
            text.append(_SEP + m("outbox.oldest", age=fmt.age(m, box.oldest_age_s)))
        if self.wide and box.evictions:
            text.append(_SEP + m("outbox.evicted", n=box.evictions), style=_WARN)
        return text

    def _awaiting_receipt(self) -> list[tuple[str, Text]]:
        """Sent, but the office has not confirmed storing it yet: a line of its own."""
        m, box = self.msgs, self.status.outbox
        if not box.awaiting_receipt:
            return []
        age = fmt.age(m, box.awaiting_receipt_age_s)
        return [("", Text(m("outbox.awaiting_receipt", n=box.awaiting_receipt, age=age)))]

    def _link(self) -> Text:
        m, link = self.msgs, self.status.link
        if not link.enabled:
            text = Text(m("link.disabled"), style=_DIM)
        elif link.connected:
            text = Text(m("link.online"), style="bold green")
        elif link.offline_since_utc:
            since = fmt.local_time(link.offline_since_utc, with_seconds=False)
            text = Text(m("link.offline_since", time=since), style=_WARN)
        else:
            text = Text(m("link.offline"), style=_WARN)
        if link.last_acked_id:
            text.append(_SEP + m("link.acked", id=fmt.short_id(link.last_acked_id)))
        if self.wide and link.last_error and not link.connected:
            text.append(_SEP + link.last_error, style=_DIM)
        return text

    def _link_reason(self) -> list[tuple[str, Text]]:
        """Why the link is down, on a line of its own under it (room on a narrow screen)."""
        reason = _link_reason(self.status)
        if reason is None:
            return []
        return [("", Text(self.msgs(f"link.reason.{reason}"), style=_WARN))]

    def _disk(self) -> Text:
        box = self.status.outbox
        if box.disk_free_bytes is None:
            return Text(self.msgs("disk.unknown"), style=_DIM)
        text = Text(self.msgs("disk.free", size=fmt.size(self.msgs, box.disk_free_bytes)))
        if box.disk_low:
            text.stylize(_BAD)
        return text


def _link_reason(status: Status) -> str | None:
    link = status.link
    return link.last_reason if link.enabled and not link.connected else None
