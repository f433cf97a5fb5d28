"""The model export path (TorchScript exporter, pinned): a small net exported through it runs
in onnxruntime like in torch, and keeps the node names the INT8 quantiser selects on."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # every test here runs >1 s (subprocesses, whole drives, crashes)

torch = pytest.importorskip("torch", reason="needs the train extra (installed by .ci/run)")


def test_export_runs_in_onnxruntime_and_keeps_the_quantisers_node_names(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    from models.quantize import EARLY_FP32_PREFIXES, _head_nodes
    from models.training.export import export_onnx
    from models.training.net import RoadDamageNet

    size = 64  # the real architecture, on a small input: a few seconds on a CPU
    torch.manual_seed(3)
    net = RoadDamageNet(4, size, pretrained=False).eval()
    with torch.no_grad():
        # An image head as models.training.image_head fits it: on pooled stride-32 features.
        pooled = net.pooled(torch.zeros(1, 3, size, size)).shape[1]
    net.image_head = torch.nn.Linear(pooled, 4)
    out = tmp_path / "tiny.onnx"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_onnx(net, out, size)
    notices = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert not [n for n in notices if "TorchScript" in n or "will be removed" in n], notices

    x = np.random.default_rng(5).random((1, 3, size, size), dtype=np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x})
    with torch.no_grad():
        expected = [t.numpy() for t in net(torch.from_numpy(x))]
    assert [o.name for o in session.get_outputs()] == ["heat", "box", "image_logits"]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-4)

    # What the quantiser keeps in FP32 must exist under these names (the new exporter's
    # "node_Conv_1059" names would match none of them, silently).
    names = [n.name for n in onnx.load(str(out)).graph.node]
    for prefix in EARLY_FP32_PREFIXES:
        assert any(name.startswith(prefix) for name in names), prefix
    kept = _head_nodes(out, EARLY_FP32_PREFIXES)
    assert any(name.startswith("/_blocks.2/") for name in kept)
    assert any("ReduceMean" in name for name in kept)  # the image head's pooling
