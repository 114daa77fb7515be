"""Unstructured magnitude pruning with a gradual polynomial schedule (Zhu & Gupta).

Masks are re-derived from weight magnitudes and applied after every optimizer
step by a callback, so a pruned weight is exactly 0.0 whenever the model is read;
symmetric int8 conversion then keeps it an exact int8 zero (FACTS.md). Sparsity is
per layer and exact: a layer of n weights ends with round(S * n) zeros, which a
sparse storage format can rely on without re-counting.
"""
from __future__ import annotations

import numpy as np

from tinycomp.errors import InputDataError, ModelError


def prunable_layers(model) -> list:
    """Conv, depthwise and dense layers: the kernels that hold nearly all weights."""
    import keras

    kinds = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    return [l for l in model.layers if isinstance(l, kinds) and getattr(l, "kernel", None) is not None]


def check_sparsity(sparsity: float) -> float:
    if not (0.0 < float(sparsity) < 1.0):
        raise InputDataError(f"sparsity must be strictly between 0 and 1, got {sparsity}")
    return float(sparsity)


def polynomial_sparsity(step: int, end_step: int, final: float, initial: float = 0.0,
                        begin_step: int = 0, power: float = 3.0) -> float:
    """Sparsity at `step`: fast at first, when many weights are near zero and cheap
    to drop, slowing as it nears `final` so fine-tuning can recover."""
    if step <= begin_step:
        return initial
    if step >= end_step:
        return final
    progress = (step - begin_step) / max(1, end_step - begin_step)
    return final + (initial - final) * (1.0 - progress) ** power


def magnitude_mask(kernel: np.ndarray, sparsity: float) -> np.ndarray:
    """Boolean keep-mask zeroing exactly round(sparsity * size) smallest |w|."""
    flat = np.abs(kernel).ravel()
    k = int(round(sparsity * flat.size))
    keep = np.ones(flat.size, bool)
    if k:
        # Stable sort: ties (already-zero weights) go in index order, so the
        # count is exact even when many weights are equal.
        keep[np.argsort(flat, kind="stable")[:k]] = False
    return keep.reshape(kernel.shape)


def lamp_sparsities(layers, sparsity: float) -> dict[str, float]:
    """Per-layer sparsities removing `sparsity` of all prunable weights overall,
    allotted by LAMP scores (Lee et al., ICLR 2021): a weight's square over the
    sum of the squares of the weights of its layer at least as large. Each
    layer's largest weight scores 1, so no layer is emptied, and a small layer,
    each of whose weights carries more of it, keeps more of them; the first
    conv of 144 weights is not cut to two taps a filter as a uniform 80% would."""
    scores = []
    for layer in layers:
        w2 = np.sort(np.square(np.asarray(layer.kernel.numpy(), np.float64)).ravel())
        tail = np.cumsum(w2[::-1])[::-1]  # sum of w2[i:], the weights at least as large
        scores.append(w2 / np.maximum(tail, np.finfo(np.float64).tiny))
    flat = np.concatenate(scores)
    k = int(round(sparsity * flat.size))
    pruned = np.zeros(flat.size, bool)
    pruned[np.argsort(flat, kind="stable")[:k]] = True
    bounds = np.cumsum([0] + [len(sc) for sc in scores])
    return {layer.name: float(pruned[a:b].sum() / (b - a))
            for layer, a, b in zip(layers, bounds[:-1], bounds[1:])}


MAX_LAYER_SPARSITY = 0.97  # Fisher allocation: no layer loses more (it must still compute something)


def fisher_sparsities(layers, fisher: dict[str, np.ndarray], sparsity: float) -> dict[str, float]:
    """Per-layer sparsities removing `sparsity` of all prunable weights overall,
    the weights ranked across layers by their Optimal Brain Damage saliency
    F w^2 / 2: the loss a weight's removal costs to second order, with F the
    Fisher diagonal (the mean squared gradient of the loss per weight). A layer
    the loss is sensitive to keeps more weights whatever its size; no layer
    goes beyond MAX_LAYER_SPARSITY."""
    scores, caps = [], []
    for layer in layers:
        w = np.asarray(layer.kernel.numpy(), np.float64).ravel()
        scores.append(0.5 * np.asarray(fisher[layer.name], np.float64).ravel() * w * w)
        caps.append(int(MAX_LAYER_SPARSITY * w.size))
    flat = np.concatenate(scores)
    owner = np.concatenate([np.full(len(sc), i) for i, sc in enumerate(scores)])
    k = int(round(sparsity * flat.size))
    counts = np.zeros(len(layers), int)
    for i in owner[np.argsort(flat, kind="stable")]:  # least salient first, skipping full layers
        if k == 0:
            break
        if counts[i] < caps[i]:
            counts[i] += 1
            k -= 1
    return {layer.name: float(counts[i] / len(scores[i])) for i, layer in enumerate(layers)}


