"""A real mosquitto broker per test, on a free port, and the loopback client config for it.

The broker is the Debian ``mosquitto`` binary run with a config file written by the test; a
missing binary fails the test (it must never be skipped silently).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.config.mqtt import MqttConfig


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto): sync tests need it")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Broker:
    """One mosquitto process with its own config, persistence folder and log."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        listener_conf: str = "",
        persistence: bool = True,
    ) -> None:
        self.workdir = workdir
        self.persistence = persistence  # False: a restart forgets sessions and queues
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.listener_conf = listener_conf or "allow_anonymous true\n"
        self.log_path = workdir / "mosquitto.log"
        self.conf_path = workdir / "mosquitto.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _write_conf(self) -> None:
        persist = self.workdir / "persist"
        persist.mkdir(exist_ok=True)
        # Run as root, mosquitto would drop to user 'mosquitto', who cannot write in the test's
        # private temporary folder: no log and, worse, no persistence across restarts.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf_path.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"{user}"
            f"{self.listener_conf}"
            f"persistence {'true' if self.persistence else 'false'}\n"
            f"persistence_location {persist}/\n"
            # An office broker must not drop messages queued for a slow or absent receiver.
            "max_queued_messages 0\n"
            "max_queued_bytes 0\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n",
            encoding="utf-8",
        )

    def start(self, timeout_s: float = 10.0) -> None:
        assert self._proc is None or self._proc.poll() is not None, "broker already running"
        self._write_conf()
        self._proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                pytest.fail(f"mosquitto exited at start: {err}\n{self.log()}")
            if _port_open(self.port):
                return
            time.sleep(0.05)
        pytest.fail(f"mosquitto did not listen on {self.port} within {timeout_s}s\n{self.log()}")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): mosquitto saves its persistence file."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._close_pipes()

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_pipes()

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads its password and ACL files."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGHUP)

    def _close_pipes(self) -> None:
        if self._proc is not None and self._proc.stderr is not None:
            self._proc.stderr.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.kill()


def mqtt_cfg(port: int, **overrides: object) -> MqttConfig:
    """A config for loopback tests: short timeouts so failures show in seconds."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
        "puback_timeout_s": 3.0,
        "connect_timeout_s": 3.0,
        "keepalive_s": 10,
    }
    values.update(overrides)
    return MqttConfig.model_validate(values)
