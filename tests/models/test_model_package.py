"""Model packages: a real exported ONNX model, refused when its file or manifest is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.grading.grader import Grader
from edge.grading.manifest import ModelPackageError, load_manifest
from edge.grading.preprocess import preprocess

from support.model_data import RDD_TRAIN, build_small_package, real_frames

torch = pytest.importorskip("torch", reason="needs the train extra (installed by .ci/run)")


@pytest.fixture(scope="module")
def small_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_package(tmp_path_factory.mktemp("small"))


@pytest.fixture()
def package_copy(small_package: Path, tmp_path: Path) -> Path:
    for p in small_package.parent.glob("small-0.0.1.*"):
        shutil.copy(p, tmp_path / p.name)
    return tmp_path / small_package.name


@pytest.mark.slow
def test_exported_package_loads_and_reports_its_id(small_package: Path) -> None:
    grader = Grader(small_package, threads=1)
    assert grader.model_id == "small-0.0.1"
    damages, ms = grader.detect(real_frames(1)[0])
    assert ms > 0
    assert all(0 <= v <= 1 for d in damages for v in d.box_norm)


@pytest.mark.slow
def test_runtime_feeds_the_model_what_training_fed_the_network(small_package: Path) -> None:
    """Same frame → same tensor → same outputs in torch (training) and onnxruntime (vehicle)."""
    from models.training.net import RoadDamageNet
    from models.training.spec import input_spec

    grader = Grader(small_package, threads=1)
    assert grader.manifest.input == input_spec(64)
    net = RoadDamageNet(4, 64, pretrained=False)
    net.load_state_dict(
        torch.load(small_package.parent.parent / "run" / "weights.pt", weights_only=True)
    )
    net.eval()
    for frame in real_frames(3):
        with torch.no_grad():
            heat_t, box_t = net(torch.from_numpy(preprocess(frame, input_spec(64))))
        heat_o, box_o, _ = grader.raw_outputs(frame)
        np.testing.assert_allclose(heat_o, heat_t[0].numpy(), atol=1e-4)
        np.testing.assert_allclose(box_o, box_t[0].numpy(), atol=1e-4)


def test_flipped_byte_is_refused(package_copy: Path) -> None:
    onnx = package_copy.with_suffix(".onnx")
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="sha256"):
        Grader(package_copy)


def test_truncated_file_is_refused(package_copy: Path) -> None:
    onnx = package_copy.with_suffix(".onnx")
    onnx.write_bytes(onnx.read_bytes()[:1000])
    with pytest.raises(ModelPackageError, match="truncated or half-copied"):
        Grader(package_copy)


def _edit_manifest(path: Path, **changes: object) -> None:
    raw = json.loads(path.read_text())
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(json.dumps(raw))


def test_manifest_with_wrong_hash_is_refused(package_copy: Path) -> None:
    _edit_manifest(package_copy, sha256="ab" * 32)
    with pytest.raises(ModelPackageError, match="does not match the manifest"):
        Grader(package_copy)


def test_manifest_with_wrong_input_shape_is_refused(package_copy: Path) -> None:
    _edit_manifest(package_copy, input__width=320, input__height=320)
    with pytest.raises(ModelPackageError, match=r"manifest says \[1, 3, 320, 320\]"):
        Grader(package_copy)


def test_manifest_with_wrong_class_count_is_refused(package_copy: Path) -> None:
    raw = json.loads(package_copy.read_text())
    raw["classes"] = raw["classes"][:3]
    package_copy.write_text(json.dumps(raw))
    with pytest.raises(ModelPackageError, match="output 'heat'"):
        Grader(package_copy)


def test_manifest_with_unknown_key_is_refused_naming_it(package_copy: Path) -> None:
    _edit_manifest(package_copy, input__colour="RGB")
    with pytest.raises(ModelPackageError, match=r"input\.colour"):
        load_manifest(package_copy)


def test_half_written_manifest_is_refused(package_copy: Path) -> None:
    package_copy.write_text(package_copy.read_text()[:100])
    with pytest.raises(ModelPackageError, match="not valid JSON"):
        Grader(package_copy)


@pytest.mark.slow
def test_quantize_makes_a_valid_int8_package(small_package: Path, tmp_path: Path) -> None:
    import onnx

    from models.quantize import quantize_package

    int8 = quantize_package(
        small_package,
        RDD_TRAIN / "images",
        tmp_path,
        name="small-int8",
        version="0.0.1",
        calib_images=8,
    )
    manifest = load_manifest(int8)
    assert manifest.precision == "int8"
    assert manifest.quantization is not None and manifest.quantization["format"] == "QDQ"
    graph = onnx.load(str(int8.with_suffix(".onnx"))).graph
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) > 10
    fp32, q = Grader(small_package, threads=1), Grader(int8, threads=1)
    for frame in real_frames(3):
        heat_f, _, _ = fp32.raw_outputs(frame)
        heat_q, _, _ = q.raw_outputs(frame)
        assert heat_q.shape == heat_f.shape
        assert np.abs(1 / (1 + np.exp(-heat_q)) - 1 / (1 + np.exp(-heat_f))).max() < 0.1
