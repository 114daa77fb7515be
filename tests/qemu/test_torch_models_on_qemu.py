"""The PyTorch test models (.pt2 and .onnx) validated in QEMU's Cortex-M4F
over serial: every output equals TFLM's on the generated .tflite, accuracy
within one point of the float PyTorch model."""
from __future__ import annotations

import pytest

from tests.support.torch_models import MODELS

pytestmark = [pytest.mark.qemu, pytest.mark.torch, pytest.mark.tf]


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
@pytest.mark.parametrize("name", MODELS)
def test_validate_on_qemu(torch_models, name, fmt, tmp_path):
    from tinycomp.validate import validate_model

    m = torch_models[name]
    report = validate_model(getattr(m, fmt), m.x_test, "qemu", tmp_path / "out", labels=m.y_test,
                            calibration=m.calibration)
    assert report["board"] == "qemu-mps2-an386"
    assert report["int8"]["samples"] == len(m.x_test)
    assert report["int8"]["values_differing"] == 0 and report["int8"]["bit_exact_fraction"] == 1.0
    fl = report["float"]
    assert fl["accuracy_float"] == pytest.approx(m.float_accuracy, abs=1e-9)
    assert abs(fl["accuracy_device"] - fl["accuracy_float"]) <= 0.01, fl
    print(f"{name}.{fmt}: device {fl['accuracy_device']:.4f} float {fl['accuracy_float']:.4f} "
          f"instructions {report['count_per_inference']['min']}")


def test_cli_validate_pt2_on_qemu(torch_models, tmp_path):
    # The command a user types: float samples in NCHW, the report in JSON.
    import json
    import subprocess
    import sys

    import numpy as np

    m = torch_models["cnn2d"]
    np.save(tmp_path / "x.npy", m.x_test[:120])
    np.save(tmp_path / "y.npy", m.y_test[:120])
    result = subprocess.run([sys.executable, "-m", "tinycomp.cli", "validate", str(m.pt2), "--board", "qemu",
                             "--calibration", str(m.calibration), "--data", str(tmp_path / "x.npy"),
                             "--labels", str(tmp_path / "y.npy"), "--out", str(tmp_path / "out"),
                             "--report", str(tmp_path / "r.json")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "bit-exact vs TFLite Micro   100.0% of samples" in result.stdout, result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["int8"]["values_differing"] == 0 and report["int8"]["samples"] == 120
    assert {"mae", "rmse", "cosine", "top1_agreement", "accuracy_device", "accuracy_float"} <= set(report["float"])
