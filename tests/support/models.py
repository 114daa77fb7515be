"""Models the tests compile: cached INT8 .tflite bytes, converted once per cache.

Everything lands in .cache/models/ under the repository root, keyed by a hash
of the sources that produce it, so a warm cache serves tests without importing
TensorFlow; only a cold cache trains or converts (a few seconds per model).
Safe under pytest-xdist: a file lock makes one worker produce, the others wait.

    from tests.support.models import mlperf_tflite, digits_model
    buf = mlperf_tflite("kws")
    d = digits_model(); d.tflite, d.x_test, d.y_test, d.float_probs
"""
from __future__ import annotations

import functools
import hashlib
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from benchmarks import models as mlperf
from tinycomp.outputs import write_atomic

MLPERF_NAMES = mlperf.NAMES
CACHE_DIR = mlperf.CACHE_DIR
DIGITS_EPOCHS = 15
DIGITS_SEED = 0


@functools.lru_cache(maxsize=None)
def mlperf_tflite(name: str) -> bytes:
    """INT8 .tflite of an MLPerf Tiny model: "kws", "vww", "ic" or "ad"."""
    return mlperf.tflite_bytes(name)


def mlperf_inputs(name: str, n: int = 4, seed: int = 123) -> np.ndarray:
    """Float inputs for an MLPerf model, from a different seed than its calibration set."""
    return mlperf.representative_data(name, n, seed)


@dataclass(frozen=True)
class Digits:
    tflite: bytes            # INT8 model, int8 input (1, 8, 8, 1) and output (1, 10)
    keras_path: Path         # the trained float model, for float-side comparisons or compression
    x_test: np.ndarray       # float32 (450, 8, 8, 1) in [0, 1]
    y_test: np.ndarray       # int64 (450,)
    float_probs: np.ndarray  # float model's softmax on x_test, float32 (450, 10)
    x_calibration: np.ndarray  # the float training samples used to calibrate the int8 model

    @property
    def float_accuracy(self) -> float:
        return float(np.mean(np.argmax(self.float_probs, axis=-1) == self.y_test))


@functools.lru_cache(maxsize=None)
def digits_model() -> Digits:
    """The trained digits CNN (tinycomp.datasets), its INT8 conversion and test set."""
    from tinycomp import datasets

    stem = CACHE_DIR / f"digits-{_digits_hash()}"
    keras_path, npz_path = stem.with_suffix(".keras"), stem.with_suffix(".npz")
    split = datasets.load_digits(DIGITS_SEED)
    x_calibration = split.x_train[:300]

    def produce() -> bytes:
        # Written before the .tflite, which cached_file writes last: when the
        # .tflite exists, so do these.
        from tinycomp.frontends.keras import keras_to_tflite

        model = datasets.train_digits_cnn(DIGITS_EPOCHS, DIGITS_SEED, split)
        write_atomic(keras_path, lambda p: model.save(p))
        probs = model.predict(split.x_test, batch_size=256, verbose=0).astype(np.float32)
        write_atomic(npz_path, lambda p: np.savez(p, float_probs=probs))
        return keras_to_tflite(keras_path, x_calibration)

    tflite = mlperf.cached_file(stem.with_suffix(".tflite"), produce)
    with np.load(npz_path) as saved:
        probs = saved["float_probs"]
    return Digits(tflite, keras_path, split.x_test, split.y_test, probs, x_calibration)


def converted_in_subprocess(module: str, kind: str, cache_name: str, what: str) -> bytes:
    """The .tflite that `python -m module kind OUT` writes (the module imports
    TensorFlow; this process need not), cached as
    <cache_name>-<hash of the module's source>.tflite under .cache/models/."""
    root = Path(__file__).resolve().parents[2]
    source = root / (module.replace(".", "/") + ".py")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]

    def produce() -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "m.tflite"
            done = subprocess.run([sys.executable, "-m", module, kind, str(out)],
                                  cwd=root, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"converting {what} failed:\n{done.stderr[-3000:]}")
            return out.read_bytes()

    return mlperf.cached_file(mlperf.CACHE_DIR / f"{cache_name}-{digest}.tflite", produce)


@pytest.fixture(scope="session")
def digits() -> Digits:
    return digits_model()


@pytest.fixture(scope="session", params=MLPERF_NAMES)
def mlperf_model(request) -> tuple[str, bytes]:
    """(name, .tflite bytes) for each MLPerf Tiny model in turn."""
    return request.param, mlperf_tflite(request.param)


def _digits_hash() -> str:
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for rel in ("tinycomp/datasets.py", "tinycomp/frontends/keras.py", "tests/support/models.py"):
        digest.update((root / rel).read_bytes())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def digits_default_conversion() -> bytes:
    """The digits CNN converted as a new user would: TFLiteConverter with a
    representative dataset and otherwise the converter's defaults, so float32
    input and output around the integer graph (QUANTIZE first, DEQUANTIZE
    last), and a dynamic batch (SHAPE -> STRIDED_SLICE -> PACK before the
    flattening RESHAPE, which tinycomp folds at build time)."""
    d = digits_model()  # before the lock below: cached_file is not re-entrant

    def produce() -> bytes:
        from tinycomp.frontends.keras import quiet_tensorflow
        with quiet_tensorflow():
            import keras
            import tensorflow as tf
            model = keras.models.load_model(d.keras_path, compile=False)
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([s[None]] for s in d.x_calibration[:100])
            return bytes(converter.convert())

    return mlperf.cached_file(CACHE_DIR / f"defaultconv_digits-{_digits_hash()}.tflite", produce)
