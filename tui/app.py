"""The driver's screen: polls the recorder's Status at a fixed rate and sends the crew's keys.

The recorder never waits for the screen: the screen pulls ``control.status()`` from a timer
(a cheap snapshot), and commands that reach the recorder run in worker threads so a slow
disk or socket cannot freeze the keys either.
"""

from __future__ import annotations

import logging
import time
from typing import ClassVar

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button

from edge.status import Alert, Status
from edge.status_socket import RECORDER_UNREACHABLE, RecorderControl
from tui.health import HealthGrid
from tui.i18n import Lang, Messages, resolve_lang
from tui.widgets import (
    AlertList,
    FindingsList,
    KeyHints,
    ShiftCounters,
    StateBar,
    StatusView,
)

log = logging.getLogger(__name__)


class MarkButton(Button):
    """The large target for a manual mark; pressing `m` does the same."""

    # Focus would move the `m`, `p`, `l` keys into the button; the crew never tabs around.
    can_focus = False


class PatrolApp(App[int]):
    """Returns 0 when the crew leaves the screen with `q`, or once a replayed drive has ended
    (after ``CLOSE_AFTER_FINISH_S``, or at once on any key)."""

    CLOSE_AFTER_FINISH_S: ClassVar[float] = 5.0

    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "mark", show=False),
        Binding("p", "toggle_pause", show=False),
        Binding("l", "switch_lang", show=False),
        Binding("q", "leave", show=False),
    ]

    def __init__(self, control: RecorderControl, lang: Lang, refresh_hz: float) -> None:
        if refresh_hz <= 0:
            raise ValueError(f"refresh_hz must be > 0, got {refresh_hz}")
        super().__init__()
        self.control = control
        self.msgs = Messages(lang)
        self.refresh_hz = refresh_hz
        self.last_status = Status()
        self.polls = 0
        self.poll_errors = 0
        self.finished = False  # the replay ended: closing
        self._live_at: float | None = None  # monotonic time of the last live status
        self._stale_s: float | None = None

    @property
    def lang(self) -> Lang:
        return self.msgs.lang

    def compose(self) -> ComposeResult:
        yield StateBar(self.msgs, id="state")
        yield AlertList(self.msgs, id="alerts")
        yield HealthGrid(self.msgs, id="health")
        yield ShiftCounters(self.msgs, id="counters")
        yield FindingsList(self.msgs, id="findings")
        with Horizontal(id="actions"):
            yield MarkButton(self.msgs("button.mark"), id="mark")
            yield KeyHints(self.msgs, id="keys")

    def on_mount(self) -> None:
        self.title = self.msgs("app.title")
        self.poll()
        self.set_interval(1.0 / self.refresh_hz, self.poll)

    def poll(self) -> None:
        self.polls += 1
        try:
            status = self.control.status()
        except Exception:
            # Keep showing the last picture; the recorder's own health is not the screen's job.
            self.poll_errors += 1
            log.exception("recorder status() failed")
            return
        self.last_status = status
        now = time.monotonic()
        if RECORDER_UNREACHABLE in status.alerts:
            self._stale_s = float("inf") if self._live_at is None else now - self._live_at
        else:
            self._live_at, self._stale_s = now, None
        if Alert.REPLAY_FINISHED in status.alerts and not self.finished:
            self.finished = True
            self.set_timer(self.CLOSE_AFTER_FINISH_S, self.action_leave)
        self._show()

    def _show(self) -> None:
        for view in self.query(StatusView):
            view.show(self.last_status, self.msgs, self._stale_s)

    def on_key(self, event: events.Key) -> None:
        if self.finished:  # "any key closes it now"
            event.stop()
            self.exit(0)

    # -- keys ----------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "mark":
            self.action_mark()

    def action_mark(self) -> None:
        self.run_worker(self._mark, thread=True, group="commands")

    def _mark(self) -> None:
        try:
            finding_id = self.control.mark_manual()
        except Exception:
            log.exception("manual mark failed")
            finding_id = None
        self.call_from_thread(
            self._after_command,
            "notify.marked" if finding_id else "notify.mark_failed",
            finding_id is not None,
        )

    def action_toggle_pause(self) -> None:
        paused = not self.last_status.model.paused
        self.run_worker(lambda: self._set_paused(paused), thread=True, group="commands")

    def _set_paused(self, paused: bool) -> None:
        try:
            self.control.set_paused(paused)
        except Exception:
            log.exception("pause/resume failed")
            self.call_from_thread(self._after_command, "notify.command_failed", False)
            return
        self.call_from_thread(
            self._after_command, "notify.paused" if paused else "notify.resumed", True
        )

    def _after_command(self, message_key: str, ok: bool) -> None:
        self.notify(self.msgs(message_key), severity="information" if ok else "error")
        self.poll()  # show the effect now, not at the next tick

    def action_switch_lang(self) -> None:
        self.msgs = Messages("en" if self.lang == "ja" else "ja")
        self.query_one(MarkButton).label = self.msgs("button.mark")
        self.title = self.msgs("app.title")
        self._show()

    def action_leave(self) -> None:
        self.exit(0)


def create_app(
    control: RecorderControl, *, lang: str | None = None, refresh_hz: float = 4.0
) -> PatrolApp:
    """The screen for ``control``; ``lang`` None/"auto" follows LC_ALL/LC_MESSAGES/LANG."""
    return PatrolApp(control, resolve_lang(lang), refresh_hz)
