"""Keras 3 model surgery shared by the compression methods.

The methods rebuild a model layer by layer from configs rather than editing it in
place: Keras 3 fixes weight shapes when a layer is built, so a layer with fewer
filters or a split Dense has to be a new layer. Surgery is supported on chains
(each layer feeds only the next), which covers the sequential CNNs and MLPs that
fit microcontrollers; anything else is refused with a ModelError, not guessed at.
"""
from __future__ import annotations

import numpy as np

from tinycomp.errors import ModelError


def chain_layers(model) -> list:
    """The model's layers in order, after checking each feeds only the next."""
    import keras

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError("compression supports models with exactly one input and one output")
    layers = [l for l in model.layers if not isinstance(l, keras.layers.InputLayer)]
    if not layers:
        raise ModelError("model has no layers")
    if isinstance(model, keras.Sequential):
        # A chain by construction; a loaded one lists each layer's call twice
        # (Keras builds it again on load), which the check below would refuse.
        return layers
    previous = model.inputs[0]
    for layer in layers:
        try:
            source = layer.input
        except Exception:
            source = None
        # A layer reused twice, or fed by anything but its predecessor, makes the
        # model a graph; rewiring channels there needs a real dependency analysis.
        if source is not previous or len(getattr(layer, "_inbound_nodes", [None])) != 1:
            raise ModelError(
                f"layer {layer.name!r} is not part of a simple chain; compression supports "
                "sequential models (each layer feeding only the next)")
        previous = layer.output
    if previous is not model.outputs[0]:
        raise ModelError("the model's output is not its last layer")
    return layers


def clone_layer(layer, **changes):
    """A new, unbuilt layer like `layer` with config keys replaced."""
    config = layer.get_config()
    config.update(changes)
    return layer.__class__.from_config(config)


def input_shape(model) -> tuple:
    return tuple(model.inputs[0].shape[1:])


def count_macs(model) -> int:
    """Multiply-accumulates of one inference (conv, depthwise and dense layers)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            out = layer.output.shape
            kh, kw = layer.kernel_size
            total += int(np.prod(out[1:])) * kh * kw
        elif isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D)):
            cin = layer.input.shape[-1] // layer.groups
            total += int(np.prod(layer.output.shape[1:])) * int(np.prod(layer.kernel_size)) * cin
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.input.shape[1:])) * layer.units
    return total


def count_params(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.get_weights()))


def count_trainable_free_params(model) -> int:
    """Parameters that would be stored on the device (BN moving stats fold away)."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def fold_batchnorm(model):
    """Fold each BatchNormalization into the conv/dense before it, and fuse a plain
    ReLU/ReLU6 that follows into that layer's activation.

    QAT fake-quantizes the weights the device will hold; with BN still separate the
    converter would fold it *after* quantization and the trained ranges would be
    wrong. Fusing ReLU keeps a fake-quant from landing between conv and ReLU,
    which would stop TFLite from fusing them.
    """
    import keras

    layers = chain_layers(model)
    x = inputs = keras.Input(input_shape(model), name=model.inputs[0].name)
    pending = None  # (new layer, kernel, bias) waiting for a possible BN/ReLU
    out_layers = []

    def flush():
        nonlocal x, pending
        if pending is not None:
            new, kernel, bias = pending
            x = new(x)
            new.set_weights([kernel, bias])
            pending = None

    for layer in layers:
        linear = isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                    keras.layers.Dense))
        if linear and layer.get_config().get("activation") == "linear":
            flush()
            weights = layer.get_weights()
            kernel = weights[0]
            bias = weights[1] if layer.use_bias else np.zeros(kernel.shape[-1] if not isinstance(
                layer, keras.layers.DepthwiseConv2D) else kernel.shape[2] * kernel.shape[3], np.float32)
            pending = (clone_layer(layer, use_bias=True), kernel, bias)
            continue
        if isinstance(layer, keras.layers.BatchNormalization) and pending is not None:
            new, kernel, bias = pending
            gamma, beta, mean, var = _bn_params(layer)
            scale = gamma / np.sqrt(var + layer.epsilon)
            if isinstance(new, keras.layers.DepthwiseConv2D):
                kh, kw, cin, mult = kernel.shape
                kernel = (kernel.reshape(kh, kw, cin * mult) * scale).reshape(kernel.shape)
            else:
                kernel = kernel * scale
            bias = (bias - mean) * scale + beta
            pending = (new, kernel.astype(np.float32), bias.astype(np.float32))
            continue
        if pending is not None and _plain_relu(layer):
            new, kernel, bias = pending
            act = "relu" if _relu_cap(layer) is None else "relu6"
            pending = (clone_layer(new, activation=act), kernel, bias)
            flush()
            continue
        flush()
        new = clone_layer(layer)
        x = new(x)
        if layer.get_weights():
            new.set_weights(layer.get_weights())
        out_layers.append(new)
    flush()
    return keras.Model(inputs, x, name=model.name)


def _bn_params(layer):
    weights = dict(zip([w.path.split("/")[-1] for w in layer.weights], layer.get_weights()))
    n = layer.moving_mean.shape[-1]
    gamma = weights.get("gamma", np.ones(n, np.float32))
    beta = weights.get("beta", np.zeros(n, np.float32))
    return gamma, beta, weights["moving_mean"], weights["moving_variance"]


def _relu_cap(layer):
    return layer.get_config().get("max_value")


def _plain_relu(layer) -> bool:
    import keras

    if isinstance(layer, keras.layers.ReLU):
        cfg = layer.get_config()
        return (cfg.get("negative_slope", 0) == 0 and cfg.get("threshold", 0) == 0
                and cfg.get("max_value") in (None, 6, 6.0))
    if isinstance(layer, keras.layers.Activation):
        return layer.get_config().get("activation") == "relu"
    return False
