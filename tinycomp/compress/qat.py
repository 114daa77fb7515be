"""Quantization-aware training on Keras 3, and conversion of the result to INT8.

Fake-quant ops in the graph make training see int8 rounding and clipping; their
gradient is the straight-through estimator (pass inside the range, zero outside).
The TFLite converter reads the ranges straight from those ops, so a QAT model
converts to full integer with no representative dataset (FACTS.md). Activation
ranges are EMA min/max kept as non-trainable weights; they can also be frozen at
ranges chosen offline, which is how calibrate.py imposes its range choices.
"""
from __future__ import annotations

from tinycomp.errors import ModelError

from .graph import chain_layers, clone_layer, fold_batchnorm, input_shape

_registered = {}


def _classes():
    """The custom layers, defined on first use so importing tinycomp.compress stays free of TF."""
    if _registered:
        return _registered
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="tinycomp")
    class FakeQuant(keras.layers.Layer):
        """Asymmetric 8-bit fake quantization of an activation with EMA min/max."""

        def __init__(self, momentum=0.99, frozen=False, init_min=None, init_max=None, **kwargs):
            super().__init__(**kwargs)
            self.momentum = float(momentum)
            self.frozen = bool(frozen)
            self.init_min, self.init_max = init_min, init_max

        def build(self, input_shape):
            zero = keras.initializers.Constant(0.0 if self.init_min is None else self.init_min)
            one = keras.initializers.Constant(1.0 if self.init_max is None else self.init_max)
            self.min = self.add_weight(name="min", shape=(), initializer=zero, trainable=False)
            self.max = self.add_weight(name="max", shape=(), initializer=one, trainable=False)
            # 0 until the first training batch: the first batch sets the range
            # outright, otherwise the EMA would crawl from the arbitrary [0, 1].
            seen = 1.0 if self.init_min is not None else 0.0
            self.seen = self.add_weight(name="seen", shape=(), initializer=keras.initializers.Constant(seen),
                                        trainable=False)

        def call(self, x, training=False):
            if training and not self.frozen:
                lo = tf.minimum(tf.reduce_min(x), 0.0)  # the range must hold 0 exactly
                hi = tf.maximum(tf.reduce_max(x), 0.0)
                m = self.momentum * self.seen
                self.min.assign(m * self.min + (1.0 - m) * lo)
                self.max.assign(m * self.max + (1.0 - m) * hi)
                self.seen.assign(1.0)
            return tf.quantization.fake_quant_with_min_max_vars(x, self.min, self.max, num_bits=8)

        def get_config(self):
            return {**super().get_config(), "momentum": self.momentum, "frozen": self.frozen,
                    "init_min": self.init_min, "init_max": self.init_max}

    def quant_kernel(kernel, depthwise=False, per_channel=True, bits=8, stochastic=False):
        # Symmetric per-output-channel with narrow range [-127, 127]: exactly the
        # int8 weight scheme TFLite uses, so training sees the device's weights.
        # bits=4: the 16 levels -8..7 of scale bound / 7 (range [-8s, 7s], zero
        # exact), which compress/int4.py writes as INT4 after conversion.
        shape = kernel.shape
        k = tf.reshape(kernel, (*shape[:-2], shape[-2] * shape[-1])) if depthwise else kernel
        if bits == 4:
            axes = list(range(len(k.shape) - 1)) if per_channel else None
            bound = tf.reduce_max(tf.abs(k), axis=axes)
            bound = tf.maximum(bound, tf.maximum(1e-3 * tf.reduce_max(bound), 1e-8))
            lo, hi = -bound * (8.0 / 7.0), bound
            q = (tf.quantization.fake_quant_with_min_max_vars_per_channel(k, lo, hi, num_bits=4)
                 if per_channel else tf.quantization.fake_quant_with_min_max_vars(k, lo, hi, num_bits=4))
            return tf.reshape(q, shape) if depthwise else q
        if not per_channel:
            bound = tf.maximum(tf.reduce_max(tf.abs(k)), 1e-8)
        else:
            bound = tf.reduce_max(tf.abs(k), axis=list(range(len(k.shape) - 1)))
            # A channel pruned to (nearly) all zeros would get a near-zero weight
            # scale, so its bias scale (input scale x weight scale) would be tiny
            # and its int32 bias would saturate on conversion. Its weights are zero
            # either way: give it a scale near the layer's largest instead.
            bound = tf.maximum(bound, tf.maximum(1e-3 * tf.reduce_max(bound), 1e-8))
        if stochastic:
            # floor(w/s + u), u uniform in [0, 1): unbiased, E[q] = w, and a new
            # draw each step; the gradient passes straight through.
            step = bound / 127.0
            q = tf.clip_by_value(tf.floor(k / step + tf.random.uniform(tf.shape(k))), -127.0, 127.0) * step
            q = k + tf.stop_gradient(q - k)
        elif per_channel:
            q = tf.quantization.fake_quant_with_min_max_vars_per_channel(k, -bound, bound, num_bits=8,
                                                                          narrow_range=True)
        else:
            q = tf.quantization.fake_quant_with_min_max_vars(k, -bound, bound, num_bits=8, narrow_range=True)
        return tf.reshape(q, shape) if depthwise else q

    class QuantKernel:
        """The fake-quantized kernel's options, kept in the config: weight_bits
        (8, or 4: INT4 filters) and rounding ("stochastic": training steps round
        the weights stochastically; inference and conversion always round to
        nearest, as the converter does)."""

        def __init__(self, *args, weight_bits=8, rounding="nearest", **kwargs):
            super().__init__(*args, **kwargs)
            self.weight_bits = int(weight_bits)
            self.rounding = rounding

        def quantized(self, training, kernel=None, **how):
            return quant_kernel(self.kernel if kernel is None else kernel, bits=self.weight_bits,
                                stochastic=bool(training) and self.rounding == "stochastic", **how)

        def finish(self, out):
            """The layer's bias and activation after its product."""
            if self.bias is not None:
                out = out + self.bias
            return self.activation(out) if self.activation is not None else out

        def get_config(self):
            return {**super().get_config(), "weight_bits": self.weight_bits, "rounding": self.rounding}

    @keras.saving.register_keras_serializable(package="tinycomp")
    class QuantConv2D(QuantKernel, keras.layers.Conv2D):
        def call(self, inputs, training=None):
            out = self.convolution_op(inputs, self.quantized(training))
            return self.finish(out)

    @keras.saving.register_keras_serializable(package="tinycomp")
    class QuantConv1D(QuantKernel, keras.layers.Conv1D):
        """A Conv1D computed as the 1 x k CONV_2D the converter writes. The kernel
        is fake-quantized in that 4-D form: quantized in Conv1D's 3-D form, TF
        2.21's converter loses the per-channel axis through the EXPAND_DIMS of
        the kernel and fails."""

        def call(self, inputs, training=None):
            if self.padding == "causal":  # left padding only, then a VALID conv
                left = self.dilation_rate[0] * (self.kernel_size[0] - 1)
                inputs = tf.pad(inputs, [[0, 0], [left, 0], [0, 0]])
            kernel = tf.reshape(self.kernel, (1, *self.kernel.shape))
            out = tf.nn.conv2d(tf.expand_dims(inputs, 1), self.quantized(training, kernel=kernel),
                               strides=(1, 1, self.strides[0], 1),
                               padding="SAME" if self.padding == "same" else "VALID",
                               dilations=(1, 1, self.dilation_rate[0], 1))
            out = tf.squeeze(out, 1)
            return self.finish(out)

    @keras.saving.register_keras_serializable(package="tinycomp")
    class QuantDepthwiseConv2D(QuantKernel, keras.layers.DepthwiseConv2D):
        def call(self, inputs, training=None):
            out = keras.ops.depthwise_conv(inputs, self.quantized(training, depthwise=True),
                                           strides=self.strides, padding=self.padding,
                                           dilation_rate=self.dilation_rate, data_format=self.data_format)
            return self.finish(out)

    @keras.saving.register_keras_serializable(package="tinycomp")
    class QuantDense(QuantKernel, keras.layers.Dense):
        def call(self, inputs, training=None):
            # Per-tensor: the converter transposes a Dense kernel to FULLY_CONNECTED's
            # (out, in) layout and rejects a per-channel axis that would move with it.
            return self.finish(keras.ops.matmul(inputs, self.quantized(training, per_channel=False)))

    _registered.update(FakeQuant=FakeQuant, QuantConv2D=QuantConv2D, QuantConv1D=QuantConv1D,
                       QuantDepthwiseConv2D=QuantDepthwiseConv2D, QuantDense=QuantDense)
    return _registered


