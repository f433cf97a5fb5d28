"""Fleet replay into the office: 100 vehicles draining a shift's backlog at once.

Run: nice -n 10 python -m pytest tests/bench/test_bench_office_fleet.py -s -p no:cacheprovider

Every vehicle has its own outbox (findings with real road images, ~8 KB at 160 px) and drains it
with the real publisher (``sync.drain``, one paho client each, all 100 at the same moment)
through one mosquitto into, in the same run: 1 receiver on SQLite, 1 receiver on PostGIS, and 3
receivers in one shared group on PostGIS. Reported per setup: messages/s from the release of the
backlog until the last image is stored, the delay from that release to each finding's storage
(p50/p99: for a backlog this is queueing, the capture itself is hours older), each receiver's
peak RSS, and loss (must be 0). ``ROADPATROL_BENCH_FLEET_FINDINGS`` (default 30) findings per
vehicle; ``ROADPATROL_BENCH_FLEET_VEHICLES`` (default 100).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edge.wire.serialize import parse_utc
from sync.drain import drain
from sync.office.store_api import open_store

from support.broker import Broker, mqtt_cfg, wait_until
from support.office_fleet import Receiver
from support.pg import new_database
from support.sync_data import fill_outbox, open_outbox, road_jpegs

VEHICLES = int(os.environ.get("ROADPATROL_BENCH_FLEET_VEHICLES", "100"))
PER_VEHICLE = int(os.environ.get("ROADPATROL_BENCH_FLEET_FINDINGS", "30"))


def _replay(tmp_path: Path, pristine: Path, db: str, receivers: int) -> dict[str, object]:
    broker = Broker(tmp_path / "broker")
    broker.start()
    try:
        procs = [
            Receiver(tmp_path, broker.port, db, f"office-{i}",
                     shared_group="office" if receivers > 1 else None)
            for i in range(receivers)
        ]  # fmt: skip
        for r in procs:
            r.start()
        outboxes = tmp_path / "vehicles"
        shutil.copytree(pristine, outboxes)
        total = VEHICLES * PER_VEHICLE
        store = open_store(db, None, read_only=True)
        errors: list[BaseException] = []

        def drain_one(vehicle: str) -> None:
            try:
                with open_outbox(outboxes / vehicle) as outbox:
                    result = drain(mqtt_cfg(broker.port), outbox, vehicle, timeout_s=900)
                assert result.remaining == 0, result
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=drain_one, args=(f"veh-f{i:03d}",))
                   for i in range(VEHICLES)]  # fmt: skip
        released = datetime.now(UTC)
        t0 = time.monotonic()
        for t in threads:
            t.start()
        done = wait_until(lambda: store.counts().images >= total, 1800, interval_s=0.2)
        elapsed = time.monotonic() - t0
        for t in threads:
            t.join(600)
        counts = store.counts()
        delays = sorted(
            (parse_utc(r[0], "received_at_utc") - released).total_seconds()
            for r in store.query("SELECT received_at_utc FROM findings")
        )
        rss = [r.peak_rss_mib() for r in procs]
        for r in procs:
            r.stop()
        store.close()
    finally:
        broker.kill()
    assert done and not errors, errors
    return {
        "messages_per_s": round(2 * total / elapsed, 1),
        "elapsed_s": round(elapsed, 1),
        "delay_p50_s": round(statistics.median(delays), 2),
        "delay_p99_s": round(delays[int(0.99 * (len(delays) - 1))], 2),
        "peak_rss_mib": [round(x, 1) for x in rss],
        "lost_findings": total - counts.findings,
        "lost_images": total - counts.images,
    }


def test_fleet_replay_sqlite_vs_postgis(pg_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pristine = tmp_path / "pristine"
    jpegs = road_jpegs(8, side_px=160)
    for i in range(VEHICLES):
        fill_outbox(pristine / f"veh-f{i:03d}", f"veh-f{i:03d}", PER_VEHICLE, jpegs)
    results = {
        "sqlite x1": _replay(tmp_path / "s1", pristine, str(tmp_path / "s1.sqlite3"), 1),
        "postgis x1": _replay(tmp_path / "p1", pristine, new_database(pg_cluster), 1),
        "postgis x3": _replay(tmp_path / "p3", pristine, new_database(pg_cluster), 3),
    }
    print(f"\nfleet replay: {VEHICLES} vehicles x {PER_VEHICLE} findings + images, "
          f"{os.cpu_count()} cores")  # fmt: skip
    for name, r in results.items():
        print(f"  {name}: {r}")
    for r in results.values():
        assert (r["lost_findings"], r["lost_images"]) == (0, 0)
    ratio = results["postgis x3"]["messages_per_s"] / results["sqlite x1"]["messages_per_s"]  # type: ignore[operator]
    print(f"  postgis x3 / sqlite x1: {ratio:.2f}")
    if ratio < 1.0:
        pytest.xfail(f"3 receivers on PostGIS at {ratio:.2f}x one on SQLite on this machine")
