"""Model packages in the data directory, one of them active.

Layout under the store root (default DATA_DIR/models)::

    packages/<name>-<version>/   the .onnx, its manifest <id>.json and signature <id>.sig
    ACTIVE                       {"active": id, "previous": id or null}
    .staging-*                   copies in progress; never read, removed on the next change

A package directory appears only by renaming a complete, fsynced, re-verified staging
directory, and ACTIVE is only ever replaced by rename after fsync, so a power cut at any moment
leaves either the old or the new state, never a mixture.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.config.loader import AppConfig
from edge.grading.manifest import (
    ModelManifest,
    ModelPackageError,
    load_manifest,
    manifest_path_for,
    verify_file,
)
from edge.model_store.signing import signature_path_for, verify_signature
from edge.model_store.verify import verify_package
from edge.model_store.versions import refuse_downgrade

POINTER_NAME = "ACTIVE"
PACKAGES_DIR = "packages"
STAGING_PREFIX = ".staging-"
LOCK_NAME = ".lock"


@dataclass(frozen=True, slots=True)
class StoreEntry:
    model_id: str
    manifest_path: Path
    precision: str
    file_bytes: int
    active: bool
    previous: bool


@dataclass(frozen=True, slots=True)
class InstallResult:
    model_id: str
    already_installed: bool
    activated: bool
    activate_on_arrival: bool  # what the package's signed manifest asks for


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ModelStore:
    """Install, activate and roll back verified packages; safe against kill -9 and power cuts."""

    def __init__(self, root: Path, trusted_keys: tuple[Path, ...] = ()):
        self.root = root
        self.trusted_keys = trusted_keys
        self.packages_dir = root / PACKAGES_DIR
        self.pointer_path = root / POINTER_NAME

    @classmethod
    def from_config(cls, config: AppConfig) -> ModelStore:
        root = config.model.store_dir or config.vehicle.data_dir / "models"
        return cls(root, config.model.trusted_keys)

    # ---- reading (never changes anything: the recorder calls these) ----

    def _pointer(self) -> dict[str, str | None]:
        try:
            raw = json.loads(self.pointer_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"active": None, "previous": None}
        except (OSError, ValueError) as exc:
            raise ModelPackageError(f"{self.pointer_path}: unreadable pointer ({exc})") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("active"), str):
            raise ModelPackageError(f"{self.pointer_path}: pointer has no 'active' model id")
        previous = raw.get("previous")
        return {
            "active": raw["active"],
            "previous": previous if isinstance(previous, str) else None,
        }

    def active_id(self) -> str | None:
        return self._pointer()["active"]

    def previous_id(self) -> str | None:
        return self._pointer()["previous"]

    def manifest_path(self, model_id: str) -> Path:
        return self.packages_dir / model_id / f"{model_id}.json"

    def active_manifest(self) -> Path | None:
        """The active package's manifest, or None when nothing was ever activated here."""
        active = self.active_id()
        return None if active is None else self.manifest_path(active)

    def installed_ids(self) -> list[str]:
        if not self.packages_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.packages_dir.iterdir()
            if p.is_dir() and self.manifest_path(p.name).is_file()
        )

    def entries(self) -> list[StoreEntry]:
        pointer = self._pointer()
        result = []
        for model_id in self.installed_ids():
            manifest = load_manifest(self.manifest_path(model_id))
            result.append(
                StoreEntry(
                    model_id=model_id,
                    manifest_path=self.manifest_path(model_id),
                    precision=manifest.precision,
                    file_bytes=manifest.file_bytes,
                    active=model_id == pointer["active"],
                    previous=model_id == pointer["previous"],
                )
            )
        return result

    def verify_installed(self, model_id: str) -> ModelManifest:
        """Hash, size and signature of an installed package (no onnxruntime load)."""
        path = self.manifest_path(model_id)
        if not path.is_file():
            installed = ", ".join(self.installed_ids()) or "none"
            raise ModelPackageError(f"{path}: {model_id} is not installed (installed: {installed})")
        manifest = load_manifest(path)
        verify_file(manifest, path)
        verify_signature(path, self.trusted_keys)
        return manifest

    # ---- changing (one process at a time, under the store's lock) ----

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.packages_dir.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_NAME).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._remove_leftovers()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _remove_leftovers(self) -> None:
        """Staging copies and pointer temp files left by a process killed mid-change."""
        for path in self.root.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)
        self.root.joinpath(f".{POINTER_NAME}.tmp").unlink(missing_ok=True)

    def install(
        self,
        package: Path,
        *,
        activate: bool = False,
        only_if_manifest_says: bool = False,
        allow_downgrade: bool = False,
    ) -> InstallResult:
        """Verify ``package`` completely, copy it in, and optionally make it active.

        ``only_if_manifest_says``: for a pushed package, whose signed manifest decides: it is
        activated only when ``activate`` and its ``activate_on_arrival`` are both true, and
        only when it is new to this store (a retained push delivered again must not undo a
        local rollback). A version older than the newest of its name installed here is
        refused unless ``allow_downgrade`` (a technician's local decision; a push never).
        """
        source_manifest_path = manifest_path_for(package)
        manifest = verify_package(source_manifest_path, self.trusted_keys)
        if Path(manifest.file).name != manifest.file:
            raise ModelPackageError(
                f"{source_manifest_path}: file {manifest.file!r} must be a plain file name"
            )
        model_id = manifest.model_id
        if only_if_manifest_says:
            activate = activate and manifest.activate_on_arrival
        with self._locked():
            target = self.packages_dir / model_id
            already = target.exists()
            if not allow_downgrade or only_if_manifest_says:
                refuse_downgrade(manifest, self.installed_ids(), source_manifest_path)
            activate = activate and not (already and only_if_manifest_says)
            if already:
                installed = self.verify_installed(model_id)
                if installed.sha256 != manifest.sha256:
                    raise ModelPackageError(
                        f"{source_manifest_path}: a different {model_id} is already installed "
                        f"(sha256 {installed.sha256}); give the new model a new version"
                    )
            else:
                self._copy_in(source_manifest_path, manifest, target)
            if activate:
                self._write_pointer(model_id)
        return InstallResult(
            model_id,
            already_installed=already,
            activated=activate,
            activate_on_arrival=manifest.activate_on_arrival,
        )

    def _copy_in(self, source: Path, manifest: ModelManifest, target: Path) -> None:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.root))
        try:
            model_id = manifest.model_id
            copies = {
                source.parent / manifest.file: staging / manifest.file,
                source: staging / f"{model_id}.json",  # byte for byte: the signature covers it
                signature_path_for(source): staging / f"{model_id}.sig",
            }
            for src, dst in copies.items():
                shutil.copyfile(src, dst)
                _fsync_path(dst)
            _fsync_path(staging, directory=True)
            staged_manifest = staging / f"{model_id}.json"
            verify_file(load_manifest(staged_manifest), staged_manifest)
            verify_signature(staged_manifest, self.trusted_keys)
            os.rename(staging, target)
            _fsync_path(self.packages_dir, directory=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def activate(self, model_id: str) -> str | None:
        """Make an installed package active; returns the one active before (or None)."""
        with self._locked():
            return self._write_pointer(model_id)

    def rollback(self) -> str:
        """Go back to the package that was active before the current one; returns its id."""
        with self._locked():
            previous = self._pointer()["previous"]
            if previous is None:
                raise ModelPackageError(f"{self.pointer_path}: no previous model to roll back to")
            self._write_pointer(previous)
            return previous

    def _write_pointer(self, model_id: str) -> str | None:
        self.verify_installed(model_id)
        current = self._pointer()["active"]
        if current == model_id:
            return current
        data = json.dumps({"active": model_id, "previous": current}).encode()
        tmp = self.root / f".{POINTER_NAME}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.pointer_path)
        _fsync_path(self.root, directory=True)
        return current
