"""Compression analysis and range choices: numpy only, no TensorFlow."""
import math

import numpy as np
import pytest

from tinycomp.compress import analysis, calibrate
from tinycomp.compress.prune import magnitude_mask, polynomial_sparsity


def test_snr_rule_and_entropy():
    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (3, 3, 8, 16)).astype(np.float32)
    # A uniform full-scale signal sits near the 6.02 B + 1.76 dB rule.
    assert abs(analysis.weight_snr(w) - analysis.ideal_snr_db(8)) < 3.0
    codes, _ = analysis.quantize_symmetric(w)
    assert codes.min() >= -127 and codes.max() <= 127
    assert analysis.entropy_bits(np.zeros(10)) == 0.0
    assert analysis.weight_snr(np.zeros((2, 2))) == math.inf


def test_sparse_storage_and_kl():
    w = np.zeros((100, 10), np.float32)
    w[::10] = 1.0
    row = analysis.layer_report("d", w, 10)
    assert row["sparsity"] == pytest.approx(0.9)
    t = analysis.totals([row])
    assert t["ratio_sparse"] > t["ratio_dense"] > 3.5
    p = np.array([[0.9, 0.1]])
    assert analysis.kl_divergence(p, p) == pytest.approx(0.0, abs=1e-9)
    assert analysis.kl_divergence(p, np.array([[0.5, 0.5]])) > 0


def test_schedule_and_exact_mask():
    assert polynomial_sparsity(0, 100, 0.8) == 0.0
    assert polynomial_sparsity(100, 100, 0.8) == 0.8
    assert 0.0 < polynomial_sparsity(30, 100, 0.8) < 0.8
    w = np.random.default_rng(1).normal(size=(7, 13))
    assert (~magnitude_mask(w, 0.37)).sum() == round(0.37 * w.size)


def test_range_choices_clip_outliers():
    x = np.concatenate([np.random.default_rng(2).normal(size=100_000), [50.0]]).astype(np.float32)
    lo, hi = calibrate.choose_range(x, "minmax")
    assert hi == pytest.approx(50.0)
    for method in ("percentile", "mse", "kl"):
        lo2, hi2 = calibrate.choose_range(x, method)
        assert lo2 <= 0.0 <= hi2 and hi2 < 50.0, method
    relu = np.abs(x)
    assert calibrate.choose_range(relu, "kl")[0] == 0.0
    with pytest.raises(Exception, match="unknown calibration method"):
        calibrate.choose_range(x, "bogus")


def test_quantize_dequantize_and_activation_row():
    scale, zp = 1.0 / 128, 0
    x = np.linspace(-1.0, 127 / 128, 10_001)[None]  # one sample spanning the full int8 range
    deq = analysis.quantize_dequantize(x, scale, zp)
    assert np.max(np.abs(deq - x)) <= scale / 2 + 1e-12
    row = analysis.activation_row("act", "CONV_2D", x, np.round(x / scale) + zp, scale, zp)
    # A zero-mean full-scale uniform signal: 6.02 B dB, 1.76 dB under the sine rule.
    assert abs(row["snr_db"] - analysis.ideal_snr_db(8)) < 3.0
    assert row["device_snr_db"] == pytest.approx(row["snr_db"])
    assert row["clipped"] == 0.0 and row["range"] == (-1.0, 127 / 128)
    # A range half as wide: the outer half of the values saturate, the SNR collapses.
    half = analysis.activation_row("act", "CONV_2D", x, np.clip(np.round(x / scale * 2), -128, 127),
                                   scale / 2, zp)
    assert half["clipped"] == pytest.approx(0.5, abs=0.01)
    assert half["snr_db"] < 15 and half["short_of_rule"]


