"""A throwaway PostgreSQL + PostGIS cluster for the office tests, and both stores side by side.

One cluster per test session (``initdb`` in a temporary folder, a free port, the Unix socket in
that folder, no TCP), run as an unprivileged user when the tests run as root (PostgreSQL
refuses root), readiness awaited with ``pg_isready``; dropped at the end. Each test gets a fresh
database cloned from a template that already has PostGIS (``CREATE DATABASE … TEMPLATE``).

``store_db`` is parametrised over ``sqlite`` and ``postgresql``: a test that takes it runs on
both stores, with the ``--db`` value the CLI takes.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.broker import free_port

PG_BIN = Path(os.environ.get("ROADPATROL_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "roadpatrol-test"  # system user the server runs as when the tests run as root
TEMPLATE = "roadpatrol_template"


@dataclass(frozen=True)
class PgCluster:
    socket_dir: Path
    port: int

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}&port={self.port}"

    def psql(self, dbname: str, sql: str) -> str:
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            cur = conn.execute(sql)  # type: ignore[call-overload]
            return "" if cur.description is None else repr(cur.fetchall())


def _as_server_user() -> list[str]:
    """The command prefix that runs a PostgreSQL binary as a non-root user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        PG_USER], check=True)  # fmt: skip
    return ["runuser", "-u", PG_USER, "--"]


_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    if not (PG_BIN / "initdb").is_file():
        pytest.fail(f"PostgreSQL binaries not found in {PG_BIN} (.ci/run installs them)")
    root = Path(tempfile.mkdtemp(prefix="roadpatrol-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    prefix = _as_server_user()
    if prefix:
        shutil.chown(root, PG_USER)
        shutil.chown(sock, PG_USER)
    port = free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    subprocess.run([*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "--no-sync", "-E", "UTF8"], **run)  # type: ignore[call-overload]  # fmt: skip
    opts = f"-p {port} -k {sock} -c listen_addresses='' -c fsync=off -c max_connections=200"
    subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
                    "-o", opts, "-w", "-t", "60", "start"], **run)  # type: ignore[call-overload]  # fmt: skip
    try:
        subprocess.run([str(PG_BIN / "pg_isready"), "-h", str(sock), "-p", str(port), "-t", "60"],
                       **run)  # type: ignore[call-overload]  # fmt: skip
        cluster = PgCluster(sock, port)
        cluster.psql("postgres", f"CREATE DATABASE {TEMPLATE}")
        cluster.psql(TEMPLATE, "CREATE EXTENSION postgis")
        yield cluster
    finally:
        subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], check=False, capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def new_database(cluster: PgCluster) -> str:
    """A fresh, empty database (PostGIS already in it); returns its URL."""
    name = f"office_{os.getpid()}_{next(_counter)}"
    cluster.psql("postgres", f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return cluster.url(name)


def clone_database(cluster: PgCluster, url: str) -> str:
    """A copy of the database at ``url`` (nobody may be connected to it); returns its URL."""
    source = url.split("?")[0].rsplit("/", 1)[1]
    name = f"office_{os.getpid()}_{next(_counter)}"
    cluster.psql("postgres", f"CREATE DATABASE {name} TEMPLATE {source}")
    return cluster.url(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new office database's ``--db`` value, on each store in turn."""
    if request.param == "sqlite":
        return str(tmp_path / "office.sqlite3")
    return new_database(request.getfixturevalue("pg_cluster"))


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    return new_database(pg_cluster)
