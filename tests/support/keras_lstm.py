"""A Keras LSTM keyword spotter converted by the TFLite converter to an
integer UNIDIRECTIONAL_SEQUENCE_LSTM, the way users get one.

Keras 3's LSTM does not convert to that fused op with TF 2.21 (the converter
leaves a WHILE loop, and int8 calibration of it crashed); tf_keras (Keras 2,
installed by the Makefile without its `tensorflow` requirement, which
tensorflow-cpu fills) does. The conversion runs in a subprocess, so the test
process never imports TensorFlow, and is cached under .cache/models/ by a
hash of this file.

Run as `python -m tests.support.keras_lstm OUT.tflite` to convert.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import models as mlperf

FRAMES, FEATURES, CELLS, WORDS = 20, 10, 16, 4
REPO = Path(__file__).resolve().parents[2]


def _convert() -> bytes:
    """Seeded weights (bit-exactness needs no training), int8 in and out,
    calibrated on seeded normal features."""
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
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def keras_lstm_model() -> bytes:
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

    def produce() -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "m.tflite"
            done = subprocess.run([sys.executable, "-m", "tests.support.keras_lstm", str(out)],
                                  cwd=REPO, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"converting the Keras LSTM failed:\n{done.stderr[-3000:]}")
            return out.read_bytes()

    return mlperf.cached_file(mlperf.CACHE_DIR / f"keras-lstm-{digest}.tflite", produce)


def utterances(n: int, seed: int) -> np.ndarray:
    """n int8 inputs (1, FRAMES, FEATURES), the first two at the extremes."""
    x = np.random.default_rng(seed).integers(-128, 128, (n, 1, FRAMES, FEATURES)).astype(np.int8)
    x[0], x[1] = -128, 127
    return x


if __name__ == "__main__":
    Path(sys.argv[1]).write_bytes(_convert())
