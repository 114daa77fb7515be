"""Low-rank factorisation of Dense and 1x1 Conv2D layers by truncated SVD.

W (in x out) ~= A (in x r) @ B (r x out) with A = U_r sqrt(S_r), B = sqrt(S_r) V_r^T:
splitting the singular values evenly keeps both factors on a similar scale, which
matters once each is quantized to int8 with its own per-channel scales. A layer is
only split when r (in + out) < in * out, i.e. when it actually saves parameters.
"""
from __future__ import annotations

import numpy as np

from tinycomp.errors import InputDataError, ModelError

from .graph import chain_layers, clone_layer, input_shape


def rank_for_energy(singular_values: np.ndarray, energy: float) -> int:
    """Smallest r whose leading singular values keep `energy` of sum(s^2)."""
    power = np.cumsum(singular_values.astype(np.float64) ** 2)
    return int(np.searchsorted(power / power[-1], energy - 1e-12) + 1)


def _factorable(layer) -> bool:
    import keras

    if isinstance(layer, keras.layers.Dense):
        return True
    return (type(layer) is keras.layers.Conv2D and tuple(layer.kernel_size) == (1, 1)
            and layer.groups == 1)


def factorise(model, energy: float | None = None, param_budget: int | None = None,
              min_saving: float = 0.0):
    """A new model with each Dense / 1x1 Conv2D replaced by two thinner layers.

    Rank comes from retained `energy` in (0, 1] or, with `param_budget`, the
    largest rank whose two factors have at most that many weights per layer.
    Returns (model, {layer name: (rank, params before, params after)}).
    """
    import keras

    if energy is None and param_budget is None:
        raise InputDataError("give a retained energy or a parameter budget for low-rank factorisation")
    if energy is not None and not (0.0 < float(energy) <= 1.0):
        raise InputDataError(f"retained energy must be in (0, 1], got {energy}")
    layers = chain_layers(model)
    if not any(_factorable(l) for l in layers):
        raise ModelError("model has no Dense or 1x1 Conv2D layer to factorise")
    x = inputs = keras.Input(input_shape(model), name=model.inputs[0].name)
    ranks = {}
    for layer in layers:
        weights = layer.get_weights()
        if _factorable(layer):
            kernel = weights[0].reshape(-1, weights[0].shape[-1])
            n_in, n_out = kernel.shape
            u, s, vt = np.linalg.svd(kernel, full_matrices=False)
            if param_budget is not None:
                r = max(1, int(param_budget) // (n_in + n_out))
            else:
                r = rank_for_energy(s, float(energy))
            r = min(r, len(s))
            before, after = n_in * n_out, r * (n_in + n_out)
            if after < before * (1.0 - min_saving):
                root = np.sqrt(s[:r])
                a = (u[:, :r] * root).astype(np.float32)
                b = (root[:, None] * vt[:r]).astype(np.float32)
                if isinstance(layer, keras.layers.Dense):
                    first = keras.layers.Dense(r, use_bias=False, name=f"{layer.name}_lr_a")
                    second = clone_layer(layer, name=f"{layer.name}_lr_b")
                    shape_a, shape_b = a.shape, b.shape
                else:
                    # Strides and padding stay on the first factor; the second is a
                    # plain 1x1 on the already-resampled grid.
                    first = clone_layer(layer, filters=r, use_bias=False, activation="linear",
                                        name=f"{layer.name}_lr_a")
                    second = clone_layer(layer, strides=(1, 1), padding="valid", dilation_rate=(1, 1),
                                         name=f"{layer.name}_lr_b")
                    shape_a, shape_b = (1, 1, *a.shape), (1, 1, *b.shape)
                x = first(x)
                first.set_weights([a.reshape(shape_a)])
                x = second(x)
                second.set_weights([b.reshape(shape_b)] + weights[1:])
                ranks[layer.name] = (r, before, after)
                continue
            ranks[layer.name] = (len(s), before, before)
        new = clone_layer(layer)
        x = new(x)
        if weights:
            new.set_weights(weights)
    return keras.Model(inputs, x, name=model.name), ranks
