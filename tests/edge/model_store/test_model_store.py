"""The vehicle's model store through `roadpatrol model ...`: real signed packages, real refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.grading.manifest import load_manifest
from edge.model_store import ModelStore

from support.model_data import build_small_package
from support.model_store import SHIPPED_INT8, copy_package, make_keys, nan_model_bytes


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    private, public = make_keys(root / "office")
    other_private, _ = make_keys(root / "stranger")
    return {"private": private, "public": public, "stranger": other_private}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_package(tmp_path_factory.mktemp("small"))


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _store_args(data_dir: Path, keys: dict[str, Path]) -> list[str]:
    return ["--data-dir", str(data_dir), "--trusted-key", str(keys["public"])]


def _listing(capsys: pytest.CaptureFixture[str], data_dir: Path) -> dict[str, dict[str, object]]:
    rc, out, _ = _cli(capsys, "model", "list", "--data-dir", str(data_dir), "--json")
    assert rc == 0
    return {m["model_id"]: m for m in json.loads(out)["models"]}


def test_install_activate_and_roll_back_shipped_copies(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    first = copy_package(SHIPPED_INT8, tmp_path / "a", version="1.0.1", key=keys["private"])
    second = copy_package(SHIPPED_INT8, tmp_path / "b", version="1.0.2", key=keys["private"])
    data = tmp_path / "data"
    store_args = _store_args(data, keys)
    assert _cli(capsys, "model", "install", str(first), "--activate", *store_args)[0] == 0
    assert _cli(capsys, "model", "install", str(second), *store_args)[0] == 0
    listing = _listing(capsys, data)
    assert set(listing) == {"road-damage-1.0.1", "road-damage-1.0.2"}
    assert listing["road-damage-1.0.1"]["active"] and not listing["road-damage-1.0.2"]["active"]

    assert _cli(capsys, "model", "activate", "road-damage-1.0.2", *store_args)[0] == 0
    listing = _listing(capsys, data)
    assert listing["road-damage-1.0.2"]["active"] and listing["road-damage-1.0.1"]["previous"]

    rc, out, _ = _cli(capsys, "model", "rollback", *store_args)
    assert rc == 0 and "road-damage-1.0.1" in out
    store = ModelStore(data / "models", (keys["public"],))
    assert store.active_id() == "road-damage-1.0.1"
    # The installed copy is byte-identical, so its signature still holds.
    assert store.verify_installed("road-damage-1.0.1").sha256 == load_manifest(first).sha256


def test_misuse_exits_2_and_unknown_model_exits_1(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = _cli(capsys, "model", "list")
    assert rc == 2 and "--data-dir" in err
    rc, _, err = _cli(capsys, "model", "activate", "nope-1.0", *_store_args(tmp_path, keys))
    assert rc == 1 and "nope-1.0 is not installed" in err
    rc, _, err = _cli(capsys, "model", "rollback", *_store_args(tmp_path, keys))
    assert rc == 1 and "no previous model" in err


def _flip_a_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


BROKEN = {
    "flipped byte": (
        lambda pkg, keys, out: copy_package(
            pkg,
            out,
            onnx_bytes=_flip_a_byte(pkg.with_suffix(".onnx").read_bytes()),
            rehash=False,
            key=keys["private"],
        ),
        "does not match the manifest's",
    ),
    "truncated file": (
        lambda pkg, keys, out: copy_package(
            pkg,
            out,
            onnx_bytes=pkg.with_suffix(".onnx").read_bytes()[:-500],
            rehash=False,
            key=keys["private"],
        ),
        "truncated or half-copied",
    ),
    "manifest with a wrong hash": (
        lambda pkg, keys, out: copy_package(pkg, out, key=keys["private"], sha256="ab" * 32),
        f"does not match the manifest's {'ab' * 32}",
    ),
    "wrong shape": (
        lambda pkg, keys, out: copy_package(
            pkg,
            out,
            key=keys["private"],
            input={**json.loads(pkg.read_text())["input"], "width": 96},
        ),
        "has shape",
    ),
    "unsigned": (lambda pkg, keys, out: copy_package(pkg, out), "package is unsigned"),
    "signed by an unknown key": (
        lambda pkg, keys, out: copy_package(pkg, out, key=keys["stranger"]),
        "signed by an unknown key",
    ),
    "NaN outputs": (
        lambda pkg, keys, out: copy_package(
            pkg,
            out,
            onnx_bytes=nan_model_bytes(pkg.with_suffix(".onnx")),
            key=keys["private"],
        ),
        "output 'heat' has non-finite values",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BROKEN))
def test_each_broken_package_is_refused_with_its_reason_and_nothing_changes(
    case: str,
    tmp_path: Path,
    keys: dict[str, Path],
    small: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "data"
    good = copy_package(small, tmp_path / "good", version="0.0.2", key=keys["private"])
    assert (
        _cli(capsys, "model", "install", str(good), "--activate", *_store_args(data, keys))[0] == 0
    )
    pointer_before = (data / "models" / "ACTIVE").read_bytes()

    make, reason = BROKEN[case]
    broken = make(small, keys, tmp_path / "broken")
    rc, _, err = _cli(
        capsys, "model", "install", str(broken), "--activate", *_store_args(data, keys)
    )

    assert rc == 1
    assert reason in err
    assert str(broken.parent) in err  # names the file
    assert (data / "models" / "ACTIVE").read_bytes() == pointer_before
    assert set(_listing(capsys, data)) == {"small-0.0.2"}
    assert not list((data / "models").glob(".staging-*"))


def test_manifest_changed_after_signing_is_refused(
    tmp_path: Path, keys: dict[str, Path], small: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signed = copy_package(small, tmp_path / "pkg", key=keys["private"])
    raw = json.loads(signed.read_text())
    raw["classes"][0]["threshold"] = 0.01  # a tamperer lowering a threshold
    signed.write_text(json.dumps(raw))
    rc, _, err = _cli(capsys, "model", "install", str(signed), *_store_args(tmp_path / "d", keys))
    assert rc == 1 and "signature does not verify" in err


def test_keygen_refuses_to_overwrite_and_sign_writes_a_verifiable_signature(
    tmp_path: Path, keys: dict[str, Path], small: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = _cli(capsys, "model", "keygen", "--out", str(tmp_path / "k"))
    assert rc == 0 and (tmp_path / "k" / "model-signing.key").stat().st_mode & 0o077 == 0
    rc, _, err = _cli(capsys, "model", "keygen", "--out", str(tmp_path / "k"))
    assert rc == 1 and "already exists" in err

    package = copy_package(small, tmp_path / "pkg")
    rc, out, _ = _cli(
        capsys, "model", "sign", str(package), "--key", str(tmp_path / "k" / "model-signing.key")
    )
    assert rc == 0 and Path(out.strip()) == package.with_suffix(".sig")
    args = [
        "--data-dir",
        str(tmp_path / "d"),
        "--trusted-key",
        str(tmp_path / "k" / "model-signing.pub"),
    ]
    assert _cli(capsys, "model", "install", str(package), *args)[0] == 0
    # The same package is trusted by the new key only, not by the module's office key.
    rc, _, err = _cli(capsys, "model", "install", str(package), *_store_args(tmp_path / "e", keys))
    assert rc == 1 and "unknown key" in err
