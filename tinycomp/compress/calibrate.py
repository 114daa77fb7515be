"""Post-training range choices for each activation: min-max, percentile, MSE, KL.

The TFLite converter offers no way to impose ranges with a representative
dataset, so the chosen ranges go into frozen fake-quant layers (qat.quantize_model
with `ranges`) and the model converts through the QAT path, which takes its
ranges from those ops verbatim. Clipping trades rounding error on common values
against saturating rare ones; the methods differ only in how they weigh that.
"""
from __future__ import annotations

import numpy as np

from tinycomp.errors import InputDataError

METHODS = ("minmax", "percentile", "mse", "kl")


def _quant_error(x: np.ndarray, lo: float, hi: float, levels: int = 256) -> float:
    scale = max(hi - lo, 1e-12) / (levels - 1)
    q = np.clip(np.round((x - lo) / scale), 0, levels - 1) * scale + lo
    return float(np.mean((x - q) ** 2))


def range_minmax(x):
    return min(float(x.min()), 0.0), max(float(x.max()), 0.0)


def range_percentile(x, percentile: float = 99.99):
    lo, hi = np.percentile(x, [100.0 - percentile, percentile])
    return min(float(lo), 0.0), max(float(hi), 0.0)


def range_mse(x, grid: int = 64):
    """Shrink the min-max range by a common factor; keep the one with least MSE."""
    lo, hi = range_minmax(x)
    sample = x if x.size <= 200_000 else np.random.default_rng(0).choice(x.ravel(), 200_000)
    best = min(np.linspace(0.2, 1.0, grid), key=lambda a: _quant_error(sample, a * lo, a * hi))
    return float(best * lo), float(best * hi)


def range_kl(x, bins: int = 2048, levels: int = 128):
    """Entropy calibration: the clip threshold whose 128-level quantized histogram
    of |x| is closest in KL divergence to the clipped original (the TensorRT idea,
    written from its description). Non-negative tensors keep a [0, t] range."""
    lo, hi = range_minmax(x)
    amax = max(abs(lo), hi)
    if amax == 0.0:
        return 0.0, 0.0
    hist, edges = np.histogram(np.abs(x), bins=bins, range=(0.0, amax))
    hist = hist.astype(np.float64)
    best_t, best_kl = amax, np.inf
    for i in range(levels, bins + 1, 16):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()  # what falls outside saturates into the last bin
        nonzero = p > 0
        # Merge i bins into `levels` groups, then spread each group's mass back
        # over its non-empty bins: that is what quantizing at this threshold keeps.
        groups = np.array_split(np.arange(i), levels)
        q = np.zeros(i)
        for g in groups:
            # q comes from the in-range histogram only: the clipped mass p carries
            # in its last bin is exactly what q cannot represent, hence the KL.
            mass, support = hist[:i][g].sum(), nonzero[g].sum()
            if support:
                q[g] = np.where(nonzero[g], mass / support, 0.0)
        pn, qn = p / p.sum(), q / max(q.sum(), 1e-12)
        m = pn > 0
        kl = float(np.sum(pn[m] * np.log(pn[m] / np.maximum(qn[m], 1e-12))))
        if kl < best_kl:
            best_kl, best_t = kl, float(edges[i])
    return (0.0, best_t) if lo >= 0.0 else (-best_t, best_t)


def choose_range(x: np.ndarray, method: str):
    x = np.asarray(x, np.float32).ravel()
    if method == "minmax":
        return range_minmax(x)
    if method == "percentile":
        return range_percentile(x)
    if method == "mse":
        return range_mse(x)
    if method == "kl":
        return range_kl(x)
    raise InputDataError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")


def activation_ranges(model, x: np.ndarray, method: str = "minmax") -> dict:
    """{activation name: (min, max)} for every fake-quant point of the QAT form of
    `model`, measured on calibration samples x."""
    from .qat import quantize_model

    qmodel = quantize_model(model)
    points = [l for l in qmodel.layers if l.name.startswith("fq_")]
    # The fake-quant layers still hold placeholder ranges: replay the graph with
    # them as identities and float kernels to see the float activations.
    float_probe = _float_activations(model, qmodel, points)
    values = float_probe(x)
    return {l.name[3:]: choose_range(v, method) for l, v in zip(points, values)}


def _float_activations(model, qmodel, points):
    """A function returning the float activation at each fake-quant point, by
    replaying the QAT graph with fake-quant layers as identities."""
    names = {l.name for l in points}

    def run(x):
        outs = {}
        t = x
        for layer in qmodel.layers[1:]:
            if layer.name in names:
                outs[layer.name] = np.asarray(t)
                continue
            t = _float_call(layer, t)
        return [outs[l.name] for l in points]

    return run


def _float_call(layer, t):
    import keras

    kind = type(layer).__name__
    if kind.startswith("Quant"):
        # The same computation with the float kernel (no weight rounding).
        base = {"QuantConv2D": keras.layers.Conv2D, "QuantConv1D": keras.layers.Conv1D,
                "QuantDepthwiseConv2D": keras.layers.DepthwiseConv2D,
                "QuantDense": keras.layers.Dense}[kind]
        return base.call(layer, t)
    return layer(t, training=False)


def calibrated_model(model, x: np.ndarray, method: str = "minmax"):
    """The QAT form of `model` with every activation range fixed by `method`; convert
    it with qat.qat_to_tflite to get an INT8 model that uses exactly these ranges."""
    from .qat import quantize_model

    ranges = activation_ranges(model, x, method)
    return quantize_model(model, ranges), ranges
