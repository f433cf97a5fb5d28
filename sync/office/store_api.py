"""The office store's interface: what the receiver, review, export and graded export use.

Two implementations: ``sync.office.store.SqliteStore`` (one file, one writer: the embedded
default) and ``sync.office.pg_store.PostgresStore`` (PostgreSQL + PostGIS, a connection pool,
several receivers at once). ``open_store`` picks one from ``--db``: ``sqlite:PATH`` or a bare
path is SQLite, ``postgresql://…`` (or ``postgres://…``) is PostgreSQL.

Shared SQL (review, export, site membership) is written once with ``?`` placeholders and the
common subset of both dialects; the few places where they differ are methods here
(``group_concat``, ``has_table``, ``max_damage_score``, ``int_part``, ``serial_pk``). Rows
support ``row["name"]``, ``row[0]`` and ``dict(row)``.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class StoreError(Exception):
    """The database cannot be opened or used; the message names the file or server."""


DB_HELP = "office database: PATH or sqlite:PATH (SQLite), or postgresql://USER@HOST/DB"

# What a database failure raises, on either store: the receiver does not ack such a message.
DATABASE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, StoreError)


@dataclass(frozen=True, slots=True)
class StoreCounts:
    findings: int
    deliveries: int
    images: int
    track_points: int
    sites: int
    vehicles_online: int


class Cursor(Protocol):
    @property
    def rowcount(self) -> int:
        """Rows a write changed (sqlite3 and psycopg cursors both count them)."""
        ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class OfficeStore(Protocol):
    """One office database. Every write is idempotent on the sender's identity."""

    images_dir: Path | None
    site_radius_m: float

    @property
    def location(self) -> str:
        """The database for messages: a file path, or a URL without its password."""
        ...

    def close(self) -> None: ...

    def add_finding(self, payload: dict[str, Any]) -> bool:
        """Store a schema-valid finding payload; False when its id was already stored."""
        ...

    def join_site(
        self, fid: str, type_code: str, lat: float, lon: float, grade: int, seen: str
    ) -> int:
        """Add a sighting to the nearest site of ``type_code`` within the radius, or found
        one; returns the site's id. Call inside ``transaction()``."""
        ...

    def image_path_for(self, vehicle_id: str, finding_id: str) -> Path: ...

    def add_image(self, vehicle_id: str, finding_id: str, jpeg: bytes) -> bool:
        """Write the image file (atomically) and its row; False when it was already stored."""
        ...

    def add_track(self, vehicle_id: str, points: list[dict[str, Any]]) -> int:
        """Store schema-valid track points; returns how many were new."""
        ...

    def set_status(self, vehicle_id: str, payload: dict[str, Any]) -> None: ...

    def transaction(self) -> AbstractContextManager[None]:
        """``with store.transaction():`` the writes inside commit together or not at all."""
        ...

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Cursor:
        """One statement (``?`` placeholders); for writes, call inside ``transaction()``."""
        ...

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """All rows of one statement, by name and by index."""
        ...

    def counts(self) -> StoreCounts: ...

    def finding_ids(self) -> set[str]: ...

    def has_table(self, name: str) -> bool: ...

    def group_concat(self, expr: str, *, distinct: bool = False) -> str:
        """SQL for the comma-separated values of ``expr`` in a group (an aggregate)."""
        ...

    def max_damage_score(self, payload: str) -> str:
        """SQL for the highest ``damages[].score`` in the JSON text column ``payload``."""
        ...

    def int_part(self, expr: str) -> str:
        """SQL for ``expr`` truncated toward zero as a 64-bit integer (SQLite's CAST)."""
        ...

    def serial_pk(self) -> str:
        """The column type of an id the database numbers itself (for ``audit``)."""
        ...


def open_store(
    db: str | Path,
    images_dir: Path | None,
    *,
    site_radius_m: float = 5.0,
    read_only: bool = False,
) -> OfficeStore:
    """The store ``--db`` names: ``postgresql://…`` or ``sqlite:PATH`` / a bare path."""
    spec = str(db)
    if is_postgres(spec):
        from sync.office.pg_store import PostgresStore

        return PostgresStore(spec, images_dir, site_radius_m=site_radius_m, read_only=read_only)
    from sync.office.store import SqliteStore

    return SqliteStore(sqlite_path(spec), images_dir, site_radius_m=site_radius_m,
                       read_only=read_only)  # fmt: skip


def is_postgres(spec: str) -> bool:
    return spec.startswith(("postgresql://", "postgres://"))


def sqlite_path(spec: str) -> Path:
    return Path(spec.removeprefix("sqlite:"))
