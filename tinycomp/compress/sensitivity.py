"""Per-layer sensitivity: what one layer alone costs when quantized or pruned.

Every other layer stays float, so each row isolates one layer's share of the
damage; the rows do not add up to the whole-model loss (errors interact), which
is why an "all layers" row is given too. Quantization here is of the weights
only (int8, the device's scheme, fake-quantized in the float model): the
activation side is in the activation SNR table. Pruning is one-shot magnitude
pruning without fine-tuning, so it shows which layers tolerate zeros as they
are; fine-tuning recovers part of it, least in the layers that rank first here.
"""
from __future__ import annotations

import numpy as np

from . import analysis


def output_error(reference: np.ndarray, out: np.ndarray) -> float:
    """Relative L2 error of the outputs: 0 for identical, ~1 for unrelated outputs."""
    ref = np.asarray(reference, np.float64)
    den = float(np.linalg.norm(ref))
    return float(np.linalg.norm(np.asarray(out, np.float64) - ref) / den) if den else 0.0


def _accuracy(out: np.ndarray, y) -> float | None:
    return None if y is None else float(np.mean(np.argmax(out, -1) == y))


def float_copy(model):
    """A separate float copy to edit: BN folded, as the device's weights are (a
    fake-quantized unfolded kernel would not be the kernel the device holds)."""
    import keras

    from tinycomp.errors import ModelError

    from .graph import fold_batchnorm

    try:
        return fold_batchnorm(model)
    except ModelError:  # not a chain: edit a plain copy
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        return copy


def layer_sensitivity(model, x: np.ndarray, y: np.ndarray | None = None, sparsity: float = 0.5,
                      bits: int = 8, batch_size: int = 256) -> dict:
    """Accuracy (with labels y) and output error of `model` on x when only one
    conv/dense layer at a time has int8 weights, and when only that layer is
    magnitude-pruned to `sparsity`. `model` itself is not modified.

    Returns {"sparsity", "float_accuracy", "rows", "all_int8", "all_pruned"}; rows
    are sorted by damage, worst first: the larger accuracy drop of the two, or
    the larger output error without labels.
    """
    from .prune import check_sparsity, magnitude_mask, prunable_layers

    sparsity = check_sparsity(sparsity)
    base = float_copy(model)
    y = None if y is None else np.asarray(y).reshape(-1)

    def predict():
        return np.asarray(base.predict(x, batch_size=batch_size, verbose=0))

    reference = predict()
    float_acc = _accuracy(reference, y)

    def measure():
        out = predict()
        return {"accuracy": _accuracy(out, y), "output_error": output_error(reference, out)}

    layers = prunable_layers(base)
    original = {l.name: l.get_weights() for l in layers}

    def set_kernel(layer, kernel):
        w = original[layer.name]
        layer.set_weights([kernel.astype(w[0].dtype), *w[1:]])

    def quantized(layer):
        return analysis.fake_quant_kernel(type(layer).__name__, original[layer.name][0], bits)

    def pruned(layer):
        k = original[layer.name][0]
        return k * magnitude_mask(k, sparsity)

    rows = []
    for layer in layers:
        row = {"layer": layer.name, "kind": type(layer).__name__, "weights": int(original[layer.name][0].size)}
        set_kernel(layer, quantized(layer))
        row["int8"] = measure()
        set_kernel(layer, pruned(layer))
        row["pruned"] = measure()
        layer.set_weights(original[layer.name])
        rows.append(row)

    def everything(change):
        for layer in layers:
            set_kernel(layer, change(layer))
        result = measure()
        for layer in layers:
            layer.set_weights(original[layer.name])
        return result

    all_int8, all_pruned = everything(quantized), everything(pruned)
    if y is not None:  # the second-order prediction beside each measured row
        costs = fisher_costs(base, x, y, sparsity, bits)
        for row in rows:
            row["fisher"] = costs[row["layer"]]
    rows.sort(key=lambda r: damage(r, float_acc), reverse=True)
    return {"sparsity": sparsity, "float_accuracy": float_acc, "rows": rows,
            "all_int8": all_int8, "all_pruned": all_pruned}


def damage(row: dict, float_acc: float | None) -> tuple:
    """Sort key: accuracy lost (the worse of int8 and pruned), then output error."""
    err = max(row["int8"]["output_error"], row["pruned"]["output_error"])
    if float_acc is None or row["int8"]["accuracy"] is None:
        return (err,)
    lost = max(float_acc - row["int8"]["accuracy"], float_acc - row["pruned"]["accuracy"])
    return (round(lost, 9), err)


FISHER_SAMPLES = 256


def fisher_diagonal(model, x: np.ndarray, y: np.ndarray, layers=None) -> dict[str, np.ndarray]:
    """The empirical Fisher diagonal of each prunable kernel: the mean over
    samples of the squared gradient of the loss, one sample at a time (a
    batch's gradient squared would understate it). Near a minimum it
    approximates the Hessian's diagonal, so F w^2 / 2 is what zeroing w costs
    in loss, and F (dw)^2 / 2 what rounding it by dw costs."""
    import keras
    import tensorflow as tf

    from .prune import _output_activation, prunable_layers

    layers = prunable_layers(model) if layers is None else layers
    from_logits = _output_activation(model) != "softmax"
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    kernels = [l.kernel for l in layers]
    total = [np.zeros(k.shape, np.float64) for k in kernels]
    n = min(len(x), FISHER_SAMPLES)

    @tf.function
    def grads(xi, yi):
        with tf.GradientTape() as tape:
            value = loss(yi, model(xi, training=False))
        return tape.gradient(value, kernels)

    for i in range(n):
        for t, g in zip(total, grads(tf.constant(x[i:i + 1], tf.float32), tf.constant(y[i:i + 1]))):
            t += np.square(np.asarray(g, np.float64))
    return {l.name: t / n for l, t in zip(layers, total)}


def fisher_costs(model, x: np.ndarray, y: np.ndarray, sparsity: float, bits: int = 8) -> dict[str, dict]:
    """Per layer, the loss increase the second-order model predicts for its
    weights rounded to int8 (F (dw)^2 / 2 summed) and for it magnitude-pruned
    to `sparsity` (F w^2 / 2 over the pruned weights)."""
    from .prune import magnitude_mask, prunable_layers

    layers = prunable_layers(model)
    fisher = fisher_diagonal(model, x, y, layers)
    costs = {}
    for layer in layers:
        w = np.asarray(layer.kernel.numpy(), np.float64)
        f = fisher[layer.name]
        dw = analysis.fake_quant_kernel(type(layer).__name__, w.astype(np.float32), bits) - w
        pruned = ~magnitude_mask(w, sparsity)
        costs[layer.name] = {"int8": float(0.5 * np.sum(f * dw * dw)),
                             "pruned": float(0.5 * np.sum(f * w * w * pruned)),
                             "fisher_trace": float(np.sum(f))}
    return costs
