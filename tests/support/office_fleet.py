"""`roadpatrol office receive` processes for the multi-receiver tests and the fleet benchmark."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from support.broker import wait_until


class Receiver:
    """One `roadpatrol office receive` process (in a shared group if one is named)."""

    def __init__(
        self, tmp_path: Path, port: int, db: str, client_id: str, shared_group: str | None = None
    ) -> None:
        self.cmd = [sys.executable, "-m", "edge", "office", "receive", "--broker",
                    f"127.0.0.1:{port}", "--db", db, "--images", str(tmp_path / "images"),
                    "--client-id", client_id]  # fmt: skip
        if shared_group is not None:
            self.cmd += ["--shared-group", shared_group]
        self.log_dir = tmp_path / client_id
        self.log_dir.mkdir()
        self.starts = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.starts += 1
        log = self.log_dir / f"run-{self.starts}.log"
        with open(log, "w") as err:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        assert wait_until(lambda: "connected to 127.0.0.1" in log.read_text(), 120), log.read_text()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no goodbye, unacked messages stay with the broker
        self.proc.wait(30)

    def stop(self) -> dict[str, int]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise AssertionError(f"receiver did not stop on SIGTERM:\n{self.log_tail()}") from None
        assert self.proc.returncode == 0, self.log_tail()
        return json.loads(out)

    def log_tail(self, lines: int = 40) -> str:
        log = self.log_dir / f"run-{self.starts}.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


    def peak_rss_mib(self) -> float:
        """The process's peak resident memory so far (VmHWM)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")
