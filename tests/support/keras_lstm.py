"""A Keras LSTM keyword spotter converted by the TFLite converter to an
integer UNIDIRECTIONAL_SEQUENCE_LSTM, the way users get one.

Keras 3's LSTM does not convert to that fused op with TF 2.21 (the converter
leaves a WHILE loop, and int8 calibration of it crashed); tf_keras (Keras 2,
installed by the Makefile without its `tensorflow` requirement, which
tensorflow-cpu fills) does. The conversion runs in a subprocess, so the test
process never imports TensorFlow, and is cached under .cache/models/ by a
hash of this file.

Run as `python -m tests.support.keras_lstm int8|float-edges OUT.tflite` to convert.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tests.support.models import converted_in_subprocess

FRAMES, FEATURES, CELLS, WORDS = 20, 10, 16, 4


def _convert(float_edges: bool) -> bytes:
    """Seeded weights (bit-exactness needs no training), calibrated on seeded
    normal features; int8 in and out, or with float_edges the converter's
    default: float32 in and out around the int8 graph (QUANTIZE, DEQUANTIZE)."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.InputLayer(input_shape=(FRAMES, FEATURES), batch_size=1),
        keras.layers.LSTM(CELLS),
        keras.layers.Dense(WORDS, activation="softmax"),
    ])
    calib = np.random.default_rng(1).normal(0, 1, (64, 1, FRAMES, FEATURES)).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in calib)
    if not float_edges:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def keras_lstm_model(float_edges: bool = False) -> bytes:
    kind = "float-edges" if float_edges else "int8"
    return converted_in_subprocess("tests.support.keras_lstm", kind, f"keras-lstm-{kind}", "the Keras LSTM")


def utterances(n: int, seed: int, float_edges: bool = False) -> np.ndarray:
    """n inputs (1, FRAMES, FEATURES): int8, the first two at the extremes; or
    float32 features, the first two far outside the calibrated range."""
    rng = np.random.default_rng(seed)
    if float_edges:
        x = rng.normal(0, 1, (n, 1, FRAMES, FEATURES)).astype(np.float32)
        x[0], x[1] = -50.0, 50.0
        return x
    x = rng.integers(-128, 128, (n, 1, FRAMES, FEATURES)).astype(np.int8)
    x[0], x[1] = -128, 127
    return x


if __name__ == "__main__":
    Path(sys.argv[2]).write_bytes(_convert(sys.argv[1] == "float-edges"))
