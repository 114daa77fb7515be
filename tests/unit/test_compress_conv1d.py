"""Compression of a 1-D CNN on sequences: the digits read as 8 time steps of 8
features (real data that ships with scikit-learn), Conv1D with BatchNorm,
causal, strided and dilated convolutions, 1-D pooling. QAT and calibration
refused every Conv1D before; the converter writes each as a 1 x k CONV_2D
between reshapes, which the compressed model must survive bit for bit."""
import numpy as np
import pytest

from tests.support.cli import tinycomp

pytestmark = pytest.mark.tf


def sequence_cnn(split, epochs: int = 25):
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(5)
    i = keras.Input((8, 8))
    x = L.ReLU()(L.BatchNormalization()(L.Conv1D(16, 3, padding="causal", use_bias=False, name="c1")(i)))
    x = L.Conv1D(24, 3, padding="same", dilation_rate=2, activation="relu", name="c2")(x)
    x = L.MaxPooling1D(2)(x)
    x = L.Conv1D(32, 3, padding="same", strides=2, activation="relu", name="c3")(x)
    x = L.Dense(32, activation="relu")(L.GlobalAveragePooling1D()(x))
    model = keras.Model(i, L.Dense(10, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(split.x_train.reshape(-1, 8, 8), split.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    from tinycomp.datasets import load_digits

    s = load_digits(2)
    model = sequence_cnn(s)
    root = tmp_path_factory.mktemp("conv1d")
    model.save(root / "seq.keras")
    x_train, x_test = s.x_train.reshape(-1, 8, 8), s.x_test.reshape(-1, 8, 8)
    np.savez(root / "d.npz", x_train=x_train, y_train=s.y_train, x_test=x_test, y_test=s.y_test)
    accuracy = float(model.evaluate(x_test, s.y_test, verbose=0)[1])
    return root, accuracy, x_test, s.y_test


def test_quant_conv1d_computes_what_conv1d_computes():
    """Weights already on the int8 grid: the QAT layer (a 1 x k CONV_2D with the
    kernel fake-quantized in 4-D) equals Keras's Conv1D for each padding."""
    import keras

    from tinycomp.compress.qat import custom_objects

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 11, 5)).astype(np.float32)
    for padding, stride, dilation in (("causal", 1, 2), ("same", 2, 1), ("valid", 1, 3), ("same", 1, 2)):
        cfg = dict(filters=6, kernel_size=3, padding=padding, strides=stride, dilation_rate=dilation)
        plain = keras.layers.Conv1D(**cfg)
        quant = custom_objects()["QuantConv1D"](**cfg)
        plain.build(x.shape), quant.build(x.shape)
        codes = rng.integers(-127, 128, size=(3, 5, 6)).astype(np.float32)
        codes[0, 0, :] = 127  # every channel reaches the bound: its scale is exactly 0.01
        weights = [codes * 0.01, rng.normal(size=6).astype(np.float32)]
        plain.set_weights(weights), quant.set_weights(weights)
        np.testing.assert_allclose(np.asarray(quant(x)), np.asarray(plain(x)), rtol=1e-5, atol=1e-5,
                                   err_msg=f"{padding} stride {stride} dilation {dilation}")


def test_pruned_qat_and_int16_sequence_cnn_is_bit_exact_on_the_host_and_qemu(sequences):
    from tests.support.harness import assert_bit_exact, assert_bit_exact_on_board
    from tinycomp.frontends.tflite import parse_tflite

    root, float_accuracy, x_test, y_test = sequences
    result = tinycomp("compress", root / "seq.keras", "--data", root / "d.npz", "--prune", "0.6", "--qat", "--int16", "1",
                      "--out", root / "small.keras", "--report", root / "r.md")
    assert result.returncode == 0, result.stderr
    tflite = (root / "small.tflite").read_bytes()
    graph = parse_tflite(tflite)
    assert sum(n.op.value == "CONV_2D" for n in graph.nodes) == 3
    x = graph.tensor(graph.inputs[0])
    q = np.clip(np.round(x_test / x.scale) + x.zero_point, -128, 127).astype(np.int8).reshape(-1, *x.shape)
    ours = assert_bit_exact(tflite, q, storage="size")
    accuracy = float(np.mean(np.argmax(ours, axis=-1) == y_test))
    assert accuracy >= float_accuracy - 0.01, (accuracy, float_accuracy)  # the default --max-drop 1
    assert_bit_exact_on_board(tflite, q[:40], "qemu-mps2-an386", storage="size")
    report = (root / "r.md").read_text()
    for layer in ("c1", "c2", "c3"):  # every Conv1D in the activations table
        assert f"| {layer} | CONV_2D |" in report, layer


def test_channel_pruning_and_sensitivity_take_conv1d(sequences):
    root, _, _, _ = sequences
    result = tinycomp("compress", root / "seq.keras", "--data", root / "d.npz", "--channels", "0.25",
                      "--sensitivity", "--max-drop", "5", "--out", root / "ch.keras", "--report", root / "ch.md")
    assert result.returncode == 0, result.stderr
    report = (root / "ch.md").read_text()
    assert all(f"| {layer} |" in report for layer in ("c1", "c2", "c3")), report
    import keras

    model = keras.models.load_model(root / "ch.keras", compile=False)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv1D)]
    assert [c.filters for c in convs] == [12, 18, 24]
