"""The link as the screen sees it, without a broker: state transitions of ``LinkTracker`` on a
hand-set UTC clock, the one-word reason for each error text the publisher writes, and the
reconnect backoff's bounds."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sync.link
from edge.backoff import Backoff
from sync.link import LinkTracker, utc_now
from sync.link_reason import link_reason

T = "2026-05-01T08:{:02d}:00.000000Z".format


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reading of the link's UTC clock is the next minute: T(0), T(1), …"""
    minutes = iter(range(60))
    monkeypatch.setattr(sync.link, "utc_now", lambda: T(next(minutes)))


def test_a_new_link_is_offline_since_it_was_made(ticks: None) -> None:
    link = LinkTracker(enabled=True).snapshot()
    assert (link.enabled, link.connected, link.offline_since_utc) == (True, False, T(0))
    assert (link.last_error, link.last_reason, link.last_acked_id) == (None, None, None)


def test_offline_since_is_the_first_failure_after_being_connected(ticks: None) -> None:
    tracker = LinkTracker(enabled=True)
    tracker.set(connected=True, error=None)
    up = tracker.snapshot()
    assert up.connected and up.offline_since_utc is None and up.last_error is None
    tracker.set(connected=False, error="connection lost: The connection was lost.")
    down = tracker.snapshot()
    assert not down.connected and down.offline_since_utc == T(1)
    assert down.last_reason == "lost"
    # Retries fail for other reasons: the screen keeps saying since when, with the new reason.
    tracker.set(connected=False, error="cannot connect to h:1883: [Errno 111] Connection refused")
    tracker.set(connected=False, error="cannot connect to h:1883: timed out")
    still = tracker.snapshot()
    assert still.offline_since_utc == T(1)
    assert (still.last_error, still.last_reason) == (
        "cannot connect to h:1883: timed out",
        "timeout",
    )
    tracker.set(connected=True, error=None)
    tracker.set(connected=False, error="stopped")
    assert tracker.snapshot().offline_since_utc == T(2), "a new outage, a new time"


def test_never_connected_stays_offline_since_the_start(ticks: None) -> None:
    tracker = LinkTracker(enabled=True)
    for _ in range(3):
        tracker.set(
            connected=False, error="cannot connect to h:1883: [Errno 111] Connection refused"
        )
    assert tracker.snapshot().offline_since_utc == T(0)


def test_a_refusal_while_connected_shows_without_taking_the_link_down(ticks: None) -> None:
    tracker = LinkTracker(enabled=True)
    tracker.set(connected=True, error=None)
    tracker.set(connected=True, error="broker refused finding x: Not authorized (0x87)")
    link = tracker.snapshot()
    assert link.connected and link.offline_since_utc is None
    assert link.last_reason == "not_authorised"
    tracker.set(connected=True, error=None)
    assert tracker.snapshot().last_error is None and tracker.snapshot().last_reason is None


def test_the_last_acked_id_survives_outages_and_snapshots_never_change(
    ticks: None,
) -> None:
    tracker = LinkTracker(enabled=True)
    tracker.set(connected=True, error=None)
    tracker.acked("finding-1")
    held = tracker.snapshot()
    tracker.set(connected=False, error="connection lost: broken pipe")
    tracker.acked("finding-2")
    assert tracker.snapshot().last_acked_id == "finding-2"
    assert not tracker.snapshot().connected, "an ack does not change the connection state"
    tracker.set(connected=True, error=None)
    assert tracker.snapshot().last_acked_id == "finding-2"
    assert held.connected and held.last_acked_id == "finding-1" and held.last_error is None


def test_a_disabled_link_says_so_whatever_happens(ticks: None) -> None:
    tracker = LinkTracker(enabled=False)
    tracker.set(connected=True, error=None)
    tracker.set(connected=False, error="stopped")
    assert tracker.snapshot().enabled is False


def test_utc_now_is_the_wire_format() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", utc_now())


# --- the one-word reason --------------------------------------------------------------------

