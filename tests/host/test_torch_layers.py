"""Layer patterns of PyTorch models beyond the trained test models, each in
one small seeded (untrained) model exported to .onnx: the host build equals
TFLM on the generated .tflite bit for bit and follows the float model
(onnxruntime) closely."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.torch, pytest.mark.tf]


def _models():
    import torch
    from torch import nn

    class Downsample(nn.Module):
        """PyTorch's usual stride-2 conv with padding 1 (not TensorFlow's SAME
        on an even input: an explicit PAD), a dilated conv, a standalone
        BatchNorm after an add, ReLU6 and Sigmoid, a 2-D flatten of (C, H, W)
        into a Linear (weights reordered, no run-time transpose)."""

        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 6, 3, stride=2, padding=1)
            self.b = nn.Conv2d(6, 6, 3, padding=2, dilation=2)
            self.bn = nn.BatchNorm2d(6)
            self.fc = nn.Linear(6 * 2 * 2, 5)

        def forward(self, x):
            x = nn.functional.relu6(self.a(x))
            x = self.bn(x + self.b(x))
            x = nn.functional.avg_pool2d(torch.sigmoid(x), 2)
            return self.fc(torch.flatten(x, 1))

    class Pools(nn.Module):
        """Max pool with SAME-like padding, Tanh, a cat of two pooled branches
        on the channel axis, global average pool with keepdim, a Linear."""

        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(2, 4, 1)
            self.fc = nn.Linear(8, 3)

        def forward(self, x):
            x = torch.tanh(self.c(x))
            y = torch.cat([nn.functional.max_pool2d(x, 3, 1, padding=1), nn.functional.avg_pool2d(x, 1)], 1)
            return self.fc(y.mean(dim=(2, 3)))

    return {"downsample": (Downsample, (3, 8, 8)), "pools": (Pools, (2, 5, 6))}


@pytest.mark.parametrize("name", ["downsample", "pools"])
def test_layer_patterns(name, tmp_path):
    import torch
    from tinycomp.frontends.tflite import parse_tflite
    from tinycomp.validate import validate_model

    torch.manual_seed(3)
    cls, shape = _models()[name]
    model = cls().eval()
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    rng = np.random.default_rng(5)
    x = rng.random((200, *shape), dtype=np.float32)
    torch.onnx.export(model, (torch.from_numpy(x[:1]),), str(tmp_path / f"{name}.onnx"), dynamo=True,
                      verbose=False)
    np.save(tmp_path / "cal.npy", x[:100])
    report = validate_model(tmp_path / f"{name}.onnx", x[100:], "host", tmp_path / "out",
                            calibration=tmp_path / "cal.npy")
    assert report["int8"]["values_differing"] == 0
    assert report["float"]["cosine"] > 0.99, report["float"]
    ops = [n.op.value for n in parse_tflite((tmp_path / "out" / "model.tflite").read_bytes()).nodes]
    assert ops[0] == "TRANSPOSE"  # more than one input channel
    if name == "downsample":
        assert "PAD" in ops and ops.count("TRANSPOSE") == 1, ops


def test_pt2_with_a_dynamic_batch_is_fixed_to_batch_1(tmp_path):
    import torch
    from tests.support.torch_models import _modules
    from tinycomp.validate import validate_model

    torch.manual_seed(4)
    model = _modules()["cnn1d"]().eval()
    x = np.random.default_rng(6).random((120, 8, 8), dtype=np.float32)
    program = torch.export.export(model, (torch.from_numpy(x[:2]),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    torch.export.save(program, tmp_path / "dyn.pt2")
    np.save(tmp_path / "cal.npy", x[:60])
    report = validate_model(tmp_path / "dyn.pt2", x[60:], "host", tmp_path / "out",
                            calibration=tmp_path / "cal.npy")
    assert report["int8"]["values_differing"] == 0
    assert report["float"]["cosine"] > 0.99, report["float"]
    import json
    assert json.loads((tmp_path / "out" / "tinycomp.json").read_text())["input"]["shape"] == [1, 8, 8]


def test_onnx_matmul_add_and_softmax(tmp_path):
    # As other exporters write a Linear: MatMul + Add (folded into one dense
    # layer), then Gemm with transB and a Softmax; the batch is symbolic.
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from tinycomp.frontends.tflite import parse_tflite
    from tinycomp.validate import validate_model

    rng = np.random.default_rng(9)
    inits = [numpy_helper.from_array(rng.normal(size=(6, 4)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "b2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m"], name="matmul"),
             helper.make_node("Add", ["m", "b1"], ["a"], name="bias"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["g"], name="gemm", transB=1),
             helper.make_node("Softmax", ["g"], ["y"], name="softmax", axis=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "mm.onnx")
    x = rng.normal(size=(150, 6)).astype(np.float32)
    np.save(tmp_path / "cal.npy", x[:50])
    report = validate_model(tmp_path / "mm.onnx", x[50:], "host", tmp_path / "out", calibration=tmp_path / "cal.npy")
    assert report["int8"]["values_differing"] == 0
    assert report["float"]["top1_agreement"] > 0.95, report["float"]
    ops = [n.op.value for n in parse_tflite((tmp_path / "out" / "model.tflite").read_bytes()).nodes]
    assert ops == ["FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"], ops


@pytest.mark.parametrize("name, shape", [("cnn2d", (1, 8, 8)), ("cnn1d", (8, 8))])
def test_torchscript_exporter_onnx(name, shape, tmp_path):
    # ONNX from the older TorchScript exporter (dynamo=False): BatchNormalization
    # folded by it, Clip bounds as Constant nodes, Flatten, a dynamic batch axis.
    import warnings

    import torch
    from tests.support.torch_models import _modules
    from tinycomp.validate import validate_model

    torch.manual_seed(2)
    model = _modules()[name]().eval()
    x = np.random.default_rng(8).random((120, *shape), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(x[:1]),), str(tmp_path / "ts.onnx"), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    np.save(tmp_path / "cal.npy", x[:60])
    report = validate_model(tmp_path / "ts.onnx", x[60:], "host", tmp_path / "out",
                            calibration=tmp_path / "cal.npy")
    assert report["int8"]["values_differing"] == 0
    assert report["float"]["cosine"] > 0.99, report["float"]


@pytest.mark.parametrize("case", ["pointwise", "feature_map"])
def test_layout_at_both_ends(case, tmp_path):
    # (N, 4, 1, 1) in and (N, 3, 1, 1) out: the same bytes in both layouts, no
    # TRANSPOSE. A (N, 3, 3, 3) feature map out: one TRANSPOSE back to NCHW.
    import torch
    from torch import nn
    from tinycomp.frontends.tflite import parse_tflite
    from tinycomp.validate import validate_model

    torch.manual_seed(6)
    shape = (4, 1, 1) if case == "pointwise" else (2, 3, 3)
    model = nn.Sequential(nn.Conv2d(shape[0], 3, 1 if case == "pointwise" else 3, padding="same"),
                          nn.ReLU()).eval()
    x = np.random.default_rng(4).random((100, *shape), dtype=np.float32)
    torch.onnx.export(model, (torch.from_numpy(x[:1]),), str(tmp_path / "m.onnx"), dynamo=True, verbose=False)
    np.save(tmp_path / "cal.npy", x[:50])
    report = validate_model(tmp_path / "m.onnx", x[50:], "host", tmp_path / "out", calibration=tmp_path / "cal.npy")
    assert report["int8"]["values_differing"] == 0
    assert report["float"]["cosine"] > 0.99, report["float"]
    graph = parse_tflite((tmp_path / "out" / "model.tflite").read_bytes())
    ops = [n.op.value for n in graph.nodes]
    assert ops.count("TRANSPOSE") == (0 if case == "pointwise" else 2), ops
    assert graph.tensor(graph.outputs[0]).shape == ((1, 3, 1, 1) if case == "pointwise" else (1, 3, 3, 3))
