"""`roadpatrol sync drain` as a subprocess: its JSON, its exit codes, and kill -9 at random."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.outbox import Outbox
from edge.types import Fix, FixMode

from support.broker import Broker, free_port, mqtt_cfg, wait_until
from support.collect import Office
from support.sync_data import fill_outbox, open_outbox, road_jpegs

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

VEHICLE = "veh-drain"


def _drain_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge", "sync", "drain", *args]


def _run(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _drain_cmd(*args), capture_output=True, text=True, timeout=timeout_s, check=False
    )


def test_drain_sends_everything_and_reports_json(broker: Broker, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    findings = fill_outbox(data_dir, VEHICLE, 12, road_jpegs(3, side_px=64), image_every=2)
    with open_outbox(data_dir) as outbox:
        for i in range(3):
            fix = Fix(0, None, 35.0, 140.0 + i * 1e-4, FixMode.FIX_2D)
            outbox.add_track_point(fix)
    with Office(tmp_path / "office", mqtt_cfg(broker.port)) as office:
        done = _run("--data-dir", str(data_dir), "--broker", f"127.0.0.1:{broker.port}", "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["sent"] == 12 + 6 + 3
        assert (report["sent_findings"], report["sent_images"], report["sent_track_points"]) == (
            12, 6, 3,
        )  # fmt: skip
        assert report["remaining"] == 0
        # Exit 0 means the office has it: every finding and image receipted.
        assert (report["awaiting_receipt"], report["receipted"]) == (0, 12 + 6)
        assert isinstance(report["elapsed_s"], float) and report["elapsed_s"] > 0
        assert wait_until(lambda: office.store.counts().track_points == 3, 10)
        assert wait_until(lambda: office.store.counts().images == 6, 10)
        assert office.store.finding_ids() == {f.id for f in findings}
    with open_outbox(data_dir) as outbox:
        s = outbox.summary()
        assert (s.pending, s.pending_images, s.pending_track_points) == (0, 0, 0)


def test_drain_gives_up_after_timeout_and_keeps_the_backlog(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    fill_outbox(data_dir, VEHICLE, 4, [])
    nobody = free_port()
    done = _run(
        "--data-dir", str(data_dir), "--broker", f"127.0.0.1:{nobody}", "--timeout", "2", "--json"
    )  # fmt: skip
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["sent"] == 0 and report["remaining"] == 4
    assert 2.0 <= report["elapsed_s"] < 8.0
    assert "cannot connect" in report["last_error"]


def test_drain_reads_the_recorder_config(broker: Broker, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    findings = fill_outbox(data_dir, VEHICLE, 3, [])
    config = tmp_path / "vehicle.toml"
    config.write_text(
        f'[vehicle]\nvehicle_id = "{VEHICLE}"\ndata_dir = "{data_dir}"\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n',
        encoding="utf-8",
    )
    with Office(tmp_path / "office", mqtt_cfg(broker.port)) as office:
        done = _run("--config", str(config), "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["sent_findings"] == 3
        assert wait_until(lambda: office.store.finding_ids() == {f.id for f in findings}, 10)


def test_drain_misuse_exits_2_and_names_the_problem(tmp_path: Path) -> None:
    neither = _run()
    assert neither.returncode == 2 and "--data-dir" in neither.stderr
    bad_broker = _run("--data-dir", str(tmp_path), "--broker", "no-port-here")
    assert bad_broker.returncode == 2 and "--broker 'no-port-here'" in bad_broker.stderr
    no_outbox = _run("--data-dir", str(tmp_path / "nowhere"), "--broker", "127.0.0.1:1883",
                     "--vehicle-id", VEHICLE)  # fmt: skip
    assert no_outbox.returncode == 2 and str(tmp_path / "nowhere") in no_outbox.stderr
    config = tmp_path / "broken.toml"
    config.write_text("[mqtt]\nport = 99999\n", encoding="utf-8")
    broken = _run("--config", str(config))
    assert broken.returncode == 2 and "port" in broken.stderr and str(config) in broken.stderr


def test_kill_9_at_random_moments_and_broker_restarts_lose_nothing(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    broker.start()
    data_dir = tmp_path / "data"
    # Big enough that 12 drains killed early still leave a backlog for the last one.
    count, image_every = 6000, 3
    findings = fill_outbox(
        data_dir, VEHICLE, count, road_jpegs(8, side_px=64), image_every=image_every
    )
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    # A small window slows each drain down, so that a dozen kills land mid-drain.
    # A killed drain's records that the broker acknowledged get their receipts after it died,
    # on nobody's session: the last drain sends them again after the receipt timeout.
    args = ("--data-dir", str(data_dir), "--broker", f"127.0.0.1:{broker.port}", "--json",
            "--inflight-window", "4", "--receipt-timeout", "2")  # fmt: skip
    kills = restarts = 0

    def left(outbox: Outbox) -> int:
        s = outbox.summary()
        return s.pending + s.pending_images

    try:
        # The test holds the outbox open to watch it; each drain opens it beside the test.
        with (
            Office(tmp_path / "office", mqtt_cfg(broker.port)) as office,
            open_outbox(data_dir) as watched,
        ):
            for round_no in range(12):
                before = left(watched)
                assert before > 0, f"the backlog ran out after {kills} kills ({seed})"
                log = (tmp_path / f"drain-{round_no}.log").open("w")
                proc = subprocess.Popen(_drain_cmd(*args), stdout=log, stderr=log)
                try:
                    # Kill at a random moment once records are flowing.
                    assert wait_until(lambda b=before: left(watched) < b, 60), f"seed {seed}"
                    if round_no % 3 == 1:
                        broker.restart()  # graceful: mosquitto keeps the office's queue
                        restarts += 1
                        mid = left(watched)
                        assert wait_until(lambda m=mid: left(watched) < m, 60), f"seed {seed}"
                    time.sleep(rng.uniform(0.0, 0.1))
                    assert proc.poll() is None, f"backlog drained before kill {kills} ({seed})"
                    proc.kill()
                    kills += 1
                    print(f"round {round_no}: {before} -> {left(watched)} left", flush=True)
                finally:
                    proc.kill()
                    proc.wait()
                    log.close()
            assert left(watched) > 0, "the kills should have interrupted the drain"
            final = _run(*args, timeout_s=180)
            assert final.returncode == 0, final.stderr
            report = json.loads(final.stdout)
            assert (report["remaining"], report["awaiting_receipt"]) == (0, 0)
            assert left(watched) == 0
            waiting = watched.awaiting_receipt()
            assert (waiting.findings, waiting.images) == (0, 0), "the office confirmed it all"
            expected = {f.id for f in findings}
            images = len(range(0, count, image_every))
            assert wait_until(lambda: office.store.counts().images == images, 60), f"seed {seed}"
            assert office.store.finding_ids() == expected, f"seed {seed}"
            counts = office.store.counts()
            assert counts.findings == count  # each once, however often it was delivered
            assert counts.deliveries >= count
        assert kills >= 10 and restarts >= 3
    finally:
        broker.kill()
