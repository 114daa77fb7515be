"""Predict what int8 costs before running the int8 model: the additive-noise model.

Every rounding is modelled as independent noise, uniform over one step, so of
variance step^2/12: each activation rounded to its tensor's scale, each weight
to its channel's scale. The noise is carried forward through the float layers
(each layer applied to its float input with and without the noise, so ReLU
zeroing half of it, pooling averaging it, and a conv summing it over its fan-in
all come from the layer itself), and every layer's own roundings are added.
That gives each tensor's predicted SNR. At the logits, a noise of variance s^2 on
every logit predicts:
- the KL divergence of the outputs: about half the p-weighted variance of the
  logit error, s^2/2 (1 - sum p_i^2) per sample;
- the accuracy: a sample changes class when the noise on the difference of its
  two largest logits (variance 2 s^2) exceeds their margin.
What the model leaves out: clipping (a range set from rare outliers saturates
them), rounding errors that are not independent (a bias or a per-tensor step
much larger than the values), and saturation of the int32 bias.

`predict` is numpy plus Keras layer calls; the two closed forms are numpy only.
"""
from __future__ import annotations

import math

import numpy as np

from . import analysis

PROBES = 2  # noise draws per layer; a few hundred samples x thousands of elements each


def rounding_variance(step) -> np.ndarray:
    return np.asarray(step, np.float64) ** 2 / 12.0


def predicted_kl(probs: np.ndarray, logit_variance: float) -> float:
    """Mean over samples of s^2/2 (1 - sum p_i^2): KL(p || p') for a small logit
    error of variance s^2 on every logit, to second order."""
    p = np.asarray(probs, np.float64)
    return float(np.mean(0.5 * logit_variance * (1.0 - np.sum(p * p, axis=-1))))


def predicted_accuracy(logits: np.ndarray, labels: np.ndarray, logit_variance: float) -> float:
    """Expected top-1 accuracy when every logit gets independent noise of that
    variance: a sample flips to its runner-up with probability
    Phi(-margin / sqrt(2 s^2)); only the top two are considered (on small noise
    the others are rarely within reach)."""
    z = np.asarray(logits, np.float64)
    order = np.argsort(z, axis=-1)
    top, second = order[:, -1], order[:, -2]
    rows = np.arange(len(z))
    margin = z[rows, top] - z[rows, second]
    sigma = math.sqrt(2.0 * logit_variance)
    if sigma == 0.0:
        flip = np.zeros(len(z))
    else:
        flip = 0.5 * np.array([math.erfc(m / sigma / math.sqrt(2.0)) for m in margin])
    labels = np.asarray(labels).reshape(-1)
    return float(np.mean(np.where(top == labels, 1.0 - flip, np.where(second == labels, flip, 0.0))))


def input_variance(x: np.ndarray, scale: float) -> float:
    """The input's rounding is known before anything runs: samples often sit on
    a grid of their own (pixels in sixteenths), which step^2/12 would overstate."""
    x = np.asarray(x, np.float64)
    return float(np.mean((x - np.round(x / scale) * scale) ** 2))


