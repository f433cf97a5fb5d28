"""TLS with a test CA, an ACL per vehicle, and a broker refusing credentials: refused work is
reported and retried, never lost."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.config.mqtt import MqttTlsConfig
from sync.publisher import Publisher

from support import REPO
from support.broker import Broker, mqtt_cfg, wait_until
from support.collect import Office
from support.pki import make_pki
from support.sync_data import fill_outbox, open_outbox, road_jpegs

OFFICE_BROKER_ACL = REPO / "sync" / "deploy" / "mosquitto.acl"


def _tls_broker(tmp_path: Path) -> tuple[Broker, dict[str, MqttTlsConfig]]:
    pki = make_pki(tmp_path / "pki", ("veh-A", "office"))
    # The certificate's CN is the user name: a vehicle may write only under its own id, and
    # never its receipts. The ACL is the one sync/README.md documents.
    acl = OFFICE_BROKER_ACL
    broker = Broker(
        tmp_path / "broker",
        listener_conf=(
            f"cafile {pki.ca_cert}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
            "require_certificate true\nuse_identity_as_username true\n"
            f"allow_anonymous false\nacl_file {acl}\n"
        ),
    )
    tls = {
        name: MqttTlsConfig(enabled=True, ca_file=pki.ca_cert, certfile=cert, keyfile=key)
        for name, (cert, key) in pki.clients.items()
    }
    return broker, tls


@pytest.mark.slow
def test_tls_and_acl_deliver_own_topic_and_report_refused_foreign_topic(tmp_path: Path) -> None:
    broker, tls = _tls_broker(tmp_path)
    broker.start()
    try:
        office_cfg = mqtt_cfg(broker.port, host="localhost", tls=tls["office"])
        own = fill_outbox(tmp_path / "own", "veh-A", 8, road_jpegs(2, side_px=64))
        foreign = fill_outbox(tmp_path / "foreign", "veh-B", 4, [])
        with Office(tmp_path / "office", office_cfg) as office:
            with open_outbox(tmp_path / "own") as outbox:
                cfg = mqtt_cfg(broker.port, host="localhost", tls=tls["veh-A"])
                publisher = Publisher(cfg, outbox, "veh-A")
                publisher.start()
                try:
                    assert wait_until(lambda: outbox.summary().pending_images == 0, 20)
                finally:
                    publisher.stop()
            assert wait_until(lambda: office.store.counts().images == 8, 10)
            assert office.store.finding_ids() == {f.id for f in own}

            # veh-A's certificate, but findings of veh-B: the broker says "not authorized".
            with open_outbox(tmp_path / "foreign") as outbox:
                cfg = mqtt_cfg(broker.port, host="localhost", tls=tls["veh-A"])
                publisher = Publisher(cfg, outbox, "veh-B")
                publisher.start()
                try:
                    assert wait_until(lambda: publisher.counters.refused >= 1, 10)
                    link = publisher.link_status()
                finally:
                    publisher.stop()
                assert outbox.summary().pending == len(foreign), "refused records stay"
            assert "Not authorized" in (link.last_error or ""), link.last_error
            assert publisher.counters.findings_sent == 0
            assert office.store.finding_ids() == {f.id for f in own}
    finally:
        broker.kill()


def test_untrusted_broker_certificate_is_refused_and_reported(tmp_path: Path) -> None:
    broker, tls = _tls_broker(tmp_path)
    other_ca = make_pki(tmp_path / "other-pki", ()).ca_cert
    broker.start()
    try:
        fill_outbox(tmp_path / "data", "veh-A", 2, [])
        wrong = tls["veh-A"].model_copy(update={"ca_file": other_ca})
        with open_outbox(tmp_path / "data") as outbox:
            publisher = Publisher(
                mqtt_cfg(broker.port, host="localhost", tls=wrong), outbox, "veh-A"
            )
            publisher.start()
            try:
                assert wait_until(lambda: publisher.counters.connect_failures >= 2, 10)
                link = publisher.link_status()
            finally:
                publisher.stop()
            assert outbox.summary().pending == 2
        assert not link.connected
        assert "certificate verify failed" in (link.last_error or ""), link.last_error
    finally:
        broker.kill()


def _passwd(path: Path, user: str, password: str) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.fail("mosquitto_passwd (package mosquitto) is needed for the credential tests")
    path.unlink(missing_ok=True)
    subprocess.run([tool, "-c", "-b", str(path), user, password], check=True, capture_output=True)


def password_broker(tmp_path: Path, passwd: Path, user: str, password: str) -> Broker:
    """A started broker that lets in only ``user`` with ``password`` (file ``passwd``)."""
    _passwd(passwd, user, password)
    broker = Broker(
        tmp_path / "broker", listener_conf=f"allow_anonymous false\npassword_file {passwd}\n"
    )
    broker.start()
    return broker


def test_bad_credentials_are_reported_retried_and_nothing_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    passwd = tmp_path / "passwd"
    broker = password_broker(tmp_path, passwd, "veh-C", "right-horse-battery")
    secret = tmp_path / "secret"
    secret.write_text("wrong-staple-9\n", encoding="utf-8")
    caplog.set_level(logging.DEBUG)
    try:
        findings = fill_outbox(tmp_path / "data", "veh-C", 5, [])
        cfg = mqtt_cfg(broker.port, username="veh-C", password_file=secret)
        with open_outbox(tmp_path / "data") as outbox:
            publisher = Publisher(cfg, outbox, "veh-C")
            publisher.start()
            try:
                assert wait_until(lambda: publisher.counters.connect_failures >= 2, 10)
                link = publisher.link_status()
                assert not link.connected
                # mosquitto answers a wrong password with "Not authorized" (0x87).
                error = link.last_error or ""
                assert "broker refused the connection" in error, error
                assert "Not authorized" in error or "Bad user name or password" in error, error
                assert outbox.summary().pending == 5
                # The office fixes the account; the vehicle's retries get through.
                _passwd(passwd, "veh-C", "wrong-staple-9")
                broker.reload()
                assert wait_until(lambda: outbox.summary().pending == 0, 15)
                assert publisher.link_status().connected
            finally:
                publisher.stop()
        assert publisher.counters.findings_sent == len(findings)
        assert "wrong-staple-9" not in caplog.text, "a password must never reach the logs"
    finally:
        broker.kill()
