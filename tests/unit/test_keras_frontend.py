"""Keras front end: float Keras model + calibration -> full-integer INT8 .tflite."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from tinycomp.errors import InputDataError, ModelError, TinycompError
from tinycomp.frontends.keras import keras_to_tflite, load_calibration

# Keras 3 calls np.array(x, copy=False) on its variables under numpy 2: harmless noise.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SHAPE = (8, 8, 1)
OPS = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def parse(buf: bytes) -> schema.ModelT:
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))


def op_names(model: schema.ModelT) -> list[str]:
    codes = model.operatorCodes
    # Operator codes above 127 live in builtinCode only; the old field saturates.
    return [OPS[max(codes[op.opcodeIndex].builtinCode, codes[op.opcodeIndex].deprecatedBuiltinCode)]
            for op in model.subgraphs[0].operators]


def calibration(n=32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, *SHAPE)).astype(np.float32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small model with a dynamic batch, saved as .keras, .h5 and a SavedModel folder."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input(SHAPE),
        L.Conv2D(4, 3, padding="same", use_bias=False),
        L.BatchNormalization(),
        L.ReLU(),
        L.DepthwiseConv2D(3, padding="same", activation="relu"),
        L.Flatten(),  # a reshape: with a dynamic batch it brings SHAPE/STRIDED_SLICE/PACK
        L.Dense(5, activation="softmax"),
    ])
    bn = model.layers[1]
    bn.set_weights([np.linspace(0.5, 1.5, 4), np.full(4, 0.1), np.full(4, -0.2), np.full(4, 2.0)])
    root = tmp_path_factory.mktemp("keras_frontend")
    paths = {"keras": root / "m.keras", "h5": root / "m.h5", "savedmodel": root / "sm"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    model.export(paths["savedmodel"], verbose=False)
    return paths


@pytest.mark.tf
@pytest.mark.parametrize("kind", ["keras", "h5", "savedmodel"])
def test_converts_to_full_integer_batch_one(saved, kind):
    model = parse(keras_to_tflite(saved[kind], calibration()))
    graph = model.subgraphs[0]
    ops = op_names(model)
    assert not {"SHAPE", "STRIDED_SLICE", "PACK", "QUANTIZE", "DEQUANTIZE"} & set(ops), ops
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(ops)
    assert "MUL" not in ops  # BatchNorm folded into the convolution
    allowed = {schema.TensorType.INT8, schema.TensorType.INT32}
    assert {t.type for t in graph.tensors} <= allowed
    inp, out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    assert inp.type == out.type == schema.TensorType.INT8
    assert list(inp.shape) == [1, *SHAPE]
    assert list(out.shape) == [1, 5]


@pytest.mark.tf
def test_weights_per_channel_and_int32_bias(saved):
    model = parse(keras_to_tflite(saved["keras"], calibration()))
    graph = model.subgraphs[0]
    # (weight tensor's output-channel axis) per op, as TFLM's kernels expect
    axis = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}
    for name, op in zip(op_names(model), graph.operators):
        if name not in axis:
            continue
        weights = graph.tensors[op.inputs[1]]
        q = weights.quantization
        channels = weights.shape[axis[name]]
        assert weights.type == schema.TensorType.INT8
        assert len(q.scale) == channels > 1, name
        assert q.quantizedDimension == axis[name], name
        assert not np.any(q.zeroPoint), "weights must be symmetric"
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            assert graph.tensors[op.inputs[2]].type == schema.TensorType.INT32


@pytest.mark.tf
def test_calibration_from_npy_path(saved, tmp_path):
    path = tmp_path / "cal.npy"
    np.save(path, calibration())
    assert keras_to_tflite(saved["keras"], path) == keras_to_tflite(saved["keras"], calibration())


@pytest.mark.tf
def test_conversion_is_quiet(saved, capfd):
    keras_to_tflite(saved["keras"], calibration())
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def one_line_error(cls, *args) -> str:
    with pytest.raises(cls) as info:
        keras_to_tflite(*args)
    message = str(info.value)
    assert message and "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.tf
def test_missing_calibration(saved):
    message = one_line_error(InputDataError, saved["keras"], None)
    assert "--calibration" in message and "(N, 8, 8, 1)" in message


@pytest.mark.tf
def test_calibration_of_wrong_shape(saved):
    message = one_line_error(InputDataError, saved["keras"], np.zeros((4, 8, 8), np.float32))
    assert "(4, 8, 8)" in message and "(N, 8, 8, 1)" in message


@pytest.mark.tf
def test_calibration_of_wrong_dtype(saved):
    message = one_line_error(InputDataError, saved["keras"], np.zeros((4, *SHAPE), np.uint8))
    assert "uint8" in message and "float" in message


@pytest.mark.tf
def test_calibration_with_nan(saved):
    bad = calibration()
    bad[0, 0, 0, 0] = np.nan
    one_line_error(InputDataError, saved["keras"], bad)


def test_model_path_missing(tmp_path):
    # Raised before TensorFlow is imported.
    assert "not found" in one_line_error(ModelError, tmp_path / "nope.keras", calibration())


def test_unsupported_extension(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\0" * 16)
    one_line_error(ModelError, path, calibration())


@pytest.mark.tf
@pytest.mark.parametrize("kind", ["keras", "h5"])
def test_corrupt_or_truncated_model(saved, tmp_path, kind):
    data = saved[kind].read_bytes()
    truncated = tmp_path / saved[kind].name
    truncated.write_bytes(data[: len(data) // 2])
    assert "corrupt or truncated" in one_line_error(ModelError, truncated, calibration())
    garbage = tmp_path / f"garbage{saved[kind].suffix}"
    garbage.write_bytes(b"not a model" * 50)
    one_line_error(ModelError, garbage, calibration())


@pytest.mark.tf
def test_several_inputs_rejected(tmp_path):
    import keras

    a, b = keras.Input((4,)), keras.Input((4,))
    path = tmp_path / "two_inputs.keras"
    keras.Model([a, b], keras.layers.Add()([a, b])).save(path)
    assert "one of each" in one_line_error(ModelError, path, np.zeros((2, 4), np.float32))


@pytest.mark.tf
def test_several_outputs_rejected(tmp_path):
    import keras

    x = keras.Input((4,))
    path = tmp_path / "two_outputs.keras"
    keras.Model(x, [keras.layers.Dense(2)(x), keras.layers.Dense(3)(x)]).save(path)
    assert "one of each" in one_line_error(ModelError, path, np.zeros((2, 4), np.float32))


@pytest.mark.tf
def test_converter_failure_is_one_line(tmp_path):
    import tensorflow as tf

    class Spectrum(tf.Module):
        # A complex FFT has no int8 TFLite kernel: the converter must fail.
        @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32)])
        def __call__(self, x):
            return tf.math.real(tf.signal.fft(tf.cast(x, tf.complex64)))

    path = tmp_path / "fft"
    tf.saved_model.save(Spectrum(), str(path))
    message = one_line_error(ModelError, path, np.random.default_rng(0).random((4, 16), np.float32))
    assert message.startswith("TFLite conversion failed")


def test_load_calibration(tmp_path):
    good = tmp_path / "cal.npy"
    np.save(good, calibration(4))
    assert load_calibration(good).shape == (4, *SHAPE)
    with pytest.raises(InputDataError):
        load_calibration(tmp_path / "missing.npy")
    corrupt = tmp_path / "corrupt.npy"
    corrupt.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputDataError):
        load_calibration(corrupt)
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputDataError):  # never unpickle data from elsewhere
        load_calibration(pickled)
    text = tmp_path / "cal.csv"
    text.write_text("1,2,3\n")
    with pytest.raises(InputDataError):
        load_calibration(text)


def test_errors_share_the_cli_base_class():
    assert issubclass(ModelError, TinycompError) and issubclass(InputDataError, TinycompError)


def test_import_does_not_load_tensorflow():
    code = "import sys, tinycomp.frontends.keras; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