def test_match_activations_by_order_and_shape():
    f = [("input", np.zeros((2, 8))), ("dense", np.zeros((2, 4))), ("relu", np.zeros((2, 4))),
         ("logits", np.zeros((2, 3))), ("softmax", np.zeros((2, 3)))]

    def entry(op, shape):
        return {"op": op, "shape": shape, "scale": 0.1, "zero_point": 0, "values": np.zeros((2, *shape))}

    # A QUANTIZE the converter inserted has no float twin and is skipped; each
    # INT8 tensor takes the next float output of its shape, never an earlier one.
    pairs = analysis.match_activations(f, [entry("input", (8,)), entry("FULLY_CONNECTED", (4,)),
                                           entry("QUANTIZE", (5,)), entry("FULLY_CONNECTED", (3,)),
                                           entry("SOFTMAX", (3,))])
    assert [(name, e["op"]) for name, _, e in pairs] == [
        ("input", "input"), ("dense", "FULLY_CONNECTED"), ("logits", "FULLY_CONNECTED"), ("softmax", "SOFTMAX")]


def test_weight_scheme_follows_the_converter():
    rng = np.random.default_rng(3)
    dw = rng.normal(size=(3, 3, 4, 2)).astype(np.float32)
    dw[..., 1, 1] *= 100  # one loud depthwise channel: per-channel keeps the others fine
    view, per_channel = analysis.device_kernel("DepthwiseConv2D", dw)
    assert view.shape == (3, 3, 8) and per_channel
    assert analysis.fake_quant_kernel("DepthwiseConv2D", dw).shape == dw.shape
    assert analysis.layer_report("dw", dw, 8, kind="DepthwiseConv2D")["snr_db"] > 35
    dense = rng.normal(size=(16, 4)).astype(np.float32)
    dense[:, 0] *= 100  # per-tensor Dense: the loud unit costs every other unit its levels
    q = analysis.fake_quant_kernel("Dense", dense)
    assert analysis.snr_db(dense[:, 1:], q[:, 1:]) < 20
    assert analysis.device_kernel("QuantDense", dense)[1] is False


def test_report_names_where_the_device_loses_most():
    from tinycomp.compress.report import Report, largest_device_drop

    def row(name, own, device):
        return {"layer": name, "op": "CONV_2D", "scale": 0.1, "zero_point": -128, "range": (0.0, 25.5),
                "clipped": 0.0, "snr_db": own, "device_snr_db": device, "short_of_rule": own < 49.92}

    rows = [row("input", 56.0, 56.0), row("a", 47.0, 28.0), row("b", 45.0, 27.0), row("c", 50.0, 30.0)]
    assert largest_device_drop(rows) == (rows[1], 28.0)
    assert largest_device_drop(rows[:1]) is None
    text = Report("m", activation_rows=rows, activation_samples=3).markdown()
    assert "Largest loss on the device: a (CONV_2D), 28.0 dB below" in text
    assert "Short of the rule: a (47.0 dB), b (45.0 dB)." in text
    assert "Not computed: run `tinycomp compress` with `--sensitivity`" in text


def test_sensitivity_table_with_and_without_labels():
    from tinycomp.compress.report import Report

    def m(acc, err):
        return {"accuracy": acc, "output_error": err}

    rows = [{"layer": "conv", "weights": 144, "int8": m(0.98, 0.01), "pruned": m(0.40, 0.9)},
            {"layer": "dense", "weights": 1280, "int8": m(0.97, 0.02), "pruned": m(0.90, 0.3)}]
    s = {"sparsity": 0.8, "float_accuracy": 0.98, "rows": rows, "all_int8": m(0.97, 0.02),
         "all_pruned": m(0.2, 0.95)}
    text = Report("m", sensitivity=s).markdown()
    assert "| conv | 144 | 98.00% | +0.00 pt | 0.0100 | 40.00% | -58.00 pt | 0.9000 |" in text
    assert "| all layers at once | 1,424 |" in text and "Most sensitive: conv (pruned)" in text
    for r in rows:
        r["int8"]["accuracy"] = r["pruned"]["accuracy"] = None
    s.update(float_accuracy=None, all_int8=m(None, 0.02), all_pruned=m(None, 0.95))
    text = Report("m", sensitivity=s).markdown()
    assert "output error with one layer changed" in text and "| conv | 144 | 0.0100 | 0.9000 |" in text
