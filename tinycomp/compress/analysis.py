"""Numbers for the compression report. The arithmetic is numpy only, so it tests
without TensorFlow; `model_weight_report` and the `*_activations` functions
import Keras / TFLM lazily.

The 6.02 B + 1.76 dB rule is the SNR of a full-scale sine through a B-bit
uniform quantizer. Weights are heavy-tailed, not sines, so most layers fall
short of it; how far short says which layers int8 hurts most. Activations fall
short too when their range is set by rare outliers (few levels left for the
common values) or when a ReLU output spends most samples at zero.
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


def softmax(z: np.ndarray) -> np.ndarray:
    """Rows of logits to class probabilities (float64, max subtracted: no overflow)."""
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-7) -> float:
    """Mean over samples of KL(p || q) for rows of class probabilities, in nats."""
    p = np.clip(np.asarray(p, np.float64), eps, 1.0)
    q = np.clip(np.asarray(q, np.float64), eps, 1.0)
    p /= p.sum(-1, keepdims=True)
    q /= q.sum(-1, keepdims=True)
    return float(np.mean(np.sum(p * np.log(p / q), axis=-1)))


def device_kernel(kind: str, kernel: np.ndarray) -> tuple[np.ndarray, bool]:
    """(kernel viewed as the converter quantizes it, per_channel) for a layer class name.

    Mirrors qat.quant_kernel, which is what tinycomp's conversion uses: depthwise
    kernels get one scale per output channel (cin * multiplier, the last two axes
    merged), Dense one scale per tensor (FULLY_CONNECTED's transposed layout
    rejects a per-channel axis), convolutions one per filter.
    """
    if kind.endswith("DepthwiseConv2D"):
        return kernel.reshape(*kernel.shape[:-2], kernel.shape[-2] * kernel.shape[-1]), True
    if kind.endswith("Dense"):
        return kernel, False
    return kernel, True


def fake_quant_kernel(kind: str, kernel: np.ndarray, bits: int = 8) -> np.ndarray:
    """The float kernel after int8 quantize-dequantize with the device's scheme."""
    view, per_channel = device_kernel(kind, kernel)
    return quantize_symmetric(view, bits, per_channel)[1].reshape(kernel.shape).astype(kernel.dtype)


def layer_report(name: str, kernel: np.ndarray, n_bias: int, bits: int = 8, kind: str = "Conv2D") -> dict:
    view, per_channel = device_kernel(kind, kernel)
    codes, _ = quantize_symmetric(view, bits, per_channel)
    n = kernel.size
    nonzero = int(np.count_nonzero(codes))
    snr = weight_snr(view, bits, per_channel)
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
        rows.append(layer_report(layer.name, weights[0], n_bias, bits, type(layer).__name__))
    return rows


# --- activations -------------------------------------------------------------

def quantize_dequantize(x: np.ndarray, scale: float, zero_point: int, bits: int = 8) -> np.ndarray:
    """x through an asymmetric signed B-bit tensor quantizer (TFLite's activation scheme)."""
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    q = np.clip(np.round(np.asarray(x, np.float64) / scale) + zero_point, qmin, qmax)
    return (q - zero_point) * scale


def activation_row(name: str, op: str, float_values: np.ndarray, device_values: np.ndarray,
                   scale: float, zero_point: int, bits: int = 8) -> dict:
    """One tensor's quantization figures.

    `snr_db` is the tensor's own quantization: its float values rounded and
    clipped with the model's scale and zero point, nothing upstream. `device_snr_db`
    compares the float values with what the INT8 model really computed there, so it
    also carries every earlier layer's error: where it drops much below `snr_db`,
    the damage was done upstream.
    """
    f = np.asarray(float_values, np.float64)
    lo = (-(2 ** (bits - 1)) - zero_point) * scale
    hi = (2 ** (bits - 1) - 1 - zero_point) * scale
    snr = snr_db(f, quantize_dequantize(f, scale, zero_point, bits))
    return {
        "layer": name, "op": op, "elements": int(f[0].size) if f.ndim > 1 else int(f.size),
        "scale": float(scale), "zero_point": int(zero_point), "range": (float(lo), float(hi)),
        # Beyond half a step outside the range the quantizer saturates.
        "clipped": float(np.mean((f < lo - scale / 2) | (f > hi + scale / 2))),
        "snr_db": snr,
        "device_snr_db": snr_db(f, (np.asarray(device_values, np.float64) - zero_point) * scale),
        "short_of_rule": snr < ideal_snr_db(bits),
    }


