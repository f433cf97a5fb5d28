"""Model versions in order: an older package never replaces a newer one by accident."""

from __future__ import annotations

from pathlib import Path

from packaging.version import InvalidVersion, Version

from edge.grading.manifest import ModelManifest, ModelPackageError


def package_version(text: str, where: Path) -> Version:
    """A manifest's version, ordered as PEP 440 orders it; refused when it cannot be."""
    try:
        return Version(text)
    except InvalidVersion as exc:
        raise ModelPackageError(
            f"{where}: version {text!r} cannot be ordered (use N.N.N); refused"
        ) from exc


def newest_installed(name: str, installed_ids: list[str]) -> tuple[Version, str] | None:
    """The newest installed version of ``name`` and its id (ids are ``<name>-<version>``;
    names may hold '-', so the version is what follows the name and its dash)."""
    found = []
    for model_id in installed_ids:
        version = model_id.removeprefix(f"{name}-")
        if version == model_id or not version[:1].isdigit():
            continue  # another name, e.g. road-damage-fp32 beside road-damage
        try:
            found.append((Version(version), model_id))
        except InvalidVersion:
            continue
    return max(found, default=None)


def refuse_downgrade(manifest: ModelManifest, installed_ids: list[str], where: Path) -> None:
    """Raise ModelPackageError when ``manifest`` is older than an installed package of its
    name. The same version is not a downgrade (it is "already installed")."""
    newest = newest_installed(manifest.name, installed_ids)
    if newest is None:
        return
    if package_version(manifest.version, where) < newest[0]:
        raise ModelPackageError(
            f"{where}: {manifest.model_id} is older than {newest[1]}, installed here; "
            "refused (a technician can install it with `roadpatrol model install "
            "--allow-downgrade`; a push never can)"
        )
