"""Real parts for the sync tests: a mosquitto broker per test, a misbehaving TCP proxy, a test CA.

The broker is the Debian ``mosquitto`` binary run on a free port with a config file written by
the test; a missing binary fails the test (it must never be skipped silently).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.ids import boot_id, new_finding_id
from edge.mqtt_config import MqttConfig
from edge.outbox import Outbox
from edge.types import Damage, Finding, FixMode, FixQuality, Position, PositionSource
from sync.office.receiver import OfficeReceiver
from sync.office.store import OfficeStore

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE_FRAMES = SHARED_DATA / "rdd2022_china_motorbike" / "sample_frames"


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

    def __init__(self, workdir: Path, *, port: int | None = None, listener_conf: str = "") -> None:
        self.workdir = workdir
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
            "persistence true\n"
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


# --- a TCP proxy that can misbehave ------------------------------------------------------


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    up_bytes: int = 0
    cut_at: int | None = None  # cut after this many client→broker bytes
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


class TcpProxy:
    """Forwards 127.0.0.1:port to a target port, and on demand:

    - ``blackhole()``: keeps every TCP connection open but forwards nothing either way, so the
      client sees a half-open link (its writes succeed, no answer ever comes);
    - ``drop_after(n)``: forwards n more client→broker bytes on the current connections, then
      cuts them, typically in the middle of a PUBLISH packet;
    - ``cut_next_connections([n1, n2, …])``: the next connections are cut after n1, n2, …
      bytes each, so that reconnects cannot outrun the test.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self._forwarding = True
        self._next_cuts: list[int] = []
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._stopping = False
        self.accepted = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
        self._thread.start()

    def blackhole(self) -> None:
        self._forwarding = False

    def resume(self) -> None:
        self._forwarding = True

    def drop_after(self, n_bytes: int) -> None:
        with self._lock:
            for pair in self._pairs:
                pair.up_bytes, pair.cut_at = 0, n_bytes

    def cut_next_connections(self, byte_counts: list[int]) -> None:
        with self._lock:
            self._next_cuts = list(byte_counts)

    def stop(self) -> None:
        self._stopping = True
        self._thread.join(timeout=2)
        self._server.close()
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.close()

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                if self._next_cuts:
                    pair.cut_at = self._next_cuts.pop(0)
                self._pairs.append(pair)
                self.accepted += 1
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(pair, src, dst, up), daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not self._forwarding:
                    continue  # swallowed: the link looks alive and answers nothing
                if upward:
                    with self._lock:
                        limit = pair.cut_at
                        pair.up_bytes += len(data)
                        cut = limit is not None and pair.up_bytes >= limit
                        if cut:
                            data = data[: len(data) - (pair.up_bytes - limit)]
                            self.dropped += 1
                    if cut:
                        if data:
                            dst.sendall(data)
                        break
                dst.sendall(data)
        except OSError:
            pass
        pair.close()


# --- a throw-away certificate authority --------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]  # common name → (cert, key)


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl CLI is not installed: the TLS tests need it to make a test CA")
    subprocess.run([openssl, *args], cwd=cwd, check=True, capture_output=True)


def make_pki(workdir: Path, client_names: tuple[str, ...]) -> Pki:
    """A CA, a server certificate for localhost/127.0.0.1 and one client certificate per name."""
    workdir.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=roadpatrol test CA", cwd=workdir)  # fmt: skip
    (workdir / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def issue(stem: str, cn: str, ext: tuple[str, ...] = ()) -> tuple[Path, Path]:
        _openssl("req", *ec, "-keyout", f"{stem}.key", "-out", f"{stem}.csr",
                 "-subj", f"/CN={cn}", cwd=workdir)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{stem}.crt", "-days", "2", *ext,
                 cwd=workdir)  # fmt: skip
        return workdir / f"{stem}.crt", workdir / f"{stem}.key"

    server_cert, server_key = issue("server", "localhost", ("-extfile", "server.ext"))
    clients = {name: issue(f"client-{i}", name) for i, name in enumerate(client_names)}
    return Pki(workdir / "ca.crt", server_cert, server_key, clients)


# --- findings, outboxes and an office for the tests ----------------------------------------


