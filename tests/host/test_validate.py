"""`tinycomp validate` on the host board: the trained digits model, compared with
TFLM bit for bit and with its float Keras original."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tinycomp.validate import compare_float, compare_int8, format_report
from tests.support.models import digits_model


def test_metrics_on_known_values():
    a = np.array([[1, 2, 3], [4, 5, 6]], np.int8)
    b = np.array([[1, 2, 3], [4, 7, 6]], np.int8)
    m = compare_int8(a, b)
    assert m == {"samples": 2, "bit_exact_fraction": 0.5, "values_differing": 1, "max_diff_lsb": 2}
    f = compare_float(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0.0, 1.0], [0.0, 1.0]]),
                      labels=np.array([1, 0]))
    assert f["top1_agreement"] == 0.5 and f["accuracy_device"] == 1.0 and f["accuracy_float"] == 0.5
    assert f["confusion_float"] == [[0, 1], [0, 1]]
    assert f["mae"] == 0.5 and f["cosine"] == 0.5


@pytest.mark.tf
def test_validate_digits_on_host(tmp_path):
    d = digits_model()
    (tmp_path / "digits.tflite").write_bytes(d.tflite)
    np.save(tmp_path / "x.npy", d.x_test[:120])
    np.save(tmp_path / "y.npy", d.y_test[:120])
    result = subprocess.run(
        [sys.executable, "-m", "tinycomp.cli", "validate", tmp_path / "digits.tflite", "--board", "host",
         "--data", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--float-model", d.keras_path,
         "--report", tmp_path / "r.json", "--out", tmp_path / "build", "--per-layer"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["int8"]["bit_exact_fraction"] == 1.0 and report["int8"]["max_diff_lsb"] == 0
    assert report["float"]["top1_agreement"] > 0.95
    assert report["float"]["accuracy_device"] > 0.9
    assert report["first_differing_layer"].startswith("none")
    assert "bit-exact vs TFLite Micro" in result.stdout and "confusion matrix" in result.stdout
    assert format_report(report) in result.stdout


def _fc_chain(weight_shift: int = 0) -> bytes:
    """Three FULLY_CONNECTED layers; weight_shift perturbs the second layer only."""
    from tests.support.tflite_builder import ModelBuilder, random_bias, random_weights
    rng = np.random.default_rng(7)
    b = ModelBuilder()
    x = b.input((1, 16), 0.05, 0)
    for i, (n_in, n_out) in enumerate([(16, 12), (12, 10), (10, 6)]):
        wq, ws = random_weights(rng, (n_out, n_in))
        if i == 1 and weight_shift:
            wq = np.clip(wq.astype(np.int16) + weight_shift, -127, 127).astype(np.int8)
        bq, bs = random_bias(rng, n_out, 0.05, ws)
        x = b.fully_connected(x, b.const_int8(wq, scales=ws), b.const_int32(bq, scales=bs), 0.05, 0)
    b.output(x)
    return b.build()


def test_per_layer_bisection_names_the_first_differing_layer(tmp_path):
    """The device runs one model while the reference is a model whose second
    layer differs: the bisection must name that layer, not the last one."""
    from tinycomp.frontends.tflite import parse_tflite
    from tinycomp.validate import first_differing_layer

    device_graph = parse_tflite(_fc_chain())
    reference = _fc_chain(weight_shift=9)
    x = np.random.default_rng(3).integers(-128, 128, size=(6, 16)).astype(np.int8)
    found = first_differing_layer(device_graph, reference, x, "host", tmp_path)
    assert found is not None and found["index"] == 1 and found["op"] == "FULLY_CONNECTED"
    assert first_differing_layer(device_graph, _fc_chain(), x, "host", tmp_path / "same") is None
