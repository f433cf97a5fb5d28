"""The project's metadata builds without setuptools deprecations (they become errors later)."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_metadata_builds_without_deprecations_and_with_an_spdx_licence(tmp_path: Path) -> None:
    from setuptools import build_meta

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)  # the metadata only: no packages to build
    out = tmp_path / "out"
    out.mkdir()
    here = Path.cwd()
    os.chdir(src)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dist_info = build_meta.prepare_metadata_for_build_wheel(str(out))
    finally:
        os.chdir(here)
    deprecations = [
        str(w.message).splitlines()[0]
        for w in caught
        if "Deprecat" in type(w.message).__name__ or issubclass(w.category, DeprecationWarning)
    ]
    assert not deprecations, deprecations
    metadata = (out / dist_info / "METADATA").read_text(encoding="utf-8")
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
