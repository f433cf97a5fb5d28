"""Each vehicle's data stays that vehicle's: finding ids and their images belong to the sender.

Topics say which vehicle sent a message, and the broker's ACLs (one user per vehicle, its own
topic tree) make that true; but a finding id is chosen by the vehicle, so vehicle B could
publish ``B/image/<A's finding id>`` before A's photo arrives, or claim A's finding id first.
So:

- a finding whose id another vehicle already holds is refused and logged;
- an image is stored only for a finding of the same vehicle; one that arrives before its
  finding is parked (on disk, in its own folder and table keyed by vehicle *and* id, so B's
  park never touches A's) and adopted when the finding arrives, for at most
  ``PARK_MAX_S``; parked images of other vehicles for that id are then discarded, logged;
- a re-delivery that differs from what is stored is logged and kept out, never silently
  counted as a duplicate.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync.office.store import OfficeStore, write_durably

log = logging.getLogger("sync.office.receiver")

PARK_MAX_S = 24 * 3600.0  # a vehicle sends a finding just before its image; a day is ample
PARK_MAX_PER_VEHICLE = 1000  # and a vehicle cannot fill the office's disk with parked photos
PARKED_DIR = ".parked"  # not a valid vehicle id, so never one vehicle's images folder



class NotYours(ValueError):
    """A message about a finding that another vehicle holds; refused (the receiver logs it)."""


@dataclass
class OwnershipStats:
    parked: int = 0
    adopted: int = 0
    expired: int = 0
    refused_foreign: int = 0
    conflicts: int = 0


class Ownership:
    """The receiver's checks and the parking place for early images, on the office store."""

    def __init__(self, store: OfficeStore) -> None:
        self.store = store
        self.stats = OwnershipStats()  # table parked_images: schema 2 (sync.office.migrations)

    def owner_of(self, finding_id: str) -> str | None:
        row = store_row(self.store, "SELECT vehicle_id FROM findings WHERE id=?", (finding_id,))
        return None if row is None else str(row[0])

    def check_finding(self, vehicle_id: str, doc: dict[str, Any]) -> None:
        """Before a finding is stored: refuse another vehicle's id; log a differing copy."""
        fid = doc["id"]
        owner = self.owner_of(fid)
        if owner is not None and owner != vehicle_id:
            self.stats.refused_foreign += 1
            raise NotYours(f"finding {fid} is already held by vehicle {owner!r}; refused")
        if owner is None:
            return
        row = store_row(self.store, "SELECT payload FROM findings WHERE id=?", (fid,))
        if row is not None and json.loads(row[0]) != doc:
            self.stats.conflicts += 1
            log.warning(
                "finding %s of %s delivered again with different content; the first is kept",
                fid,
                vehicle_id,
            )

    def image_verdict(self, vehicle_id: str, finding_id: str, jpeg: bytes) -> str:
        """'store' (its own finding), 'duplicate' (the same bytes again), 'conflict' (other
        bytes: logged, the first kept), or 'park' (no finding yet); raises NotYours."""
        owner = self.owner_of(finding_id)
        if owner is None:
            return "park"
        if owner != vehicle_id:
            self.stats.refused_foreign += 1
            raise NotYours(
                f"image for finding {finding_id} of vehicle {owner!r} sent by {vehicle_id!r}"
            )
        row = store_row(self.store, "SELECT path FROM images WHERE finding_id=?", (finding_id,))
        if row is None:
            return "store"
        if _read(Path(row[0])) == jpeg:
            return "duplicate"
        self.stats.conflicts += 1
        log.warning(
            "image of finding %s from %s delivered again with other bytes (%d); first kept",
            finding_id,
            vehicle_id,
            len(jpeg),
        )
        return "conflict"

    def park(self, vehicle_id: str, finding_id: str, jpeg: bytes) -> None:
        """Keep an image that came before its finding, on disk (it was acked: never lost)."""
        self.expire()
        held = store_row(
            self.store, "SELECT COUNT(*) FROM parked_images WHERE vehicle_id=?", (vehicle_id,)
        )
        if held is not None and held[0] >= PARK_MAX_PER_VEHICLE:
            raise NotYours(
                f"{vehicle_id!r} already has {PARK_MAX_PER_VEHICLE} images waiting for their "
                f"findings; image for {finding_id} refused"
            )
        path = self._parked_path(vehicle_id, finding_id)
        write_durably(path, jpeg)
        with self.store.transaction():
            self.store.execute(
                "INSERT INTO parked_images VALUES (?,?,?,?,?) ON CONFLICT (vehicle_id, finding_id) "
                "DO UPDATE SET path = excluded.path, bytes = excluded.bytes, "
                "parked_at_unix_s = excluded.parked_at_unix_s",
                (vehicle_id, finding_id, str(path), len(jpeg), time.time()),
            )
        self.stats.parked += 1
        log.info("image for %s of %s came before its finding: parked", finding_id, vehicle_id)
        # With several receivers the finding may have been stored by another one meanwhile,
        # after it looked for parked images and before this row was visible: look again.
        if self.owner_of(finding_id) == vehicle_id:
            self.adopt(vehicle_id, finding_id)

    def adopt(self, vehicle_id: str, finding_id: str) -> bool:
        """Once a finding is stored: move its own vehicle's parked image in (True if one
        was waiting) and discard other vehicles' parked images for that id, with a log line."""
        rows = self.store.query(
            "SELECT vehicle_id, path FROM parked_images WHERE finding_id=?", (finding_id,)
        )
        adopted = False
        for row in rows:
            path = Path(row["path"])
            jpeg = _read(path) if row["vehicle_id"] == vehicle_id else None
            if jpeg is not None:  # None: another receiver adopted it first
                adopted = self.store.add_image(vehicle_id, finding_id, jpeg) or adopted
                self.stats.adopted += 1
            elif row["vehicle_id"] != vehicle_id:
                self.stats.refused_foreign += 1
                log.warning(
                    "parked image for finding %s sent by %r discarded: the finding is %r's",
                    finding_id,
                    row["vehicle_id"],
                    vehicle_id,
                )
            self._unpark(row["vehicle_id"], finding_id, path)
        return adopted

    def expire(self) -> int:
        """Drop parked images older than PARK_MAX_S (their finding never came), logged."""
        cutoff = time.time() - PARK_MAX_S
        rows = self.store.query(
            "SELECT vehicle_id, finding_id, path FROM parked_images WHERE parked_at_unix_s < ?",
            (cutoff,),
        )
        for row in rows:
            log.warning(
                "parked image for %s of %s dropped: no finding within %.0f s",
                row["finding_id"],
                row["vehicle_id"],
                PARK_MAX_S,
            )
            self._unpark(row["vehicle_id"], row["finding_id"], Path(row["path"]))
            self.stats.expired += 1
        return len(rows)

    def _unpark(self, vehicle_id: str, finding_id: str, path: Path) -> None:
        with self.store.transaction():
            self.store.execute(
                "DELETE FROM parked_images WHERE vehicle_id=? AND finding_id=?",
                (vehicle_id, finding_id),
            )
        path.unlink(missing_ok=True)

    def _parked_path(self, vehicle_id: str, finding_id: str) -> Path:
        own = self.store.image_path_for(vehicle_id, finding_id)  # validates both ids
        assert self.store.images_dir is not None
        return self.store.images_dir / PARKED_DIR / vehicle_id / own.name


def store_row(store: OfficeStore, sql: str, params: tuple[Any, ...]) -> Any:
    return store.execute(sql, params).fetchone()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