def match_activations(float_acts: list[tuple[str, np.ndarray]], int8_acts: list[dict]) -> list[tuple]:
    """Pair the INT8 model's op outputs with the float layer outputs they quantize.

    Both lists are in execution order of a chain, so pairing is a merge: each
    INT8 tensor takes the next float output of the same per-sample shape. The
    converter's tensor names are not usable (it renames scopes, "conv2d_1" may be
    Keras's "conv2d"); the order and shapes are what survive conversion. INT8 ops
    with no float counterpart (a QUANTIZE the converter added) are left out.
    Shapes are compared without their 1s: a Conv1D runs as a CONV_2D whose
    output has an extra axis of 1; the entry's values take the float's shape.
    Returns [(float name, float values, int8 entry)].
    """
    def squeezed(shape):
        return tuple(d for d in shape if d != 1)

    pairs, j = [], 0
    for entry in int8_acts:
        shape = squeezed(entry["shape"])
        for k in range(j, len(float_acts)):
            name, values = float_acts[k]
            if squeezed(values.shape[1:]) == shape:
                pairs.append((name, values, {**entry, "values": entry["values"].reshape(values.shape)}))
                j = k + 1
                break
    return pairs


def activation_report(float_acts: list[tuple[str, np.ndarray]], int8_acts: list[dict], bits: int = 8) -> list[dict]:
    """Rows for every matched tensor; `int8_acts` entries hold op, shape (per sample),
    scale, zero_point and values (N, *shape) as the INT8 model computed them."""
    return [activation_row(name, e["op"], f, e["values"], e["scale"], e["zero_point"], bits)
            for name, f, e in match_activations(float_acts, int8_acts)]


def qat_form(model):
    """`model` itself if it is a QAT model, else its QAT form (BN folded, softmax
    split from its logits: the same cut points the converted model has)."""
    from .qat import quantize_model

    return model if any(type(l).__name__ == "FakeQuant" for l in model.layers) else quantize_model(model)


def float_activations(model, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Float output of every layer of the QAT form of `model` (qat_form), with
    the fake-quant layers as identities and the float kernels, in order."""
    from .calibrate import _float_call

    qmodel = qat_form(model)
    acts = [("input", np.asarray(x, np.float32))]
    t = acts[0][1]
    for layer in qmodel.layers[1:]:
        if type(layer).__name__ in ("FakeQuant", "InputLayer"):
            continue
        t = np.asarray(_float_call(layer, t))
        acts.append((layer.name, t))
    return acts


def int8_inputs(graph, x: np.ndarray) -> np.ndarray:
    """Float samples x quantized as the graph's int8 input, (N, *input shape)."""
    inp = graph.tensor(graph.inputs[0])
    q = np.clip(np.round(np.asarray(x, np.float64) / inp.scale) + inp.zero_point, -128, 127).astype(np.int8)
    return q.reshape((len(x), *inp.shape))


def int8_activations(tflite: bytes, x: np.ndarray) -> list[dict]:
    """The input and every op output of an INT8 .tflite on float samples x, run
    with TFLite Micro's reference kernels (what the generated C equals bit for bit)."""
    from tinycomp.frontends.tflite import parse_tflite
    from tinycomp.reference.tflm import run

    graph = parse_tflite(tflite)
    inp = graph.tensor(graph.inputs[0])
    xq = int8_inputs(graph, x)
    # The first output of each op: every op here (conv, pool, FC, softmax) has one.
    outs = [(n.op.value, graph.tensor(n.outputs[0])) for n in graph.nodes
            if graph.tensor(n.outputs[0]).quant is not None]
    _, seen = run(tflite, xq, tuple(t.index for _, t in outs))
    xq = xq.reshape((len(x), *inp.shape[1:]))
    entries = [{"op": "input", "shape": tuple(inp.shape[1:]), "scale": inp.scale,
                "zero_point": inp.zero_point, "values": xq}]
    for op, t in outs:
        entries.append({"op": op, "shape": tuple(t.shape[1:]), "scale": t.scale, "zero_point": t.zero_point,
                        "values": seen[t.index].reshape((len(x), *t.shape[1:]))})
    return entries