def custom_objects() -> dict:
    return dict(_classes())


# Layers whose output keeps the input's quantization in TFLite (a fake-quant after
# them would force a requantize the int8 kernels do not want).
_SAME_RANGE = ("MaxPooling2D", "GlobalMaxPooling2D", "MaxPooling1D", "GlobalMaxPooling1D", "Flatten", "Reshape",
               "Dropout", "ZeroPadding2D", "ZeroPadding1D")


def quantize_model(model, ranges: dict | None = None, rounding: str = "nearest", weight_bits: int = 8,
                   int4=()):
    """A QAT copy of `model`: BN folded, ReLU fused, weights and activations fake-quantized.

    `ranges` maps activation names ("input" or a layer name of the folded model) to
    fixed (min, max); those fake-quants are frozen. Without it every range is learnt.
    `rounding` is the weights' in training steps: "nearest" or "stochastic".
    weight_bits 4: every kernel fake-quantized to 16 levels (INT4 after conversion);
    else only the kernels of the layers named in `int4`, the others to 256.
    """
    import keras

    C = _classes()
    base = fold_batchnorm(model)
    layers = chain_layers(base)
    ranges = ranges or {}
    swap = {"Conv2D": C["QuantConv2D"], "Conv1D": C["QuantConv1D"], "DepthwiseConv2D": C["QuantDepthwiseConv2D"], "Dense": C["QuantDense"]}

    def fq(x, name):
        lo_hi = ranges.get(name)
        layer = C["FakeQuant"](name=f"fq_{name}", frozen=lo_hi is not None,
                               init_min=None if lo_hi is None else float(lo_hi[0]),
                               init_max=None if lo_hi is None else float(lo_hi[1]))
        return layer(x)

    x = inputs = keras.Input(input_shape(base), name="input")
    x = fq(x, "input")
    for layer in layers:
        kind = type(layer).__name__
        weights = layer.get_weights()
        cfg = layer.get_config()
        if kind in ("Dropout",):
            continue
        if kind in swap:
            if cfg.get("groups", 1) != 1:
                raise ModelError(f"QAT does not support grouped convolution in layer {layer.name!r} ({kind})")
            act = cfg.get("activation")
            split = act not in ("linear", "relu", "relu6")  # softmax etc.: quantize the logits first
            cfg.pop("name")
            new = swap[kind].from_config({**cfg, "activation": "linear" if split else act,
                                          "name": layer.name, "rounding": rounding,
                                          "weight_bits": 4 if layer.name in int4 else weight_bits})
            x = new(x)
            new.set_weights(weights)
            x = fq(x, layer.name)
            if split:
                x = keras.layers.Activation(act, name=f"{layer.name}_{act}")(x)
                if act != "softmax":  # TFLite fixes softmax's output scale itself
                    x = fq(x, f"{layer.name}_{act}")
            continue
        if kind == "Softmax":
            x = clone_layer(layer)(x)
            continue
        new = clone_layer(layer)
        x = new(x)
        if weights:
            raise ModelError(f"QAT does not support layer {layer.name!r} ({kind}) with weights")
        if kind not in _SAME_RANGE:
            x = fq(x, layer.name)
    return keras.Model(inputs, x, name=model.name)