def predict(model, x: np.ndarray, y: np.ndarray, scales: dict[str, float], seed: int = 0) -> dict:
    """The noise model's prediction for the int8 conversion of `model` on samples x.

    `scales` maps "input" and layer names (of the QAT form, as in the activation
    report) to the activation scale the int8 model uses there; max pooling and
    reshapes keep their input's quantization and add no rounding.
    Returns {"layers": [{"layer", "snr_db"}], "logit_variance", "float_accuracy",
    "accuracy", "kl"}. The input's rounding is taken from x itself (input_variance).
    """
    from .calibrate import _float_call
    from .qat import _SAME_RANGE

    rng = np.random.default_rng(seed)
    qform = analysis.qat_form(model)
    t = np.asarray(x, np.float32)
    variance = input_variance(t, scales["input"]) if "input" in scales else 0.0
    layers, logits = [], None

    def propagate(layer, t, variance):
        """Mean squared change of the layer's output when its input carries noise of that variance."""
        out = np.asarray(_float_call(layer, t), np.float64)
        if variance == 0.0:
            return out, 0.0
        spread = math.sqrt(12.0 * variance)  # uniform noise of that variance
        changes = [np.mean((np.asarray(_float_call(layer, t + rng.uniform(-spread / 2, spread / 2, t.shape)
                                                   .astype(np.float32)), np.float64) - out) ** 2)
                   for _ in range(PROBES)]
        return out, float(np.mean(changes))

    def weight_noise(layer, t, out):
        """Mean squared change of the output from rounding this layer's kernel."""
        kernel = layer.kernel.numpy()
        view, per_channel = analysis.device_kernel(type(layer).__name__, kernel)
        amax = np.abs(view.reshape(-1, view.shape[-1]) if per_channel else view).max(axis=0)
        levels = 7.0 if getattr(layer, "weight_bits", 8) == 4 else 127.0  # a QAT layer trained for INT4
        step = np.where(amax > 0, amax / levels, 0.0)
        noise = rng.uniform(-0.5, 0.5, view.shape) * step * (view != 0)  # a zero rounds exactly
        layer.kernel.assign((view + noise).reshape(kernel.shape).astype(kernel.dtype))
        try:
            changed = np.asarray(_float_call(layer, t), np.float64)
        finally:
            layer.kernel.assign(kernel)
        return float(np.mean((changed - out) ** 2))

    for layer in qform.layers:
        kind = type(layer).__name__
        if kind in ("InputLayer", "FakeQuant"):
            continue
        if kind == "Softmax" or (kind == "Activation" and layer.get_config().get("activation") == "softmax"):
            logits = (t, variance)
        out, variance = propagate(layer, t, variance)
        if getattr(layer, "kernel", None) is not None:
            variance += weight_noise(layer, t, out)
        if layer.name in scales and kind not in _SAME_RANGE:  # zeros (a ReLU's, a pruned channel's) are exact: no rounding there
            variance += float(rounding_variance(scales[layer.name])) * float(np.mean(out != 0))
        power = float(np.mean(out ** 2))
        snr = math.inf if variance == 0.0 else (10.0 * math.log10(power / variance) if power > 0 else -math.inf)
        layers.append({"layer": layer.name, "snr_db": snr})
        t = out.astype(np.float32)
    z, logit_variance = logits if logits is not None else (t, variance)
    z = np.asarray(z, np.float64).reshape(len(z), -1)
    probs = analysis.softmax(z)
    y = np.asarray(y).reshape(-1)
    return {"layers": layers, "logit_variance": logit_variance,
            "float_accuracy": float(np.mean(probs.argmax(-1) == y)),
            "accuracy": predicted_accuracy(z, y, logit_variance),
            "kl": predicted_kl(probs, logit_variance)}


def _dequantized(entry: dict) -> np.ndarray:
    values = np.asarray(entry["values"], np.float64)
    return ((values - entry["zero_point"]) * entry["scale"]).reshape(len(values), -1)


def measured(logits: tuple, outputs: tuple, y: np.ndarray) -> dict:
    """What the prediction is judged against, on the same samples: the float and
    the INT8 (TFLM) model's accuracy, from their outputs, and the KL divergence
    of the distributions their logits give (the prediction is of the logit
    error; the rounding of a softmax output to 1/256 is not part of it).
    `logits` and `outputs` are (float values, int8 entry) pairs of
    analysis.match_activations."""
    y = np.asarray(y).reshape(-1)
    f_out, q_out = np.asarray(outputs[0], np.float64).reshape(len(y), -1), _dequantized(outputs[1])
    p = analysis.softmax(np.asarray(logits[0], np.float64).reshape(len(y), -1))
    q = analysis.softmax(_dequantized(logits[1]))
    return {"float_accuracy": float(np.mean(f_out.argmax(-1) == y)),
            "accuracy": float(np.mean(q_out.argmax(-1) == y)), "kl": analysis.kl_divergence(p, q)}


def predicted_and_measured(model, tflite: bytes, x: np.ndarray, y: np.ndarray) -> tuple[list, dict, dict]:
    """(activation rows, prediction, measurement) for `model` and its INT8
    conversion `tflite` on samples x with labels y."""
    qform = analysis.qat_form(model)  # once, for both
    float_acts, int8_acts = analysis.float_activations(qform, x), analysis.int8_activations(tflite, x)
    pairs = analysis.match_activations(float_acts, int8_acts)
    rows = analysis.activation_report(float_acts, int8_acts)
    prediction = predict(qform, x, y, {name: entry["scale"] for name, _, entry in pairs})
    outputs = pairs[-1][1:]
    logits = pairs[-2][1:] if outputs[1]["op"] == "SOFTMAX" and len(pairs) > 1 else outputs
    return rows, prediction, measured(logits, outputs, y)
