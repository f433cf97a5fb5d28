"""The grader a recorder uses: the store's active package, switched between two frames."""

from __future__ import annotations

import logging
import threading
import time

from edge.config.loader import AppConfig
from edge.grading.grader import Grader
from edge.grading.manifest import ModelPackageError
from edge.model_store.shipped import default_model_package
from edge.model_store.store import ModelStore

log = logging.getLogger(__name__)

POLL_EVERY_S = 1.0  # how soon an `activate` reaches a running recorder


class ActiveModel:
    """Holds the current Grader; ``error`` is what ModelStatus.error shows.

    A new session is built completely before it replaces the old one, and the grading loop
    reads ``grader`` once per frame, so a switch falls between two frames and loses none.
    A package that fails to load leaves the current grader in place.
    """

    def __init__(self, config: AppConfig):
        self.config = config
        self.store = ModelStore.from_config(config)
        self.grader: Grader | None = None
        self.error: str | None = None
        self._lock = threading.Lock()  # one switch at a time
        self._refused_id: str | None = None
        self._next_poll = 0.0
        self._load_initial()

    def _load_initial(self) -> None:
        """The store's active package; if it has none or it fails, the configured/shipped one."""
        try:
            if self.reload():
                return
        except ModelPackageError as exc:
            self.error = str(exc)
        try:
            package = self.config.model.package or default_model_package()
            self.grader = Grader(package, threads=self.config.model.threads)
        except ModelPackageError as exc:
            self.error = str(exc)
            log.error("model refused, recording without grading: %s", exc)

    def reload(self) -> bool:
        """Switch to the store's active package if it changed; True when a switch happened."""
        with self._lock:
            active = self.store.active_id()
            current = self.grader.model_id if self.grader else None
            if active is not None and active == current and self._refused_id:
                # Activated back to what we grade with: the refusal no longer applies.
                self._refused_id, self.error = None, None
            if active is None or active in (current, self._refused_id):
                return False
            try:
                self.store.verify_installed(active)
                grader = Grader(self.store.manifest_path(active), threads=self.config.model.threads)
            except ModelPackageError as exc:
                self._refused_id = active  # not retried every poll; a new activation is
                keeping = (
                    f"still grading with {current}"
                    if current
                    else "using the configured or shipped package instead"
                )
                self.error = f"model {active} refused, {keeping}: {exc}"
                log.error("%s", self.error)
                return False
            self.grader, self._refused_id, self.error = grader, None, None
            log.info("model switched from %s to %s", current, active)
            return True

    def poll(self) -> None:
        """Called often from the status loop; looks at the store about once a second."""
        now = time.monotonic()
        if now < self._next_poll:
            return
        self._next_poll = now + POLL_EVERY_S
        try:
            self.reload()
        except ModelPackageError as exc:  # an unreadable pointer: keep grading as we are
            self.error = str(exc)
        except Exception:
            log.exception("model store check failed")