def road_jpegs(count: int, *, side_px: int | None = None, quality: int = 80) -> list[bytes]:
    """Real road frames from the shared data, re-encoded (smaller when ``side_px`` is given)."""
    import cv2

    paths = sorted(SAMPLE_FRAMES.glob("*.jpg"))
    if not paths:
        pytest.fail(f"no sample frames in {SAMPLE_FRAMES}")
    out = []
    for path in paths[:count]:
        image = cv2.imread(str(path))
        assert image is not None, path
        if side_px is not None:
            image = cv2.resize(image, (side_px, side_px), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        out.append(buf.tobytes())
    return out


def make_finding(
    vehicle_id: str,
    seq: int,
    *,
    grade: int,
    lat_deg: float | None = 35.6,
    lon_deg: float | None = 140.1,
    type_code: str | None = None,
    captured_at_utc: datetime | None = None,
) -> Finding:
    type_code = type_code or {0: "D00", 1: "D00", 2: "D20", 3: "D40"}[grade]
    position = None
    if lat_deg is not None and lon_deg is not None:
        position = Position(
            lat_deg=lat_deg,
            lon_deg=lon_deg,
            source=PositionSource.INTERPOLATED,
            fix_age_s=0.2,
            fix_mode=FixMode.FIX_3D,
            fix_quality=FixQuality.GPS,
            hdop=0.9,
            speed_mps=8.5,
            heading_deg=90.0,
        )
    return Finding(
        id=new_finding_id(),
        vehicle_id=vehicle_id,
        boot_id=boot_id(),
        seq=seq,
        captured_at_utc=captured_at_utc or datetime.now(UTC),
        position=position,
        grade=grade,
        damages=(Damage(type_code, 0.8, (0.1, 0.2, 0.4, 0.5), grade),),
        model_id="roadpatrol-test-1.0.0",
        distance_m=12.5 * seq,
    )


def open_outbox(data_dir: Path) -> Outbox:
    return Outbox.open(data_dir, image_cap_bytes=1 << 40, min_free_bytes=0)


def fill_outbox(
    data_dir: Path,
    vehicle_id: str,
    count: int,
    jpegs: list[bytes],
    *,
    grades: tuple[int, ...] = (1, 2, 3, 1, 2),
    image_every: int = 1,
) -> list[Finding]:
    """``count`` findings (each ``image_every``-th with an image), spread along a road."""
    findings = []
    with open_outbox(data_dir) as outbox:
        for i in range(count):
            f = make_finding(vehicle_id, i, grade=grades[i % len(grades)], lat_deg=35.6 + i * 1e-4)
            jpeg = jpegs[i % len(jpegs)] if jpegs and i % image_every == 0 else None
            assert outbox.add(f, jpeg)
            findings.append(f)
    return findings


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


class Office:
    """An office receiver in this process, storing into a temporary database."""

    def __init__(self, workdir: Path, cfg: MqttConfig, client_id: str = "office-test") -> None:
        self.store = OfficeStore(workdir / "office.sqlite3", workdir / "images")
        self.receiver = OfficeReceiver(cfg, self.store, client_id=client_id)

    def __enter__(self) -> Office:
        self.receiver.start()
        assert self.receiver.wait_connected(10), "office receiver did not connect"
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.stop()
        self.store.close()


class Collector:
    """A plain paho subscriber that records every message in arrival order."""

    def __init__(self, port: int, topic: str = "roadpatrol/v1/#") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, dict[str, object], bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"collector-{port}", protocol=mqtt.MQTTv5
        )
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._subscribed.wait(10), "collector did not subscribe"

    def _on_message(self, client: object, userdata: object, msg: object) -> None:
        props = getattr(msg, "properties", None)
        meta: dict[str, object] = {
            "content_type": getattr(props, "ContentType", None),
            "user": dict(getattr(props, "UserProperty", []) or []),
        }
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), meta, bool(msg.retain)))  # type: ignore[attr-defined]

    def snapshot(self) -> list[tuple[str, bytes, dict[str, object], bool]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def wait_until_office_subscribed(port: int, db: Path, timeout_s: float = 30) -> None:
    """Publish a probe status until an office receiver (another process) has stored it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from sync.payloads import status_payload

    probe = status_payload(
        vehicle_id="probe", boot_id="b", seq=1, online=True, snapshot=None, queue_depth=0
    )
    raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe", protocol=mqtt.MQTTv5)
    raw.connect("127.0.0.1", port)
    raw.loop_start()

    def stored() -> bool:
        raw.publish("roadpatrol/v1/probe/status", probe, qos=1).wait_for_publish(5)
        if not db.exists():
            return False
        try:
            store = OfficeStore(db, None, read_only=True)
        except Exception:
            return False
        try:
            return bool(store.query("SELECT 1 FROM vehicle_status WHERE vehicle_id='probe'"))
        except Exception:
            return False
        finally:
            store.close()

    try:
        assert wait_until(stored, timeout_s, interval_s=0.3), "office receiver never subscribed"
    finally:
        raw.disconnect()
        raw.loop_stop()
