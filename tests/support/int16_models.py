"""A small Keras CNN converted with TFLite's 16x8 mode
(EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8, int16 input and
output), cached under .cache/models/ by a hash of this file (TensorFlow is
imported only on a cold cache)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from benchmarks import models as mlperf

SHAPE = (12, 12, 2)


def calibration(n: int = 64, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, size=(n, *SHAPE)).astype(np.float32)


def cnn_16x8() -> bytes:
    """Conv2D (ReLU) -> DepthwiseConv2D -> MaxPool2D -> Conv2D, a residual
    Add, Multiply, AveragePooling2D, Flatten, Dense (ReLU), then tanh and
    sigmoid branches with a global-average (MEAN) one, concatenated, Dense,
    softmax: random but seeded weights (the arithmetic, not accuracy, is
    under test)."""
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

    def produce() -> bytes:
        from tinycomp.frontends.keras import quiet_tensorflow
        with quiet_tensorflow():
            import keras
            import tensorflow as tf
            keras.utils.set_random_seed(3)
            x = keras.Input(SHAPE, batch_size=1)
            y = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(x)
            y = keras.layers.DepthwiseConv2D(3, padding="same")(y)
            y = keras.layers.MaxPooling2D(2)(y)
            z = keras.layers.Conv2D(6, 1, use_bias=False)(y)
            y = keras.layers.Add()([y, z])
            y = keras.layers.Multiply()([y, y])
            g = keras.layers.GlobalAveragePooling2D()(y)
            y = keras.layers.AveragePooling2D(2)(y)
            y = keras.layers.Flatten()(y)
            y = keras.layers.Dense(16, activation="relu")(y)
            y = keras.layers.Concatenate()([keras.layers.Activation("tanh")(y),
                                            keras.layers.Activation("sigmoid")(y), g])
            y = keras.layers.Dense(5, activation="softmax")(y)
            model = keras.Model(x, y)
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([s[None]] for s in calibration())
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            converter.inference_input_type = tf.int16
            converter.inference_output_type = tf.int16
            return bytes(converter.convert())

    return mlperf.cached_file(mlperf.CACHE_DIR / f"cnn16x8-{digest}.tflite", produce)


def inputs(model_bytes: bytes, n: int = 16, seed: int = 9) -> np.ndarray:
    """int16 samples quantized with the model's input scale, plus extremes."""
    from tinycomp.frontends.tflite import parse_tflite
    graph = parse_tflite(model_bytes)
    t = graph.tensor(graph.inputs[0])
    x = np.random.default_rng(seed).normal(0, 1.2, size=(n, *t.shape)).astype(np.float32)
    q = np.clip(np.round(x / t.scale) + t.zero_point, -32768, 32767).astype(np.int16)
    q[0].fill(32767)
    q[1].fill(-32768)
    return q
