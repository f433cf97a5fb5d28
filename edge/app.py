"""The vehicle's composition root: `roadpatrol run` (the service) and `roadpatrol demo`.

This is the one place that builds the vehicle from its parts — the recorder (edge.recording),
the status socket (edge.status_socket), the MQTT publisher and the model-update client (sync)
and the driver's screen (tui) — importing each directly, so "go to definition" follows every
piece. Only this module and `edge.cli` in edge may import sync, models and tui (the import
contract in `.ci/importlinter.ini` checks it); the recorder below sees the publisher only
through the narrow `LinkProvider` Protocol it is handed.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from edge.config.loader import AppConfig, demo_config, load_config
from edge.config.paths import absent_paths, data_dir_problem
from edge.errors import UsageError
from edge.grading.manifest import ModelPackageError
from edge.outbox import OutboxError
from edge.recording.lock import RecorderBusy, RecorderLock
from edge.recording.recorder import Recorder
from edge.status_socket.protocol import socket_path_for
from edge.status_socket.server import StatusServer
from sync import model_updates as model_update_client
from sync import service as sync_service
from tui import screen as driver_screen

log = logging.getLogger(__name__)


class Service(Protocol):
    def stop(self) -> None: ...


# What runs beside the recorder, in start order: (name, starter). A starter returns None when
# its part is switched off in the config (MQTT disabled).
SERVICES: tuple[tuple[str, Callable[[Recorder], Service | None]], ...] = (
    ("sync", sync_service.start_for_recorder),
    ("model_updates", model_update_client.start_for_recorder),
)


def _start_services(recorder: Recorder) -> list[Service]:
    started: list[Service] = []
    for name, start in SERVICES:
        try:
            running = start(recorder)
        except (ValueError, OSError) as exc:
            # A config problem (an unreadable certificate or password file): one line.
            log.error("service %s did not start: %s; recording goes on without it", name, exc)
            continue
        except Exception:
            # The recorder must keep recording even when, say, the MQTT config is unusable.
            log.exception("service %s did not start; recording goes on without it", name)
            continue
        if running is not None:
            started.append(running)
    return started


def _interactive(args: argparse.Namespace) -> bool:
    return not args.headless and sys.stdin.isatty() and sys.stdout.isatty()


def _serve(recorder: Recorder, args: argparse.Namespace, until: threading.Event) -> int:
    """Start everything around a started recorder; show the screen or wait; stop everything."""
    config = recorder.config
    server = None
    if config.screen.status_socket:
        try:
            server = StatusServer(
                recorder,
                socket_path_for(config.vehicle.data_dir),
                rate_hz=config.screen.status_rate_hz,
            )
            server.start()
        except (OSError, ValueError) as exc:
            log.warning("status socket unavailable (%s); `roadpatrol tui` cannot attach", exc)
            server = None
    services = _start_services(recorder)
    try:
        if _interactive(args):
            lang = args.lang or config.screen.lang
            chosen = None if lang == "auto" else lang
            driver_screen.run(recorder, chosen, refresh_hz=config.screen.refresh_hz)
        else:
            until.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for service in services:
            service.stop()
        if server is not None:
            server.stop()
    return 0


def _stop_on_signals(event: threading.Event) -> None:
    def handler(signum: int, frame: object) -> None:
        del signum, frame
        event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # a ConfigError is shown by edge.cli, exit 2
    if unusable := data_dir_problem(config.vehicle.data_dir):
        # Nowhere to keep a finding: starting would only lose them (or traceback).
        print(f"roadpatrol run: {unusable}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    absent = absent_paths(config)
    for problem in absent.problems:
        log.warning("%s: %s (recording goes on)", args.config, problem)
    for warning in absent.warnings:
        log.warning("%s: %s", args.config, warning)
    lock = RecorderLock(config.vehicle.data_dir)
    try:
        lock.acquire()  # before anything is opened: a second recorder touches nothing
        recorder = Recorder(config)
        for note in recorder.outbox.notes:  # a full disk, a floor fitted to it, a salvage
            print(f"roadpatrol run: {note}", file=sys.stderr)
        recorder.start()
    except (RecorderBusy, OutboxError, OSError) as exc:
        lock.release()
        print(f"roadpatrol run: {exc}", file=sys.stderr)
        return 2
    if recorder.model_error:
        what = "recording without grading" if recorder.grader is None else "grading goes on"
        print(f"roadpatrol run: {recorder.model_error} ({what})", file=sys.stderr)
    stop = threading.Event()
    if not _interactive(args):
        _stop_on_signals(stop)
    try:
        return _serve(recorder, args, stop)
    finally:
        recorder.stop()
        lock.release()


def demo_summary(recorder: Recorder, elapsed_s: float) -> dict[str, Any]:
    status = recorder.status()
    frames = status.camera.frames
    return {
        "frames": frames,
        "graded": status.model.graded,
        "findings_by_grade": {g: status.findings_by_grade.get(g, 0) for g in "0123"},
        "queued": recorder.outbox.stats().pending,
        "dropped_frames": status.camera.dropped_frames + recorder.dropped_graded,
        "elapsed_s": round(elapsed_s, 3),
        "fps": round(frames / elapsed_s, 2) if elapsed_s > 0 else 0.0,
    }


def cmd_demo(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="roadpatrol-demo-"))
    lock = RecorderLock(data_dir)
    try:
        lock.acquire()
    except (RecorderBusy, OSError) as exc:
        raise UsageError(str(exc)) from exc
    try:
        return _demo(args, data_dir)
    finally:
        lock.release()


def _demo(args: argparse.Namespace, data_dir: Path) -> int:
    config: AppConfig = demo_config(data_dir, fast=args.fast)
    if not args.json:
        logging.basicConfig(level=logging.WARNING)
    try:
        recorder = Recorder(config, lockstep=args.fast)
    except (ModelPackageError, OutboxError) as exc:
        raise UsageError(str(exc)) from exc
    if recorder.model_error:
        recorder.outbox.close()
        raise UsageError(f"the demo's model was refused: {recorder.model_error}")
    started = time.monotonic()
    recorder.start()
    ended = threading.Event()
    drive_s: list[float] = []  # the drive's own length: the screen may stay up after it

    def watch_end() -> None:
        recorder.wait_ended()
        drive_s.append(time.monotonic() - started)
        ended.set()

    threading.Thread(target=watch_end, name="demo-end", daemon=True).start()
    try:
        if _interactive(args) and not args.json:
            _serve(recorder, args, ended)
        else:
            while not ended.wait(0.2):
                pass
    except KeyboardInterrupt:
        pass
    elapsed = drive_s[0] if drive_s else time.monotonic() - started
    summary = demo_summary(recorder, elapsed)
    recorder.stop()
    if args.json:
        print(json.dumps(summary))
    else:
        by_grade = summary["findings_by_grade"]
        print(
            f"demo drive: {summary['frames']} frames, {summary['graded']} graded in "
            f"{summary['elapsed_s']:.1f} s; findings by grade 3/2/1: "
            f"{by_grade['3']}/{by_grade['2']}/{by_grade['1']} (no damage: {by_grade['0']}); "
            f"{summary['queued']} waiting in the outbox at {data_dir}"
        )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="the vehicle service: record, grade, store, sync")
    p.add_argument("--config", type=Path, required=True, help="TOML configuration file")
    p.add_argument("--headless", action="store_true", help="no screen, even on a terminal")
    p.add_argument("--lang", choices=["ja", "en"], default=None, help="screen language")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("demo", help="replay the bundled sample drive through the whole pipeline")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="outbox location (default: a new temp dir)"
    )
    p.add_argument("--fast", action="store_true", help="as fast as the pipeline can go")
    p.add_argument("--headless", action="store_true", help="no screen")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.add_argument("--lang", choices=["ja", "en"], default=None, help="screen language")
    p.set_defaults(handler=cmd_demo)
