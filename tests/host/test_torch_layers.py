"""Layer patterns of PyTorch models beyond the trained test models, each in
one small seeded (untrained) model exported to .onnx: the host build equals
TFLM on the generated .tflite bit for bit and follows the float model
(onnxruntime) closely."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.torch, pytest.mark.tf, pytest.mark.xdist_group("torch")]


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
