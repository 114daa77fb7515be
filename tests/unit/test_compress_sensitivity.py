"""Per-layer sensitivity and activation SNR on the trained digits CNN."""
import numpy as np
import pytest

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def digits_keras():
    from tests.support.models import digits_model
    from tinycomp.cli_compress import load_keras
    from tinycomp.frontends.keras import quiet_tensorflow

    d = digits_model()
    with quiet_tensorflow():
        yield load_keras(d.keras_path), d


def test_sensitivity_ranks_layers_and_leaves_the_model_alone(digits_keras):
    from tinycomp.compress.sensitivity import layer_sensitivity

    model, d = digits_keras
    before = [w.copy() for w in model.get_weights()]
    x, y = d.x_test[:200], d.y_test[:200]
    s = layer_sensitivity(model, x, y, sparsity=0.85)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert s["float_accuracy"] == pytest.approx(np.mean(d.float_probs[:200].argmax(-1) == y), abs=1e-9)
    rows = s["rows"]
    assert {r["layer"] for r in rows} == {"conv2d", "depthwise_conv2d", "conv2d_1", "dense_10"}
    for r in rows:
        # int8 weights alone barely move this model; one-shot pruning at 85% does.
        assert abs(r["int8"]["accuracy"] - s["float_accuracy"]) <= 0.02
        assert 0 < r["int8"]["output_error"] < 0.05
        assert r["pruned"]["output_error"] > r["int8"]["output_error"]
    lost = [s["float_accuracy"] - min(r["int8"]["accuracy"], r["pruned"]["accuracy"]) for r in rows]
    assert lost == sorted(lost, reverse=True)  # worst first
    # The first conv has 9 weights per filter: 85% leaves most filters empty.
    assert rows[0]["layer"] == "conv2d"
    assert s["all_pruned"]["accuracy"] <= min(r["pruned"]["accuracy"] for r in rows) + 0.02

    unlabelled = layer_sensitivity(model, x, None, sparsity=0.5)
    assert unlabelled["float_accuracy"] is None and unlabelled["rows"][0]["int8"]["accuracy"] is None
    errs = [max(r["int8"]["output_error"], r["pruned"]["output_error"]) for r in unlabelled["rows"]]
    assert errs == sorted(errs, reverse=True)


def test_activation_snr_matches_every_tensor(digits_keras):
    from tinycomp.compress import analysis, qat
    from tinycomp.compress.calibrate import calibrated_model
    from tinycomp.compress.report import Report

    model, d = digits_keras
    tflite = qat.qat_to_tflite(calibrated_model(model, d.x_calibration, "minmax")[0])
    x = d.x_test[:64]
    rows = analysis.activation_report(analysis.float_activations(model, x), analysis.int8_activations(tflite, x))
    assert [(r["layer"], r["op"]) for r in rows] == [
        ("input", "input"), ("conv2d", "CONV_2D"), ("depthwise_conv2d", "DEPTHWISE_CONV_2D"),
        ("max_pooling2d", "MAX_POOL_2D"), ("conv2d_1", "CONV_2D"), ("max_pooling2d_1", "MAX_POOL_2D"),
        ("flatten", "RESHAPE"), ("dense_10", "FULLY_CONNECTED"), ("dense_10_softmax", "SOFTMAX")]
    for r in rows:
        # Min-max ranges on this well-behaved model: 8 bits give 35-60 dB per tensor,
        # and the device's value, carrying every earlier error, is no better.
        assert 35 < r["snr_db"] < 60, r
        assert r["device_snr_db"] <= r["snr_db"] + 0.5, r
        assert r["short_of_rule"] == (r["snr_db"] < analysis.ideal_snr_db(8))
    # The inputs are sixteenths in [0, 1]: min-max keeps them all, nothing clips.
    assert rows[0]["clipped"] == 0.0 and rows[0]["range"][0] == 0.0
    report = Report("digits", activation_rows=rows, activation_samples=64)
    text = report.markdown()
    assert "## Activations" in text and "| conv2d | CONV_2D |" in text and "Short of the rule:" in text
