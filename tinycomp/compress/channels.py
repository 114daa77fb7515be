"""Structured channel pruning: drop whole conv filters / dense units and rewire.

Unlike unstructured sparsity, removing a filter shrinks every later tensor, so
MACs, activation RAM and flash all fall with no special kernels. Importance is
the L1 (or L2) norm of each filter; the final classifier keeps all its units.
"""
from __future__ import annotations

import numpy as np

from tinycomp.errors import InputDataError, ModelError

from .graph import chain_layers, clone_layer, count_macs, input_shape

_PASS_THROUGH = ("ReLU", "Activation", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                 "GlobalMaxPooling2D", "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D",
                 "GlobalMaxPooling1D", "Dropout", "LeakyReLU", "ZeroPadding2D", "ZeroPadding1D", "Softmax")


def channel_norms(layer, norm: str = "l1") -> np.ndarray:
    kernel = layer.get_weights()[0]
    flat = kernel.reshape(-1, kernel.shape[-1])
    return np.abs(flat).sum(0) if norm == "l1" else np.sqrt((flat ** 2).sum(0))


def _targets(layers) -> list:
    """Layers whose output channels may go: conv and dense, except the last one
    with weights (its outputs are the model's classes)."""
    import keras

    weighted = [l for l in layers if l.get_weights()]
    last = weighted[-1] if weighted else None
    return [l for l in layers if isinstance(l, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense))
            and not isinstance(l, keras.layers.DepthwiseConv2D) and l is not last]


def prune_channels(model, fraction: float | None = None, mac_budget: int | None = None,
                   norm: str = "l1"):
    """A new model with `fraction` of the filters of every prunable layer removed, or
    the smallest uniform fraction that brings MACs under `mac_budget`. Untrained
    afterwards: fine-tune it (see `finetune`)."""
    if fraction is None and mac_budget is None:
        raise InputDataError("give a channel fraction to remove or a MAC budget")
    if norm not in ("l1", "l2"):
        raise InputDataError(f"norm must be 'l1' or 'l2', got {norm!r}")
    layers = chain_layers(model)
    targets = _targets(layers)
    if not targets:
        raise ModelError("model has no layer whose channels can be pruned (conv or hidden dense)")
    if mac_budget is not None:
        return _to_budget(model, layers, targets, int(mac_budget), norm)
    if not (0.0 < float(fraction) < 1.0):
        raise InputDataError(f"channel fraction to remove must be strictly between 0 and 1, got {fraction}")
    return _rebuild(model, layers, targets, float(fraction), norm)


def _to_budget(model, layers, targets, budget, norm):
    # MACs fall monotonically with the fraction removed, so bisect on it; each
    # probe is a cheap rebuild of a small model.
    if count_macs(model) <= budget:
        return _rebuild(model, layers, targets, 0.0, norm)
    lo, hi, best = 0.0, 0.95, None
    for _ in range(12):
        mid = (lo + hi) / 2
        candidate = _rebuild(model, layers, targets, mid, norm)
        if count_macs(candidate) <= budget:
            best, hi = candidate, mid
        else:
            lo = mid
    if best is None:
        raise InputDataError(f"cannot reach {budget:,} MACs by channel pruning "
                             f"(model has {count_macs(model):,})")
    return best


def _rebuild(model, layers, targets, fraction, norm):
    import keras

    keep = None  # indices of the channels of the current tensor that survive
    x = inputs = keras.Input(input_shape(model), name=model.inputs[0].name)
    for layer in layers:
        kind = type(layer).__name__
        weights = layer.get_weights()
        changes = {}
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            if keep is not None:
                mult = layer.depth_multiplier
                weights[0] = weights[0][:, :, keep, :]
                keep = [c * mult + m for c in keep for m in range(mult)]
                if layer.use_bias:
                    weights[1] = weights[1][keep]
        elif isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense)):
            if keep is not None:
                weights[0] = weights[0][..., keep, :] if weights[0].ndim > 2 else weights[0][keep, :]
            keep = None
            if layer in targets and fraction > 0:
                n = weights[0].shape[-1]
                n_keep = max(1, int(round(n * (1.0 - fraction))))
                scores = channel_norms(layer, norm)
                keep = sorted(np.argsort(-scores, kind="stable")[:n_keep].tolist())
                weights[0] = weights[0][..., keep]
                if layer.use_bias:
                    weights[1] = weights[1][keep]
                changes["units" if isinstance(layer, keras.layers.Dense) else "filters"] = n_keep
        elif isinstance(layer, keras.layers.BatchNormalization):
            if keep is not None:
                weights = [w[keep] for w in weights]
        elif kind == "Flatten":
            if keep is not None:
                # Channels-last flatten interleaves channels fastest: (h, w, c) -> (h*W + w)*C + c.
                shape = layer.input.shape[1:]
                c = shape[-1]
                positions = int(np.prod(shape[:-1]))
                keep = [p * c + k for p in range(positions) for k in keep]
        elif kind not in _PASS_THROUGH:
            raise ModelError(f"channel pruning does not support layer {layer.name!r} ({kind})")
        new = clone_layer(layer, **changes)
        x = new(x)
        if weights:
            new.set_weights(weights)
    return keras.Model(inputs, x, name=model.name)
