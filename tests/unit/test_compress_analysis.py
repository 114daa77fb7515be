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
