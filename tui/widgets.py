"""The pieces of the driver's screen. Each draws one part of a Status in the current language.

Widgets only repaint when the part of the Status they show has changed, so a 4 Hz refresh of
an idle screen costs next to nothing on the vehicle's small CPU.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from rich.cells import cell_len
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from edge.status import Alert, Status
from tui import format as fmt
from tui.i18n import Messages, pad_cells

GRADE_STYLES: dict[str, str] = {
    "3": "bold white on red3",
    "2": "bold black on dark_orange",
    "1": "black on yellow3",
    "0": "white on grey35",
    "manual": "bold white on magenta",
}
_BAD = "bold red"
_WARN = "bold dark_orange"
_DIM = "grey62"
_SEP = " · "


_BADGES = ((1, "model"), (2, "model"), (3, "model"), (0, "manual"))


def _grade_key(grade: int, origin: str) -> str:
    return "manual" if origin == "manual" else str(grade)


class StatusView(Widget):
    """A widget drawn from (Status, Messages); subclasses say which part of Status they use."""

    # Alerts and the pause banner change height; the rest keep theirs.
    RELAYOUT: ClassVar[bool] = False

    def __init__(self, msgs: Messages, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.status = Status()
        self.msgs = msgs
        self._shown: Hashable = None

    def show(self, status: Status, msgs: Messages) -> None:
        self.status, self.msgs = status, msgs
        key = (msgs.lang, self.part(status))
        if key != self._shown:
            self._shown = key
            self.follow(status)
            self.refresh(layout=self.RELAYOUT)

    def part(self, status: Status) -> Hashable:
        raise NotImplementedError

    def follow(self, status: Status) -> None:
        """Hook for CSS classes that follow the data."""


class StateBar(StatusView):
    """Recording / paused / stopped, in a colour the driver sees from the corner of an eye."""

    RELAYOUT = True

    def part(self, status: Status) -> Hashable:
        return (status.recording, status.model.paused, status.vehicle_id, status.started_at_utc)

    def follow(self, status: Status) -> None:
        state = _state(status)
        for name in ("recording", "paused", "stopped"):
            self.set_class(state == name, f"-{name}")

    def render(self) -> RenderResult:
        m, st = self.msgs, self.status
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        detail = f"{m('header.vehicle')} {st.vehicle_id or '—'}"
        if st.started_at_utc:
            detail += f"{_SEP}{m('header.since')} {fmt.local_time(st.started_at_utc, False)}"
        grid.add_row(Text(m(f"state.{_state(st)}")), Text(detail))
        return grid


def _state(status: Status) -> str:
    if not status.recording:
        return "stopped"
    return "paused" if status.model.paused else "recording"


class AlertList(StatusView):
    """One line per alert, each saying what is wrong and what to do."""

    RELAYOUT = True

    def part(self, status: Status) -> Hashable:
        return status.alerts, status.privacy.error

    def follow(self, status: Status) -> None:
        self.display = bool(status.alerts)

    def render(self) -> RenderResult:
        # A column of its own for the sign: Japanese has no spaces to wrap at, so the text
        # folds at the edge and the sign would otherwise sit alone on its line.
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1, overflow="fold")
        for code in self.status.alerts:
            text = self.msgs.alert(code)
            if code == Alert.PRIVACY_FAILED and self.status.privacy.error:
                text += f" ({self.status.privacy.error})"  # the reason, for the technician
            grid.add_row("⚠", text)
        return grid


class HealthGrid(StatusView):
    """GPS, camera, model, outbox, link and disk: label and value, two columns side by side.

    On a wide screen each line also carries the details a technician asks about on the phone.
    """

    WIDE_FROM_CELLS: ClassVar[int] = 110
    wide = False

    def part(self, status: Status) -> Hashable:
        return (status.gps, status.camera, status.model, status.outbox, status.link)

    def render(self) -> RenderResult:
        m = self.msgs
        self.wide = self.size.width >= self.WIDE_FROM_CELLS
        left = [*self._gps(), (m("label.camera"), self._camera())]
        right = [
            (m("label.model"), self._model()),
            *self._model_update(),
            (m("label.outbox"), self._outbox()),
            (m("label.link"), self._link()),
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
        return grid

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
            line3.append(_SEP + gps.error, style=_BAD)
        return [(m("label.gps"), line1), ("", line2), ("", line3)]

    def _camera(self) -> Text:
        m, cam = self.msgs, self.status.camera
        if not cam.connected:
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

    def _disk(self) -> Text:
        box = self.status.outbox
        if box.disk_free_bytes is None:
            return Text(self.msgs("disk.unknown"), style=_DIM)
        text = Text(self.msgs("disk.free", size=fmt.size(self.msgs, box.disk_free_bytes)))
        if box.disk_low:
            text.stylize(_BAD)
        return text


class ShiftCounters(StatusView):
    """Findings per grade this shift, and kilometres driven."""

    def part(self, status: Status) -> Hashable:
        shown_km = fmt.distance(self.msgs, status.distance_m)
        return (tuple(sorted(status.findings_by_grade.items())), shown_km)

    def render(self) -> RenderResult:
        m, counts = self.msgs, self.status.findings_by_grade
        line = Text()
        # The recorder counts manual marks apart only if it says so; otherwise they sit
        # inside the grade they were given, and a separate 0 would be a lie.
        shown = ("3", "2", "1", "manual") if "manual" in counts else ("3", "2", "1")
        for grade in shown:
            name = m("grade.manual") if grade == "manual" else m(f"grade.{grade}")
            line.append(f" {name} {counts.get(grade, 0)} ", style=GRADE_STYLES[grade])
            line.append(" ")
        line.append(f"{m('counts.no_damage')} {counts.get('0', 0)}", style=_DIM)
        line.append(_SEP)
        line.append(m("counts.total_km", km=fmt.distance(m, self.status.distance_m)), style="bold")
        line.no_wrap, line.overflow = True, "ellipsis"
        return line


class FindingsList(StatusView):
    """The newest findings, as many as fit; the ID column appears when there is room."""

    WIDE_FROM_CELLS: ClassVar[int] = 100

    def part(self, status: Status) -> Hashable:
        return (status.recent, round(status.distance_m, -1), self.size)

    def on_resize(self) -> None:
        self.refresh()

    def render(self) -> RenderResult:
        m, st = self.msgs, self.status
        wide = self.size.width >= self.WIDE_FROM_CELLS
        table = Table(
            title=m("findings.title"),
            title_justify="left",
            title_style="bold",
            expand=True,
            box=None,
            padding=(0, 1),
            show_edge=False,
            header_style="bold " + _DIM,
        )
        table.add_column(m("findings.time"), no_wrap=True)
        table.add_column(m("findings.grade"), no_wrap=True)
        table.add_column(m("findings.types"), ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column(m("findings.since"), justify="right", no_wrap=True)
        if wide:
            table.add_column(m("findings.id"), no_wrap=True, style=_DIM)
        # Equal-width badges keep the colour column straight whatever the language.
        badge = max(cell_len(m.grade_name(g, o)) for g, o in _BADGES)
        recent = sorted(st.recent, key=lambda r: r.captured_at_utc, reverse=True)
        for r in recent[: max(self.size.height - 2, 1)]:
            key = _grade_key(r.grade, r.origin)
            grade = Text(
                f" {pad_cells(m.grade_name(r.grade, r.origin), badge)} ", style=GRADE_STYLES[key]
            )
            types = ", ".join(f"{c} {m.type_name(c)}" for c in r.type_codes) or "—"
            since = None if r.distance_m is None else st.distance_m - r.distance_m
            row: list[RenderableType] = [
                fmt.local_time(r.captured_at_utc),
                grade,
                types,
                fmt.distance(m, since),
            ]
            if wide:
                row.append(fmt.short_id(r.id))
            table.add_row(*row)
        if not recent:
            table.add_row("", Text(m("findings.none"), style=_DIM), "", "")
        return table


class KeyHints(StatusView):
    """The keys, in the current language; `p` says what pressing it would do now."""

    def part(self, status: Status) -> Hashable:
        return status.model.paused

    def render(self) -> RenderResult:
        m = self.msgs
        pause = m("keys.resume") if self.status.model.paused else m("keys.pause")
        return Text(
            "   ".join((pause, m("keys.lang"), m("keys.quit"))), no_wrap=True, overflow="ellipsis"
        )
