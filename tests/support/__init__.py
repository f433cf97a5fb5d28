"""Real parts the tests share: a mosquitto broker and its client config (broker), a misbehaving
TCP proxy (proxy), a test CA (pki), findings and outboxes with real road images (sync_data), the
receiving office (collect, office_fleet, office_review, console), PostgreSQL clusters (pg), a
headless browser (browser), and helpers for capture, GPS, outbox, privacy, model store, models,
small disks and the Textual screen. The fixtures among them reach pytest through
tests/conftest.py; everything else is imported as ``from support.<module> import ...``.
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
"""The tests folder: what a subprocess puts on sys.path to import ``support``."""
REPO = TESTS.parent
"""The checkout the tests run in."""
