"""Deleting evicted image files after the write lock is released.

Eviction (edge.outbox.space.enforce_limits) commits its rows under the Outbox's write lock;
the files go afterwards, outside it, because unlinking a few hundred freshly written JPEGs
takes most of a second and a writer (the recorder storing a grade-3 finding) must not wait
for that. Until a file is gone two things must hold:

- its bytes count as free for the next eviction (else a second writer, seeing the disk still
  full, would evict more than needed);
- nobody writes a new file under the same name, which the late unlink would then delete: a
  repeat sighting of an unsent finding whose image was evicted rewrites ``<id>.jpg``, so it
  waits for that name first (:meth:`EvictedFiles.wait_gone`).

A kill -9 between the commit and the unlink leaves orphan files, which the next open of the
lock holder deletes (edge.outbox.space.tidy); never a row pointing at a deleted file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def unlink_file(path: Path) -> None:
    path.unlink(missing_ok=True)


class EvictedFiles:
    """The evicted files still to delete; thread-safe."""

    def __init__(self, images_dir: Path, unlink: Callable[[Path], None] = unlink_file) -> None:
        self.images_dir = images_dir
        self._unlink = unlink  # injectable so that tests can watch the deletes as they happen
        self._changed = threading.Condition()
        self._names: set[str] = set()
        self._freeing_bytes = 0

    @property
    def freeing_bytes(self) -> int:
        """Bytes of files evicted but not deleted yet: as good as free."""
        with self._changed:
            return self._freeing_bytes

    def claim(self, victims: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
        """Note files whose rows are committed as evicted (call it under the write lock, so
        that no writer sees the name free before it is claimed); returns them."""
        claimed = list(victims)
        with self._changed:
            for name, size in claimed:
                self._names.add(name)
                self._freeing_bytes += size
        return claimed

    def delete(self, victims: list[tuple[str, int]]) -> None:
        """Unlink claimed files (call it without the write lock). A file that cannot be
        deleted stays as an orphan for the next open to remove: its row is already evicted,
        so the caller's own write, committed, must not fail for it."""
        for name, size in victims:
            try:
                self._unlink(self.images_dir / name)
            except OSError as exc:
                log.warning("outbox: cannot delete evicted image %s (%s)", name, exc)
            finally:
                with self._changed:
                    self._names.discard(name)
                    self._freeing_bytes -= size
                    self._changed.notify_all()

    def wait_gone(self, name: str) -> None:
        """Return once ``name`` is not waiting to be deleted (at once, nearly always)."""
        with self._changed:
            self._changed.wait_for(lambda: name not in self._names)
