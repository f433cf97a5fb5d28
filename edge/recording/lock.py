"""One recorder per data directory.

Two recorders on one outbox would each grade, merge and evict as if alone, and the second
would fail half-way through its start (the status socket is taken) with a raw traceback.
`roadpatrol run` (and `demo --data-dir`) therefore take ``DATA_DIR/recorder.lock`` before
opening anything, and a second one stops at once with a line naming the first one's pid.

This is not the outbox's own lock (``outbox.lock``), which says who may tidy the folder and
which `sync drain` and `outbox status` beside a running recorder must still be able to open.
The kernel drops an flock when its process dies, even on kill -9, so a stale file never blocks
a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = "recorder.lock"


class RecorderBusy(Exception):
    """Another recorder holds the data directory; the message names it."""


class DataDirUnusable(OSError):
    """The data directory cannot be created or written; the message names it."""


class RecorderLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> RecorderLock:
        """Take the lock or raise RecorderBusy; DataDirUnusable (an OSError) naming the folder
        when it cannot be made or written."""
        data_dir = self.path.parent
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            # "a+": never truncate before holding the lock, or the holder's pid is lost.
            file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            why = "not a folder" if data_dir.exists() and not data_dir.is_dir() else exc.strerror
            raise DataDirUnusable(f"vehicle.data_dir: {data_dir}: cannot use it: {why}") from exc
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            file.close()
            raise RecorderBusy(
                f"another recorder (pid {holder}) is already recording into "
                f"{self.path.parent}; stop it first, or give this one another data_dir"
            ) from None
        file.seek(0)
        file.truncate()
        # On a full disk the lock holds all the same: the pid only words the message.
        with contextlib.suppress(OSError):
            os.write(file.fileno(), f"{os.getpid()}\n".encode())
        self._file = file
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None
