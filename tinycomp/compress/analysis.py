"""Numbers for the compression report; numpy only, so they test without TensorFlow.

The 6.02 B + 1.76 dB rule is the SNR of a full-scale sine through a B-bit
uniform quantizer. Weights are heavy-tailed, not sines, so most layers fall
short of it; how far short says which layers int8 hurts most.
"""
from __future__ import annotations

import math

import numpy as np


def ideal_snr_db(bits: int = 8) -> float:
    return 6.02 * bits + 1.76


def quantize_symmetric(kernel: np.ndarray, bits: int = 8, per_channel: bool = True) -> tuple:
    """(int codes, dequantized) with TFLite's narrow symmetric weight scheme."""
    qmax = 2 ** (bits - 1) - 1
    flat = kernel.reshape(-1, kernel.shape[-1]) if per_channel else kernel.reshape(-1, 1)
    amax = np.abs(flat).max(axis=0)
    scale = np.where(amax > 0, amax / qmax, 1.0)
    codes = np.clip(np.round(flat / scale), -qmax, qmax)
    return codes.astype(np.int32).reshape(kernel.shape), (codes * scale).reshape(kernel.shape)


def snr_db(signal: np.ndarray, approx: np.ndarray) -> float:
    noise = float(np.sum((signal.astype(np.float64) - approx) ** 2))
    power = float(np.sum(signal.astype(np.float64) ** 2))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(power / noise) if power > 0 else -math.inf


def weight_snr(kernel: np.ndarray, bits: int = 8, per_channel: bool = True) -> float:
    return snr_db(kernel, quantize_symmetric(kernel, bits, per_channel)[1])


def entropy_bits(codes: np.ndarray) -> float:
    """Shannon entropy of the int8 codes: no lossless coding of them, sparse or
    not, averages fewer bits per weight."""
    _, counts = np.unique(codes, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-7) -> float:
    """Mean over samples of KL(p || q) for rows of class probabilities, in nats."""
    p = np.clip(np.asarray(p, np.float64), eps, 1.0)
    q = np.clip(np.asarray(q, np.float64), eps, 1.0)
    p /= p.sum(-1, keepdims=True)
    q /= q.sum(-1, keepdims=True)
    return float(np.mean(np.sum(p * np.log(p / q), axis=-1)))


def layer_report(name: str, kernel: np.ndarray, n_bias: int, bits: int = 8) -> dict:
    codes, _ = quantize_symmetric(kernel, bits)
    n = kernel.size
    nonzero = int(np.count_nonzero(codes))
    snr = weight_snr(kernel, bits)
    return {
        "layer": name,
        "weights": n,
        "sparsity": 1.0 - nonzero / n,
        "snr_db": snr,
        "short_of_rule": snr < ideal_snr_db(bits),
        "entropy_bits": entropy_bits(codes),
        "float_bits": 32 * (n + n_bias),
        "dense_int8_bits": bits * n + 32 * n_bias,
        # One presence bit per weight plus the non-zero codes: the simplest sparse
        # layout, and a fair upper bound for what sparse storage can reach.
        "sparse_int8_bits": min(bits * n, n + bits * nonzero) + 32 * n_bias,
        "entropy_total_bits": entropy_bits(codes) * n + 32 * n_bias,
    }


def totals(rows: list[dict]) -> dict:
    keys = ("weights", "float_bits", "dense_int8_bits", "sparse_int8_bits", "entropy_total_bits")
    out = {k: sum(r[k] for r in rows) for k in keys}
    out["ratio_dense"] = out["float_bits"] / max(out["dense_int8_bits"], 1)
    out["ratio_sparse"] = out["float_bits"] / max(out["sparse_int8_bits"], 1)
    out["ratio_entropy"] = out["float_bits"] / max(out["entropy_total_bits"], 1)
    return out


def model_weight_report(model, bits: int = 8) -> list[dict]:
    """Per-layer rows for every conv/dense kernel of a Keras model (BN folded first,
    as the converter will, so the SNR is that of the weights the device holds)."""
    from .graph import fold_batchnorm
    from .prune import prunable_layers

    if any(type(l).__name__ == "BatchNormalization" for l in model.layers):
        try:
            model = fold_batchnorm(model)
        except Exception:
            pass  # not a chain: report the unfolded kernels
    rows = []
    for layer in prunable_layers(model):
        weights = layer.get_weights()
        n_bias = int(weights[1].size) if len(weights) > 1 else 0
        rows.append(layer_report(layer.name, weights[0], n_bias, bits))
    return rows
