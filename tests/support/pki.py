"""A throw-away certificate authority for the TLS tests (the ``openssl`` CLI)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


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