def apply_masks(layers, sparsity) -> None:
    """sparsity: one fraction for every layer, or {layer name: fraction}."""
    for layer in layers:
        w = np.asarray(layer.kernel.numpy())
        s = sparsity[layer.name] if isinstance(sparsity, dict) else sparsity
        layer.kernel.assign(w * magnitude_mask(w, s))


def _scaled(targets, fraction: float):
    return {k: v * fraction for k, v in targets.items()} if isinstance(targets, dict) else targets * fraction


def make_callback(layers, final_sparsity, end_step: int, frequency: int = 1):
    import keras

    class PruningCallback(keras.callbacks.Callback):
        """Raise sparsity on the schedule and re-zero pruned weights after each step
        (the optimizer's momentum would otherwise revive them)."""

        def __init__(self):
            super().__init__()
            self.step = 0
            self.sparsity = 0.0

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % frequency == 0 or self.step >= end_step:
                # per-layer targets follow one schedule: each at the same fraction of its final
                self.sparsity = _scaled(final_sparsity, polynomial_sparsity(self.step, end_step, 1.0))
            apply_masks(layers, self.sparsity)

        def on_train_end(self, logs=None):
            apply_masks(layers, final_sparsity)

    return PruningCallback()


ALLOCATIONS = ("lamp", "fisher", "uniform")


def prune_magnitude(model, x, y, sparsity: float, epochs: int = 4, batch_size: int = 32,
                    learning_rate: float = 1e-3, layers=None, allocation: str = "lamp",
                    recover=None, temperature: float | None = None):
    """Prune conv/dense kernels of `model` in place so that `sparsity` of all
    their weights are zero, fine-tuning on (x, y).

    allocation "lamp" spreads the zeros over layers by LAMP score
    (lamp_sparsities), "fisher" by second-order saliency (fisher_sparsities),
    "uniform" gives every layer the same sparsity. The
    schedule raises sparsity over `epochs`; then `recover(model, callbacks)`,
    if given, fine-tunes with the masks held (until accuracy is back). With a
    temperature, y holds distill.pack rows.
    Returns {layer name: sparsity}."""
    sparsity = check_sparsity(sparsity)
    layers = prunable_layers(model) if layers is None else layers
    if not layers:
        raise ModelError("model has no prunable layer (Conv1D, Conv2D, DepthwiseConv2D or Dense)")
    if allocation not in ALLOCATIONS:
        raise InputDataError(f"allocation must be one of {', '.join(ALLOCATIONS)}, not {allocation!r}")
    if allocation == "fisher":
        from .sensitivity import fisher_diagonal

        labels = y[:, 0] if np.ndim(y) == 2 else y  # distillation's packed targets start with the label
        targets = fisher_sparsities(layers, fisher_diagonal(model, x, labels, layers), sparsity)
    elif allocation == "lamp":
        targets = lamp_sparsities(layers, sparsity)
    else:
        targets = {l.name: sparsity for l in layers}
    steps = max(1, epochs) * int(np.ceil(len(x) / batch_size))
    callback = make_callback(layers, targets, end_step=max(1, (2 * steps) // 3))
    compile_for_finetune(model, learning_rate, temperature)
    model.fit(x, y, batch_size=batch_size, epochs=max(1, epochs), verbose=0, shuffle=True,
              callbacks=[callback])
    apply_masks(layers, targets)
    if recover is not None:
        recover(model, [callback])
        apply_masks(layers, targets)
    return targets


def layer_sparsity(model) -> dict[str, float]:
    """Fraction of exact zeros in each prunable kernel."""
    return {l.name: float(np.mean(l.kernel.numpy() == 0.0)) for l in prunable_layers(model)}


def global_sparsity(model) -> float:
    kernels = [l.kernel.numpy() for l in prunable_layers(model)]
    total = sum(k.size for k in kernels)
    return float(sum(np.count_nonzero(k == 0.0) for k in kernels) / total) if total else 0.0


def compile_for_finetune(model, learning_rate: float = 1e-3, temperature: float | None = None) -> None:
    """Sparse integer labels and a softmax/logit output are what the classifiers here use.
    With a temperature, the targets are distill.pack rows and the loss is distillation's."""
    import keras

    from_logits = _output_activation(model) != "softmax"
    if temperature is not None:
        from . import distill

        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss=distill.loss(temperature, from_logits), metrics=[distill.accuracy])
        return
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                  metrics=["accuracy"])


def _output_activation(model) -> str:
    import keras

    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return "softmax"
    act = last.get_config().get("activation")
    return act if isinstance(act, str) else "linear"
