"""PyTorch models in: three small models trained on digits, exported as .pt2
and .onnx, built and validated on the host. Device (host build) outputs equal
TFLM's on the generated .tflite bit for bit, and its accuracy is within one
point of the float PyTorch model's."""
from __future__ import annotations

import pytest

from tests.support.torch_models import MODELS

pytestmark = [pytest.mark.torch, pytest.mark.tf]


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
@pytest.mark.parametrize("name", MODELS)
def test_validate_on_host(torch_models, name, fmt, tmp_path):
    from tinycomp.frontends.tflite import parse_tflite
    from tinycomp.validate import validate_model

    m = torch_models[name]
    report = validate_model(getattr(m, fmt), m.x_test, "host", tmp_path / "out", labels=m.y_test,
                            calibration=m.calibration)
    assert report["int8"]["samples"] == len(m.x_test)
    assert report["int8"]["values_differing"] == 0 and report["int8"]["bit_exact_fraction"] == 1.0
    fl = report["float"]
    # The float reference is the original model (torch / onnxruntime), not a conversion of it.
    assert fl["accuracy_float"] == pytest.approx(m.float_accuracy, abs=1e-9)
    assert abs(fl["accuracy_device"] - fl["accuracy_float"]) <= 0.01, fl
    assert fl["cosine"] > 0.999
    graph = parse_tflite((tmp_path / "out" / "model.tflite").read_bytes())
    ops = [n.op.value for n in graph.nodes]
    # The C API keeps the model's own layout; a TRANSPOSE only where channels > 1.
    assert graph.tensor(graph.inputs[0]).shape == (1, *m.x_test.shape[1:])
    assert ("TRANSPOSE" in ops) == (name == "cnn1d"), ops
    if name == "cnn2d":
        assert {"DEPTHWISE_CONV_2D", "ADD", "HARD_SWISH", "MEAN"} <= set(ops), ops


def test_inspect_reads_pt2(torch_models):
    from tinycomp.inspect import describe

    m = torch_models["cnn2d"]
    text = describe(m.pt2, m.calibration)
    assert "input  [1, 1, 8, 8] int8" in text and "DEPTHWISE_CONV_2D" in text
