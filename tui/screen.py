"""Show the driver's screen for a recorder in this process or across its status socket."""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Iterator

from edge.status_socket import RecorderControl
from tui.app import create_app

log = logging.getLogger(__name__)


def run(control: RecorderControl, lang: str | None = None, *, refresh_hz: float = 4.0) -> int:
    """Run the screen in this terminal until the crew presses `q`; 0 then, 1 if it broke.

    ``roadpatrol run``/``demo`` call this (edge.app) while
    the recorder records in its own threads; returning never stops the recorder by itself.
    """
    app = create_app(control, lang=lang, refresh_hz=refresh_hz)
    with logs_kept_off_the_terminal():
        try:
            result = app.run()
        except Exception:
            # The screen is a window on the recorder, never a reason for it to stop.
            log.exception("driver screen failed")
            return 1
    if app.return_code not in (None, 0):
        return app.return_code
    return 0 if result is None else result


class _TailHandler(logging.Handler):
    """Keeps the last records, bounded: a whole shift of logs must not pile up in memory."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.records: collections.deque[logging.LogRecord] = collections.deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _writes_to_a_terminal(handler: logging.Handler) -> bool:
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    isatty = getattr(handler.stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def logs_kept_off_the_terminal(keep: int = 200) -> Iterator[None]:
    """Hold back log lines aimed at the terminal while the screen owns it.

    A log line written straight to the tty would tear the screen apart; the last ``keep``
    are written out once the screen is gone (a service logs to the journal, not a tty).
    """
    root = logging.getLogger()
    moved = [h for h in root.handlers if _writes_to_a_terminal(h)]
    if not moved:
        yield
        return
    tail = _TailHandler(keep)
    for handler in moved:
        root.removeHandler(handler)
    root.addHandler(tail)
    try:
        yield
    finally:
        root.removeHandler(tail)
        for handler in moved:
            root.addHandler(handler)
            for record in tail.records:
                if record.levelno >= handler.level:
                    handler.handle(record)
