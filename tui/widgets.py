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
_STALE = "grey50 not bold"
_SEP = " · "


def stale_line(msgs: Messages, stale_s: float) -> Text:
    """How old frozen values are, shown above them while the recorder is out of reach."""
    if stale_s == float("inf"):
        return Text(msgs("stale.never"), style=_WARN)
    return Text(msgs("stale.as_of", age=fmt.age(msgs, stale_s)), style=_WARN)


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
        self.stale_s: float | None = None  # None: live; else how old the values are (inf: never)
        self._shown: Hashable = None

    def show(self, status: Status, msgs: Messages, stale_s: float | None = None) -> None:
        # Going stale or live again adds or removes a line, as may a new shape: a new layout.
        relayout = self.RELAYOUT or (stale_s is None) != (self.stale_s is None)
        relayout = relayout or self.shape(status) != self.shape(self.status)
        self.status, self.msgs, self.stale_s = status, msgs, stale_s
        stale_key = None if stale_s is None else fmt.age(msgs, stale_s)
        key = (msgs.lang, self.part(status), stale_key)
        if key != self._shown:
            self._shown = key
            self.follow(status)
            self.refresh(layout=relayout)

    def part(self, status: Status) -> Hashable:
        raise NotImplementedError

    def shape(self, status: Status) -> Hashable:
        """What decides this widget's height, for widgets whose height follows the data."""
        del status
        return None

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
        silent = status.outbox.office_silent_s if Alert.OFFICE_SILENT in status.alerts else None
        return status.alerts, None if silent is None else round(silent / 60), status.privacy.error

    def follow(self, status: Status) -> None:
        self.display = bool(status.alerts)
        # The end of a replay is news, not a fault: not on the red of a hardware alert.
        self.set_class(status.alerts == (Alert.REPLAY_FINISHED,), "-finished")

    def render(self) -> RenderResult:
        # A column of its own for the sign: Japanese has no spaces to wrap at, so the text
        # folds at the edge and the sign would otherwise sit alone on its line.
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1, overflow="fold")
        silent = fmt.age(self.msgs, self.status.outbox.office_silent_s)
        for code in self.status.alerts:
            text = self.msgs.alert(code, age=silent)
            if code == Alert.PRIVACY_FAILED and self.status.privacy.error:
                text += f" ({self.status.privacy.error})"  # the reason, for the technician
            grid.add_row("⚠", text)
        return grid


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
        if self.stale_s is not None:
            line.stylize(_STALE)
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
