"""The fixtures every test folder can ask for by name, registered once here.

Helpers that are not fixtures are imported from ``support.<module>`` where they are used
(``tests`` is on sys.path through pyproject's ``pythonpath``).
"""

from __future__ import annotations

pytest_plugins = [
    "support.broker",  # broker: a real mosquitto on a free port
    "support.pg",  # pg_cluster, pg_url, store_db: a throwaway PostgreSQL + PostGIS cluster
    "support.office_review",  # office, received, office_pair, received_pair: reviewed offices
    "support.console",  # live, client: the office console over HTTP
    "support.browser",  # page: Debian's chromium through Playwright
    "support.disk",  # small_disk: a size-limited tmpfs
    "support.tui_screen",  # utc_clock, demo_recorder: the driver's screen on the demo drive
]