# The texts the publisher writes (sync/publisher.py, sync/acks.py, sync/mqtt_client.py).
REASONS = [
    ("cannot connect to 127.0.0.1:1883: [Errno 111] Connection refused", "refused"),
    ("cannot connect to ::1:1883: [Errno 111] Connection refused", "refused"),
    ("broker refused the connection: Not authorized (0x87)", "not_authorised"),
    ("broker refused the connection: Bad user name or password (0x86)", "not_authorised"),
    ("broker refused finding 0190f0e1-aaaa-7bbb-8ccc-0123456789ab: Not authorized (0x87)",
     "not_authorised"),
    ("cannot connect to office.example:8883: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
     "verify failed: unable to get local issuer certificate (_ssl.c:1006)", "tls"),
    ("cannot connect to office.example:8883: [SSL: WRONG_VERSION_NUMBER] wrong version number",
     "tls"),
    ("cannot connect to office.example:8883: timed out", "timeout"),
    ("no PUBACK for 21 s: link half-open, reconnecting", "timeout"),
    ("cannot connect to nowhere.invalid:1883: [Errno -2] Name or service not known", "unreachable"),
    ("cannot connect to 10.9.9.9:1883: [Errno 113] No route to host", "unreachable"),
    ("cannot connect to 10.9.9.9:1883: [Errno 101] Network is unreachable", "unreachable"),
    ("connection lost: The connection was lost.", "lost"),
    ("connection closed: Unspecified error (0x80)", "lost"),
    ("connection lost: [Errno 32] Broken pipe", "lost"),
    ("mqtt.tls.ca_file: /etc/roadpatrol/ca.pem is not a readable file", "config"),
    ("mqtt.password_file /etc/roadpatrol/mqtt.pw: No such file or directory", "config"),
    ("mqtt.password_env: $RP_MQTT_PW is not set", "config"),
    ("publisher error: RuntimeError('boom')", "other"),
    ("broker takes 10 in flight; reconnecting", "other"),
]  # fmt: skip


@pytest.mark.parametrize(("error", "reason"), REASONS)
def test_each_publisher_error_has_its_reason(error: str, reason: str) -> None:
    assert link_reason(error) == reason


def test_no_error_is_no_reason() -> None:
    assert link_reason(None) is None and link_reason("") is None


def test_the_first_cause_is_the_one_shown() -> None:
    error = (
        "broker refused image 0190f0e1-aaaa-7bbb-8ccc-0123456789ab: Not authorized (0x87); "
        "then connection lost: The connection was lost."
    )
    assert link_reason(error) == "not_authorised"
    assert link_reason("stopped; then broker refused the connection: Not authorized") == "other"


def test_no_connack_in_time_is_a_timeout() -> None:
    """The publisher's own words when a broker takes the TCP connection but never answers
    CONNECT (an overloaded broker, a TLS port spoken to in plain MQTT): "timed out"."""
    assert link_reason("no CONNACK within 10 s") == "timeout"


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("tls.office.example", "refused"),
        ("mqtt-ssl.city.example", "refused"),
        ("certificate-lab.example", "refused"),
    ],
)
def test_the_broker_host_name_does_not_decide_the_reason(host: str, reason: str) -> None:
    """A broker called tls.office.example that refuses TCP is refused, not a TLS failure."""
    assert link_reason(f"cannot connect to {host}:8883: [Errno 111] Connection refused") == reason
    assert link_reason(f"cannot connect to {host}:8883: timed out") == "timeout"


# --- the reconnect backoff ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    min_s=st.floats(0.01, 30.0),
    spread=st.floats(1.0, 1000.0),
    draws=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=40),
)
def test_each_delay_is_between_half_and_all_of_its_capped_ceiling(
    min_s: float, spread: float, draws: list[float]
) -> None:
    max_s = min_s * spread
    values = iter(draws)
    backoff = Backoff(min_s, max_s, rand=lambda: next(values))
    for failures in range(len(draws)):
        ceiling = min(max_s, min_s * 2.0**failures)
        delay = backoff.next_delay_s()
        assert ceiling / 2 <= delay <= ceiling
        assert delay <= max_s
        assert backoff.failures == failures + 1


def test_a_long_outage_stays_at_the_cap_and_a_success_starts_again() -> None:
    backoff = Backoff(0.5, 60.0, rand=random.Random(7).random)
    delays = [backoff.next_delay_s() for _ in range(10_000)]  # no overflow after 2**10000
    assert max(delays) <= 60.0 and min(delays[-100:]) >= 30.0
    backoff.reset()
    assert backoff.failures == 0 and 0.25 <= backoff.next_delay_s() <= 0.5


def test_min_equal_to_max_is_a_fixed_jittered_delay() -> None:
    backoff = Backoff(2.0, 2.0, rand=lambda: 0.0)
    assert [backoff.next_delay_s() for _ in range(4)] == [1.0, 1.0, 1.0, 1.0]
