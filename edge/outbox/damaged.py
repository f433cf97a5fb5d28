"""Reading a damaged SQLite file as far as it goes, for the salvage (edge.outbox.recover).

The table is scanned from both ends (a corrupt page stops a scan, not the other direction),
every index is scanned for the rowids (and ids) it knows, and each rowid up to the highest
seen is fetched on its own, so that a bad page costs only the rows on it. Nothing is
written: the file is opened read-only, or immutable when SQLite cannot use its WAL so.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_PROBE_SLACK = 1_000  # rowids tried past the highest the table gave
_PROBE_MAX = 10_000_000  # a garbage rowid must not make the probe run for hours


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _indexes(conn: sqlite3.Connection, table: str) -> list[tuple[str, list[str]]]:
    found = []
    try:
        names = [r[1] for r in conn.execute(f"PRAGMA index_list({table})")]
        for name in names:
            cols = [r[2] for r in conn.execute(f"PRAGMA index_info({name})") if r[2]]
            found.append((name, cols))
    except sqlite3.DatabaseError as exc:
        log.warning("salvage: cannot list the indexes of %s (%s)", table, exc)
    return found


def _scan(conn: sqlite3.Connection, sql: str, into: dict[int, tuple[Any, ...]]) -> None:
    """Collect rows keyed by their first column until the end or a damaged page."""
    try:
        for row in conn.execute(sql):
            into[row[0]] = row[1:]
    except sqlite3.DatabaseError:
        pass


def read_table(
    conn: sqlite3.Connection, table: str, cols: list[str]
) -> tuple[dict[int, tuple[Any, ...]], dict[int, str | None]]:
    """(rows read by rowid, rowids an index knows that the table did not give: their id
    when an index carries it)."""
    select = f"SELECT rowid, {', '.join(cols)} FROM {table}"
    got: dict[int, tuple[Any, ...]] = {}
    for order in ("ASC", "DESC"):
        _scan(conn, f"{select} ORDER BY rowid {order}", got)
    known: dict[int, tuple[Any, ...]] = {}
    for index, index_cols in _indexes(conn, table):
        wanted = ", ".join(["rowid", *index_cols])
        for order in ("ASC", "DESC"):
            keys = ", ".join(f"{c} {order}" for c in index_cols) or f"rowid {order}"
            sql = f"SELECT {wanted} FROM {table} INDEXED BY {index} ORDER BY {keys}"
            seen: dict[int, tuple[Any, ...]] = {}
            _scan(conn, sql, seen)  # a partial index ("no query solution") gives nothing
            for rowid, values in seen.items():
                if "id" in index_cols:
                    known[rowid] = (values[index_cols.index("id")],)
                else:
                    known.setdefault(rowid, (None,))
    # Every rowid up to the highest the table gave (rows are numbered 1, 2, … as they come),
    # and whatever else an index names: a damaged index may name absurd rowids, so those
    # are tried one by one rather than as a range.
    top = min(max(got, default=0) + _PROBE_SLACK, _PROBE_MAX)
    beyond = sorted(r for r in known if r > top)
    for rowid in itertools.chain(range(1, top + 1), beyond):
        if rowid not in got:
            _scan(conn, f"{select} WHERE rowid = {int(rowid)}", got)
    lost = {r: v[0] for r, v in known.items() if r not in got}
    return got, lost


def open_source(path: Path) -> sqlite3.Connection:
    """Read-only, with its WAL if SQLite can use it; else immutable (the main file only)."""
    last: sqlite3.Error | None = None
    for mode in ("mode=ro", "immutable=1"):
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.Error as exc:
            last = exc
    raise sqlite3.DatabaseError(f"{path}: not readable as a database ({last})")
