"""`tui.screen`: the terminal belongs to the screen while it runs."""

from __future__ import annotations

import logging
import os
import pty

from tui.screen import logs_kept_off_the_terminal


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return b"".join(chunks)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def test_log_lines_wait_until_the_screen_is_gone() -> None:
    master, slave = pty.openpty()
    tty = os.fdopen(slave, "w", buffering=1)
    handler = logging.StreamHandler(tty)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        logging.getLogger("edge.test").info("before the screen")
        assert b"before the screen" in _read_all(master)
        with logs_kept_off_the_terminal(keep=3):
            for i in range(5):
                logging.getLogger("edge.test").warning("during %d", i)
            assert _read_all(master) == b""
            assert handler not in root.handlers
        after = _read_all(master).decode()
        assert handler in root.handlers
        # The newest three, in order, and only those.
        assert "during 0" not in after and "during 1" not in after
        assert after.index("during 2") < after.index("during 3") < after.index("during 4")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        tty.close()
        os.close(master)