def qat_train(model, x, y, epochs: int = 3, batch_size: int = 32, learning_rate: float = 5e-4,
              temperature: float | None = None, rounding: str = "nearest", weight_bits: int = 8, int4=()):
    """Quantize `model` and fine-tune it with fake quantization; returns the QAT model.
    With a temperature, y holds distill.pack rows. `model` itself is not changed."""
    from .prune import compile_for_finetune

    qmodel = quantize_model(model, rounding=rounding, weight_bits=weight_bits, int4=int4)
    # One pass in training mode seeds every EMA range before the weights move.
    qmodel(x[: min(len(x), 256)], training=True)
    compile_for_finetune(qmodel, learning_rate, temperature)
    # Weights pruned earlier must stay exact zeros through QAT, or the sparsity
    # paid for is lost: re-zero them after every step.
    masks = [(l.kernel, l.kernel.numpy() != 0.0) for l in qmodel.layers
             if getattr(l, "kernel", None) is not None]
    masks = [(k, m) for k, m in masks if not m.all()]
    callbacks = []
    if masks:
        import keras

        class KeepZeros(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                for kernel, mask in masks:
                    kernel.assign(kernel.numpy() * mask)

        callbacks.append(KeepZeros())
    if epochs > 0:
        qmodel.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, shuffle=True, callbacks=callbacks)
    if temperature is not None:  # distillation's loss is for training: what leaves takes labels
        compile_for_finetune(qmodel, learning_rate)
    return qmodel


def qat_to_tflite(qmodel) -> bytes:
    """Convert a fake-quantized model to full-integer INT8 .tflite (int8 in and out, batch 1).

    No representative dataset: every range comes from the fake-quant ops, so the
    converted model uses exactly the ranges training (or calibrate.py) chose.
    """
    import tensorflow as tf

    from tinycomp.frontends.keras import _converter_message

    import keras

    shape = input_shape(qmodel)
    # Batch 1 avoids SHAPE/STRIDED_SLICE ops around the reshape (FACTS.md);
    # from_keras_model, unlike a traced concrete function, lets the converter see
    # the fake-quant ops and take the QAT path.
    with keras.saving.custom_object_scope(custom_objects()):
        fixed = keras.models.clone_model(qmodel, input_tensors=keras.Input(shape, batch_size=1, name="input"))
    fixed.set_weights(qmodel.get_weights())
    converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    # No supported_ops=INT8 here: that demands a representative dataset even when
    # every range is in the graph. The result is still checked to be all-integer.
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    try:
        buf = bytes(converter.convert())
    except Exception as exc:
        raise ModelError(f"TFLite conversion of the QAT model failed: {_converter_message(exc)}") from None
    floats = float_tensors(buf)
    if floats:
        raise ModelError(f"QAT model did not convert to full integer: float tensors {', '.join(floats[:5])}")
    return buf


def float_tensors(buf: bytes) -> list[str]:
    """Names of float32 tensors in a .tflite (empty for a full-integer model),
    from the flatbuffer: LiteRT's interpreter cannot load every model TFLM
    runs (INT4 filters make DEPTHWISE_CONV_2D version 7, which it lacks)."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    sub = fb.read_model_from_bytearray(bytearray(buf)).subgraphs[0]
    names = [t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name)
             for t in sub.tensors or () if t.type == 0]  # FLOAT32
    return names
