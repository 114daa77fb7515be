"""Small real data sets that ship offline, and a quick model trained on one.

scikit-learn's digits (8x8 grayscale, 10 classes) is the project's smallest
real task: a CNN reaches >95% test accuracy in seconds on two CPU cores, so the
demo and the tests can train it instead of shipping a model file.
TensorFlow is imported only inside `train_digits_cnn`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIGITS_SHAPE = (8, 8, 1)
DIGITS_CLASSES = 10


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray  # float32 (N, 8, 8, 1) in [0, 1]
    y_train: np.ndarray  # int64 (N,)
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(seed: int = 0, test_fraction: float = 0.25) -> Split:
    """Digits as float32 NHWC images in [0, 1] with a seeded, stratified split."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    # Pixel values are counts 0..16 of a 4x4 block; scale to [0, 1].
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return Split(x_train, y_train, x_test, y_test)


def build_digits_cnn(seed: int = 0):
    """Untrained digits CNN: conv + BN, depthwise, pooling, conv, dense, softmax.

    The layers cover the kernel families tinycomp compiles (CONV_2D with folded
    BN, DEPTHWISE_CONV_2D, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX).
    """
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(seed)
    # Layer names are explicit: Keras' automatic ones depend on how many
    # layers the process made before, and reports and tests name layers.
    inputs = keras.Input(DIGITS_SHAPE, name="input")
    x = L.Conv2D(16, 3, padding="same", use_bias=False, name="conv2d")(inputs)
    x = L.BatchNormalization(name="batch_normalization")(x)
    x = L.ReLU(name="re_lu")(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu", name="depthwise_conv2d")(x)
    x = L.MaxPooling2D(2, name="max_pooling2d")(x)
    x = L.Conv2D(32, 3, padding="same", activation="relu", name="conv2d_1")(x)
    x = L.MaxPooling2D(2, name="max_pooling2d_1")(x)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(DIGITS_CLASSES, activation="softmax", name="dense_10")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def train_digits_cnn(epochs: int = 20, seed: int = 0, split: Split | None = None):
    """Train the digits CNN on the seeded split; returns the float keras.Model."""
    from tinycomp.frontends.keras import quiet_tensorflow

    split = split or load_digits(seed)
    with quiet_tensorflow():
        import keras

        model = build_digits_cnn(seed)
        model.compile(
            optimizer=keras.optimizers.Adam(3e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        model.fit(split.x_train, split.y_train, batch_size=32, epochs=epochs, shuffle=True, verbose=0)
    return model


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a float Keras model."""
    predictions = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(predictions, axis=-1) == y))
