"""Who a finding is (vehicle, boot, seq), read from the outbox for its image's MQTT 5 properties.

The outbox hands out pending images by finding id and path only. Findings published in this
run are remembered; for older ones (their record was acknowledged before a restart) the
finding's stored JSON is read from the outbox database, read-only.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.outbox.schema import connect_read_only

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FindingIdentity:
    vehicle_id: str
    boot_id: str
    seq: int


class FindingIdentities:
    def __init__(self, outbox_db: Path, default_vehicle_id: str, capacity: int = 4096) -> None:
        self._db_path = outbox_db
        self._default_vehicle_id = default_vehicle_id
        self._capacity = capacity
        self._cache: OrderedDict[str, FindingIdentity] = OrderedDict()
        self._conn: sqlite3.Connection | None = None

    def remember(self, finding_id: str, identity: FindingIdentity) -> None:
        self._cache[finding_id] = identity
        self._cache.move_to_end(finding_id)
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)

    def get(self, finding_id: str) -> FindingIdentity | None:
        known = self._cache.get(finding_id)
        if known is not None:
            return known
        try:
            if self._conn is None:
                self._conn = connect_read_only(self._db_path)
            row = self._conn.execute(
                "SELECT payload FROM findings WHERE id = ?", (finding_id,)
            ).fetchone()
            if row is None:
                return None
            doc = json.loads(row[0])
            return FindingIdentity(str(doc["vehicle_id"]), str(doc["boot_id"]), int(doc["seq"]))
        except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
            log.warning("cannot read finding %s from the outbox: %s", finding_id, exc)
            return None

    def get_many(self, finding_ids: Sequence[str]) -> dict[str, FindingIdentity]:
        """Identities of several findings: remembered ones, the others in one query (a query
        per image would cost a round trip each when a long backlog outgrew the memory)."""
        found: dict[str, FindingIdentity] = {}
        unknown = []
        for fid in finding_ids:
            known = self._cache.get(fid)
            if known is None:
                unknown.append(fid)
            else:
                found[fid] = known
        if not unknown:
            return found
        try:
            if self._conn is None:
                self._conn = connect_read_only(self._db_path)
            rows = self._conn.execute(
                "SELECT id, json_extract(payload, '$.vehicle_id'), "
                "json_extract(payload, '$.boot_id'), json_extract(payload, '$.seq') "
                "FROM findings WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(unknown),),
            ).fetchall()
        except sqlite3.Error:  # e.g. one malformed payload: find out which, one by one
            rows = []
        for fid, vehicle_id, boot_id, seq in rows:
            if isinstance(vehicle_id, str) and isinstance(boot_id, str) and type(seq) is int:
                found[fid] = FindingIdentity(vehicle_id, boot_id, seq)
        for fid in unknown:
            if fid not in found:
                identity = self.get(fid)
                if identity is not None:
                    found[fid] = identity
        return found

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def vehicle_id_in_outbox(outbox_db: Path) -> str | None:
    """The vehicle id of the newest finding stored in an outbox, if any."""
    try:
        conn = connect_read_only(outbox_db)
        try:
            row = conn.execute(
                "SELECT payload FROM findings ORDER BY stored_at DESC LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
        return None if row is None else str(json.loads(row[0])["vehicle_id"])
    except (sqlite3.Error, ValueError, KeyError, TypeError):
        return None
