"""The four MLPerf Tiny architectures in Keras, with seeded weights (no training).

They are what tinycomp is measured on (docs: ANCHORS.md). The MAC counts of
these builds equal the figures TFLM + CMSIS-NN were measured with, so only the
layer structure matters; weights are random but seeded, and BatchNorm layers
get non-trivial statistics so the converter's BN folding is exercised.

Keras and TensorFlow are imported inside the functions: `tflite_bytes` served
from the on-disk cache must not pay for them.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

NAMES = ("kws", "vww", "ic", "ad")

# (input shape, classes or output width, MACs from ANCHORS.md)
SPECS = {
    "kws": ((49, 10, 1), 12, 2_656_768),
    "vww": ((96, 96, 3), 2, 7_489_664),
    "ic": ((32, 32, 3), 10, 12_501_632),
    "ad": ((640,), 640, 264_192),
}

_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = _ROOT / ".cache" / "models"


def build(name: str, seed: int = 0):
    """The float Keras model `name` (one of NAMES) with seeded weights."""
    from tinycomp.frontends.keras import quiet_tensorflow

    with quiet_tensorflow():  # TF's import prints C++ log lines
        import keras

    builders = {"kws": _ds_cnn, "vww": _mobilenet_v1_025, "ic": _resnet8, "ad": _fc_autoencoder}
    if name not in builders:
        raise KeyError(f"unknown benchmark model {name!r}; choose one of {', '.join(NAMES)}")
    shape, width, _ = SPECS[name]
    # Auto-generated layer names ("conv2d_7") count per process and end up as
    # tensor names in the .tflite; resetting them makes the bytes reproducible.
    keras.backend.clear_session()
    model = builders[name](keras, keras.layers, shape, width)
    _seed_weights(model, seed)
    return model


def representative_data(name: str, n: int = 100, seed: int = 0) -> np.ndarray:
    """`n` seeded random float32 inputs for `name`, in a range like its real data."""
    shape, _, _ = SPECS[name]
    rng = np.random.default_rng(seed)
    if name == "kws":
        # MFCCs: the first coefficients carry most energy, later ones shrink.
        scale = np.linspace(8.0, 1.0, shape[1], dtype=np.float32)[None, None, :, None]
        x = rng.standard_normal((n, *shape)) * scale
    elif name == "ad":
        # Log-mel energies in dB, per-band offsets around a noisy mean.
        x = rng.normal(-20.0, 6.0, (n, *shape)) + rng.normal(0.0, 3.0, shape)
    else:
        # Images scaled to [0, 1].
        x = rng.uniform(0.0, 1.0, (n, *shape))
    return x.astype(np.float32)


def count_macs(model) -> int:
    """Multiply-accumulates of the conv, depthwise and dense layers of a Keras model."""
    import keras

    total = 0
    for layer in model.layers:
        out = layer.output.shape
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += int(np.prod(out[1:])) * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            total += int(np.prod(out[1:])) * kh * kw * cin
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(out[1:])) * layer.input.shape[-1]
    return total


def source_hash() -> str:
    """Changes when this file or the converter front end changes: either alters the .tflite."""
    from tinycomp.frontends import keras as frontend

    digest = hashlib.sha256()
    for path in (Path(__file__), Path(frontend.__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_path(name: str) -> Path:
    return CACHE_DIR / f"{name}-{source_hash()}.tflite"


def tflite_bytes(name: str) -> bytes:
    """INT8 .tflite of `name`, converted once and then read from .cache/models/."""
    if name not in SPECS:
        raise KeyError(f"unknown benchmark model {name!r}; choose one of {', '.join(NAMES)}")
    path = cache_path(name)
    return cached_file(path, lambda: _convert(name))


def cached_file(path: Path, produce) -> bytes:
    """Bytes of `path`, calling produce() -> bytes to create it if missing.

    A file lock keeps parallel test workers (pytest -n 2) from converting the
    same model twice, and the rename makes a half-written file impossible.
    Files are named <name>-<source hash>.<ext>; older hashes of the same name
    are deleted so the cache does not grow with every edit. produce() must not
    call cached_file itself: the lock is not re-entrant.
    """
    import fcntl

    if path.is_file():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            return path.read_bytes()
        data = produce()
        tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        name = path.stem.rsplit("-", 1)[0]
        for old in path.parent.glob(f"{name}-*"):
            if old.suffix != ".tmp" and old.name.split(".")[0] != path.stem:
                old.unlink(missing_ok=True)
    return data


def _convert(name: str) -> bytes:
    import tempfile

    from tinycomp.frontends.keras import keras_to_tflite

    model = build(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.keras"
        model.save(path)
        return keras_to_tflite(path, representative_data(name, 100, seed=1))


def _seed_weights(model, seed: int) -> None:
    """Overwrite every weight with seeded values of a sensible scale.

    He-scaled kernels keep activations from exploding or vanishing through the
    depth of the network, so every layer's int8 range is used.
    """
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape
            layer.set_weights([
                rng.uniform(0.5, 1.5, channels),      # gamma
                rng.normal(0.0, 0.1, channels),       # beta
                rng.normal(0.0, 0.1, channels),       # moving mean
                rng.uniform(0.5, 1.5, channels),      # moving variance
            ])
        elif layer.weights:
            values = []
            for w in layer.weights:
                shape = tuple(w.shape)
                if len(shape) == 1:  # bias
                    values.append(rng.normal(0.0, 0.05, shape))
                else:
                    values.append(rng.normal(0.0, np.sqrt(2.0 / _fan_in(layer, shape)), shape))
            layer.set_weights([v.astype(np.float32) for v in values])


def _fan_in(layer, shape) -> int:
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return shape[0] * shape[1]  # each output channel sees one input channel
    return int(np.prod(shape[:-1]))


# --- Architectures (MLPerf Tiny v1.x reference models) ----------------------

def _conv_bn_relu(L, x, filters, kernel, strides=1):
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    return L.ReLU()(x)


def _dw_bn_relu(L, x, strides=1):
    x = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    return L.ReLU()(x)


def _classifier_head(L, x, classes):
    """Global average pool, then a softmax dense layer: the MLPerf Tiny heads."""
    x = L.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = L.Flatten()(x)
    return L.Dense(classes, activation="softmax")(x)


def _ds_cnn(keras, L, shape, classes):
    """Keyword spotting: DS-CNN with 64 filters, 4 depthwise-separable blocks."""
    inputs = keras.Input(shape)
    x = _conv_bn_relu(L, inputs, 64, (10, 4), strides=2)
    for _ in range(4):
        x = _dw_bn_relu(L, x)
        x = _conv_bn_relu(L, x, 64, 1)
    outputs = _classifier_head(L, x, classes)
    return keras.Model(inputs, outputs, name="kws_ds_cnn")


def _mobilenet_v1_025(keras, L, shape, classes):
    """Visual wake words: MobileNetV1 with width multiplier 0.25."""
    inputs = keras.Input(shape)
    x = _conv_bn_relu(L, inputs, 8, 3, strides=2)
    # (pointwise filters, depthwise stride) of the 13 separable blocks
    blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
    for filters, strides in blocks:
        x = _dw_bn_relu(L, x, strides)
        x = _conv_bn_relu(L, x, filters, 1)
    outputs = _classifier_head(L, x, classes)
    return keras.Model(inputs, outputs, name="vww_mobilenet_v1_025")


def _resnet8(keras, L, shape, classes):
    """Image classification: ResNet-8 for CIFAR-10 (three residual stacks)."""
    inputs = keras.Input(shape)
    x = _conv_bn_relu(L, inputs, 16, 3)
    for filters, strides in ((16, 1), (32, 2), (64, 2)):
        y = _conv_bn_relu(L, x, filters, 3, strides)
        y = L.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = L.BatchNormalization()(y)
        if strides != 1:
            # A 1x1 strided projection matches the shortcut to the new shape.
            x = L.Conv2D(filters, 1, strides=strides, padding="same")(x)
        x = L.ReLU()(L.Add()([x, y]))
    outputs = _classifier_head(L, x, classes)
    return keras.Model(inputs, outputs, name="ic_resnet8")


def _fc_autoencoder(keras, L, shape, width):
    """Anomaly detection: dense autoencoder 640-128x4-8-128x4-640, BN + ReLU between."""
    inputs = keras.Input(shape)
    x = inputs
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = L.Dense(units)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
    outputs = L.Dense(width)(x)
    return keras.Model(inputs, outputs, name="ad_fc_autoencoder")
