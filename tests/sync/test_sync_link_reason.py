"""Against a real mosquitto: the link says why it is down (refused, not authorised, TLS), on
the driver's screen too; the office receiver logs each reconnect attempt and its outcome."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest
from test_sync_security import _tls_broker, password_broker

from edge.config.mqtt import MqttConfig
from edge.status import LinkStatus, Status
from sync.publisher import Publisher
from tui.app import create_app
from tui.i18n import CATALOGUE

from support.broker import Broker, free_port, mqtt_cfg, wait_until
from support.collect import Office
from support.pki import make_pki
from support.sync_data import open_outbox
from support.tui_screen import FixedControl, screen_text


def _link_after_failures(tmp_path: Path, cfg: MqttConfig, vehicle: str) -> LinkStatus:
    with open_outbox(tmp_path / "data") as outbox:
        publisher = Publisher(cfg, outbox, vehicle)
        publisher.start()
        try:
            assert wait_until(lambda: publisher.counters.connect_failures >= 2, 20)
            return publisher.link_status()
        finally:
            publisher.stop()


def _screen_lines(link: LinkStatus, lang: str) -> list[str]:
    async def run() -> list[str]:
        app = create_app(FixedControl(Status(recording=True, link=link)), lang=lang)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.2)
            return screen_text(app).splitlines()

    return asyncio.run(run())


def _reason_under_link(link: LinkStatus, lang: str) -> str:
    lines = _screen_lines(link, lang)
    since = CATALOGUE[lang]["link.offline_since"].split("{time}")
    marker = since[0] if since[0] else since[1]
    at = next(i for i, line in enumerate(lines) if marker in line)
    return lines[at + 1]


def test_no_broker_listening_is_connection_refused(tmp_path: Path) -> None:
    link = _link_after_failures(tmp_path, mqtt_cfg(free_port()), "veh-R")
    assert link.last_reason == "refused", link.last_error
    assert "connection refused" in _reason_under_link(link, "en")
    assert "接続拒否" in _reason_under_link(link, "ja")


def test_wrong_password_is_not_authorised(tmp_path: Path) -> None:
    broker = password_broker(tmp_path, tmp_path / "passwd", "veh-C", "right-horse-battery")
    secret = tmp_path / "secret"
    secret.write_text("wrong-staple-9\n", encoding="utf-8")
    try:
        cfg = mqtt_cfg(broker.port, username="veh-C", password_file=secret)
        link = _link_after_failures(tmp_path, cfg, "veh-C")
    finally:
        broker.kill()
    assert link.last_reason == "not_authorised", link.last_error
    assert "not authorised" in _reason_under_link(link, "en")


def test_untrusted_broker_certificate_is_a_tls_failure(tmp_path: Path) -> None:
    broker, tls = _tls_broker(tmp_path)
    wrong = tls["veh-A"].model_copy(update={"ca_file": make_pki(tmp_path / "o", ()).ca_cert})
    broker.start()
    try:
        link = _link_after_failures(
            tmp_path, mqtt_cfg(broker.port, host="localhost", tls=wrong), "veh-A"
        )
    finally:
        broker.kill()
    assert link.last_reason == "tls", link.last_error
    assert "TLS failure" in _reason_under_link(link, "en")


def test_office_receiver_logs_each_reconnect_attempt_and_its_outcome(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sync.office.receiver")
    broker = Broker(tmp_path / "broker")
    broker.start()
    cfg = mqtt_cfg(broker.port, reconnect_min_s=0.1, reconnect_max_s=0.3)

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "sync.office.receiver"]

    failed = re.compile(r"attempt (\d+) to connect to 127\.0\.0\.1:\d+ failed: .*refused")
    try:
        with Office(tmp_path / "office", cfg) as office:
            broker.kill()
            assert wait_until(lambda: any("disconnected from broker" in m for m in lines()), 20)
            assert wait_until(lambda: len([m for m in lines() if failed.search(m)]) >= 3, 30)
            broker.start()
            assert wait_until(lambda: office.receiver.connected, 30), lines()
            said = lines()
    finally:
        broker.kill()
    attempts = [int(m.group(1)) for m in map(failed.search, said) if m]
    assert attempts[:3] == [1, 2, 3], said  # numbered, one line each
    assert any(re.search(r"reconnecting to 127\.0\.0\.1:\d+ in [\d.]+ s", m) for m in said)
    connected = [m for m in said if m.startswith("connected to")]
    assert len(connected) == 2, said
    assert re.search(rf"attempt {attempts[-1] + 1}\b", connected[1]), said
