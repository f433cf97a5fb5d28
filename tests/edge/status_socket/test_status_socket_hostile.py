"""Local clients cannot break or abuse the recorder through its status socket (issue 16).

The attacks go to the status socket of a real `roadpatrol run` process (demo drive) and, for
the faults that need provoking, to a StatusServer on a real Unix socket in this process.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.status_socket import RemoteRecorder, StatusServer, socket_path_for

from support.tui_screen import FixedControl, fixed_status, wait_until
from support.vehicle import looping_demo_config

EXE = str(Path(sys.executable).with_name("roadpatrol"))
NESTED = b'{"cmd":' + b"[" * 1100 + b"\n"


def _raw(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10.0)
    sock.connect(str(path))
    return sock


def _replies(sock: socket.socket, count: int) -> list[dict[str, object]]:
    """The next ``count`` replies (statuses and hello skipped), or fewer if it hangs up."""
    lines, found = sock.makefile("rb"), []
    while len(found) < count and (raw := lines.readline()):
        msg = json.loads(raw)
        if msg["type"] == "reply":
            found.append(msg)
    return found


def _manual_findings(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT payload FROM findings").fetchall()
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()
    return sum(1 for (p,) in rows if json.loads(p)["origin"] == "manual")


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Path]:
    """A real recorder process on the demo drive; yields its data directory."""
    data_dir = tmp_path / "data"
    cfg = looping_demo_config(
        tmp_path / "vehicle.toml",
        vehicle_id="hostile-1",
        data_dir=data_dir,
        fps=2.0,
        extra="[mqtt]\nenabled = false",
    )
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [EXE, "run", "--headless", "--config", str(cfg)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        sock = socket_path_for(data_dir)
        assert wait_until(lambda: sock.exists() or proc.poll() is not None, 60.0)
        assert proc.poll() is None, log.read_text()
        yield data_dir
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.slow
def test_deeply_nested_json_is_refused_and_the_socket_keeps_serving(recorder: Path) -> None:
    path = socket_path_for(recorder)
    with _raw(path) as attacker:
        attacker.sendall(NESTED)
        (reply,) = _replies(attacker, 1)
        assert reply["ok"] is False and "longer than" in str(reply["cmd"])
        # Short enough to parse, too deep to be a command.
        attacker.sendall(b'{"cmd": "mark", "req": [[[[[[[[1]]]]]]]]}\n')
        (reply,) = _replies(attacker, 1)
        assert reply["ok"] is False and "nested" in str(reply["cmd"])
    with RemoteRecorder(path).connect(timeout_s=10.0) as screen:
        assert screen.status().vehicle_id == "hostile-1"
        assert screen.mark_manual() is not None
    assert _manual_findings(recorder / "outbox.sqlite3") == 1


@pytest.mark.slow
def test_a_script_writing_mark_800_times_gets_a_drivers_share(recorder: Path) -> None:
    path = socket_path_for(recorder)
    with _raw(path) as script:
        script.sendall(b"mark\n" * 800)
        replies = _replies(script, 800)
    assert len(replies) == 800  # each answered, in turn, without dropping the script
    stored = [r for r in replies if r["ok"]]
    refused = [r for r in replies if not r["ok"]]
    assert len(stored) == 3
    assert refused and all("too many marks" in str(r["error"]) for r in refused)
    assert _manual_findings(recorder / "outbox.sqlite3") == 3
    images = list((recorder / "images").rglob("*.jpg"))
    assert sum(p.stat().st_size for p in images) < 20_000_000
    # The next client (the driver's screen) is not punished for the script's marks for long.
    with RemoteRecorder(path).connect(timeout_s=10.0) as screen:
        assert wait_until(lambda: screen.mark_manual() is not None, 10.0, interval_s=0.5)
    assert _manual_findings(recorder / "outbox.sqlite3") == 4


@pytest.mark.slow
def test_idle_connections_do_not_lock_the_screen_out(recorder: Path) -> None:
    path = socket_path_for(recorder)
    idle = [_raw(path) for _ in range(8)]
    try:
        with RemoteRecorder(path).connect(timeout_s=10.0) as screen:
            assert screen.status().vehicle_id == "hostile-1"
            # More idle ones keep coming: the screen pings, so they push each other out.
            idle += [_raw(path) for _ in range(8)]
            assert screen.mark_manual() is not None
            assert screen.connects == 1
            assert screen.connected
    finally:
        for sock in idle:
            sock.close()


def test_a_flooding_client_that_never_reads_does_not_block_the_screen(tmp_path: Path) -> None:
    control = FixedControl(fixed_status())
    with (
        StatusServer(control, tmp_path / "s.sock", rate_hz=20.0) as srv,
        _raw(srv.path) as script,
        RemoteRecorder(srv.path).connect() as screen,
    ):
        script.setblocking(False)
        sent = 0
        with contextlib.suppress(BlockingIOError):
            while sent < 2_000_000:  # until its socket is full: the server stopped reading it
                sent += script.send(b"status\n" * 1000)
        assert sent < 2_000_000, "the server read a client that never takes its replies"
        assert screen.mark_manual() == "manual-1"
        frames = screen.status()
        assert wait_until(lambda: screen.status() is not frames, 5.0)
        assert screen.connected and srv.client_count == 2


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StatusServer]:
    srv = StatusServer(FixedControl(fixed_status()), tmp_path / "s.sock", rate_hz=20.0)
    srv.start()
    yield srv
    srv.stop()


def test_a_burst_of_idle_connects_within_one_ping_cannot_push_the_screen_out(
    server: StatusServer,
) -> None:
    with RemoteRecorder(server.path).connect(timeout_s=5.0) as screen:
        assert screen.mark_manual() == "manual-1"  # answered: the server has heard the screen
        # A full house of silent connects at once, all newer than the screen's last word: by
        # silence alone the screen would be the longest silent when the eighth one comes.
        idle = [_raw(server.path) for _ in range(8)]
        try:
            assert wait_until(lambda: server.evicted_clients == 1, 5.0)
            assert screen.mark_manual() == "manual-2"
            assert screen.connects == 1
            assert server.client_count == 8
        finally:
            for sock in idle:
                sock.close()


def test_a_client_whose_request_fails_is_dropped_alone(tmp_path: Path) -> None:
    class Odd(FixedControl):
        """A bug's shape: a finding id the reply cannot encode (it fails outside the command)."""

        def mark_manual(self) -> str | None:
            super().mark_manual()
            return {1, 2}  # type: ignore[return-value]

    with (
        StatusServer(Odd(fixed_status()), tmp_path / "s.sock", rate_hz=20.0) as srv,
        RemoteRecorder(srv.path).connect() as screen,
    ):
        with _raw(srv.path) as victim:
            victim.sendall(b"mark\n")
            assert _replies(victim, 1) == []  # hung up on, nothing half-sent
        assert wait_until(lambda: srv.client_count == 1, 5.0)
        assert srv.restarts == 0
        screen.set_paused(True)  # the other client is still served
        assert screen.status().vehicle_id == "chiba-07"


def test_a_server_loop_that_dies_is_restarted(server: StatusServer) -> None:
    real = server._broadcast
    calls = {"n": 0}

    def dies_once() -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("provoked: the loop itself fails")
        real()

    server._broadcast = dies_once  # type: ignore[method-assign]
    assert wait_until(lambda: server.restarts == 1, 5.0)
    with RemoteRecorder(server.path).connect(timeout_s=5.0) as screen:
        assert screen.status().vehicle_id == "chiba-07"
        assert screen.mark_manual() == "manual-1"
