"""The additive-noise prediction of what INT8 costs, against Monte Carlo for its
closed forms and against the INT8 model (TFLM) on two architectures."""
import math

import numpy as np
import pytest

from tinycomp.compress import noise


def test_kl_of_small_logit_noise_matches_monte_carlo():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3.0, size=(400, 10))
    p = noise.analysis.softmax(z)
    variance = 0.01
    softmax, kl = noise.analysis.softmax, noise.analysis.kl_divergence
    draws = [kl(p, softmax(z + rng.normal(scale=math.sqrt(variance), size=z.shape))) for _ in range(20)]
    assert noise.predicted_kl(p, variance) == pytest.approx(np.mean(draws), rel=0.1)
    assert noise.predicted_kl(p, 0.0) == 0.0


def test_accuracy_under_logit_noise_matches_monte_carlo():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(2000, 2))  # two classes: the runner-up is the only way to flip
    y = rng.integers(0, 2, size=2000)
    variance = 0.3
    noisy = [np.mean((z + rng.normal(scale=math.sqrt(variance), size=z.shape)).argmax(-1) == y) for _ in range(50)]
    assert noise.predicted_accuracy(z, y, variance) == pytest.approx(np.mean(noisy), abs=0.01)
    assert noise.predicted_accuracy(z, y, 0.0) == np.mean(z.argmax(-1) == y)
    # Large margins never flip, whatever the label.
    wide = np.array([[10.0, 0.0, -10.0]] * 4)
    assert noise.predicted_accuracy(wide, np.array([0, 0, 1, 2]), 0.01) == pytest.approx(0.5)


def _mlp(d):
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input(d.x_train.shape[1:]), keras.layers.Flatten(),
                              keras.layers.Dense(48, activation="relu"), keras.layers.Dense(24, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(d.x_train, d.y_train, epochs=15, batch_size=32, verbose=0)
    return model


@pytest.mark.tf
@pytest.mark.parametrize("architecture", ["cnn", "mlp"])
def test_prediction_tracks_the_int8_model(architecture):
    import keras

    from tests.support.models import digits_model
    from tinycomp.compress import qat
    from tinycomp.compress.calibrate import calibrated_model
    from tinycomp.compress.qat import custom_objects
    from tinycomp.datasets import load_digits

    d = load_digits(1)
    model = (keras.models.load_model(digits_model().keras_path, compile=False, custom_objects=custom_objects())
             if architecture == "cnn" else _mlp(d))
    tflite = qat.qat_to_tflite(calibrated_model(model, d.x_train[:300], "minmax")[0])
    rows, predicted, measured = noise.predicted_and_measured(model, tflite, d.x_test[:200], d.y_test[:200])
    got = {r["layer"]: r["device_snr_db"] for r in rows}
    compared = [(r["layer"], r["snr_db"], got[r["layer"]]) for r in predicted["layers"] if r["layer"] in got]
    assert len(compared) >= 3
    for layer, snr, device in compared:
        assert abs(snr - device) < 3.0, (layer, snr, device)  # each tensor within 3 dB
    assert measured["kl"] / 3 < predicted["kl"] < 3 * measured["kl"]
    assert predicted["float_accuracy"] == measured["float_accuracy"]
    assert abs(predicted["accuracy"] - measured["accuracy"]) <= 0.015
