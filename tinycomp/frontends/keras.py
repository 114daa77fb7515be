"""Keras front end: a float Keras model plus calibration samples -> full-integer INT8 .tflite.

TensorFlow is imported only inside the functions that need it: importing it costs
5-7 s and ~570 MB, and commands that start from a .tflite must stay free of it.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from tinycomp.errors import InputDataError, ModelError
from tinycomp.userdata import load_npy

# More samples barely move the int8 ranges but make conversion slower.
MAX_CALIBRATION_SAMPLES = 500

_CALIBRATION_HINT = (
    "pass --calibration X.npy with float samples of the model's input, shape {shape} "
    "(a few hundred representative inputs, preprocessed exactly as for inference)"
)


def load_calibration(path) -> np.ndarray:
    """Read float calibration samples (N, *input_shape) from a .npy file."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise InputDataError(f"calibration data must be a .npy file, got {path.name}")
    return load_npy(path, "calibration")


def keras_to_tflite(path, calibration) -> bytes:
    """Convert a float Keras model (.keras, .h5 or SavedModel folder) to INT8 .tflite bytes.

    `calibration` is an np.ndarray of float samples (N, *input_shape), or a path to
    a .npy file holding one. Input and output of the result are int8, batch is 1.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    if isinstance(calibration, (str, os.PathLike)):
        calibration = load_calibration(calibration)

    with quiet_tensorflow():
        import tensorflow as tf

        if path.is_dir():
            converter, input_shape = _saved_model_converter(tf, path)
        else:
            converter, input_shape = _keras_file_converter(tf, path)
        return _convert_int8(tf, converter, _check_calibration(calibration, input_shape))


def keras_model_to_tflite(model, samples: np.ndarray) -> bytes:
    """An in-memory Keras model (built by another front end, e.g. from ONNX)
    -> INT8 .tflite bytes, the same way as a model file."""
    with quiet_tensorflow():
        import tensorflow as tf

        converter, input_shape = _model_converter(tf, model)
        return _convert_int8(tf, converter, _check_calibration(samples, input_shape))


def _convert_int8(tf, converter, samples: np.ndarray) -> bytes:
    """Full-integer conversion: per-channel int8 weights, activation ranges
    from the calibration samples, int8 input and output."""
    def representative_dataset():
        for sample in samples[:MAX_CALIBRATION_SAMPLES]:
            yield [sample[None]]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    try:
        return bytes(converter.convert())
    except Exception as exc:
        raise ModelError(f"TFLite conversion failed: {_converter_message(exc)}") from None


def _keras_file_converter(tf, path: Path):
    import keras

    if path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise ModelError(
            f"unsupported model file {path.name}: expected .keras, .h5 or a SavedModel folder "
            "(a .tflite needs no conversion)"
        )
    # Keras reports a damaged .keras zip as "file not found"; say what is wrong instead.
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise ModelError(f"{path} is not a valid .keras file (not a zip archive): corrupt or truncated?")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:
        raise ModelError(f"cannot load Keras model {path} (corrupt or truncated?): {_one_line(exc)}") from None
    return _model_converter(tf, model)


def _model_converter(tf, model):
    """Converter for an in-memory Keras model, rebuilt with batch size 1."""
    import keras

    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(
            f"model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "tinycomp supports exactly one of each"
        )
    input_shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in input_shape):
        raise ModelError(f"model input shape {_shape_str(input_shape)} has unknown dimensions; fix them in the model")
    try:
        # A dynamic batch dimension makes the converter emit SHAPE/STRIDED_SLICE/PACK
        # ops around reshapes; a model rebuilt on a batch-1 input has none.
        fixed = keras.models.clone_model(model, input_tensors=keras.Input(input_shape, batch_size=1, name="input"))
        fixed.set_weights(model.get_weights())
        converter = tf.lite.TFLiteConverter.from_keras_model(fixed)
    except Exception:
        # Subclassed models cannot be cloned; trace them on a batch-1 signature instead.
        spec = tf.TensorSpec((1, *input_shape), tf.float32)
        fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        try:
            converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
        except Exception as exc:
            raise ModelError(f"cannot trace the model for conversion: {_one_line(exc)}") from None
    return converter, input_shape


def _saved_model_converter(tf, path: Path):
    try:
        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures["serving_default"]
    except Exception as exc:
        raise ModelError(f"cannot load SavedModel {path}: {_one_line(exc)}") from None
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"model has {len(inputs)} inputs and {len(outputs)} outputs; tinycomp supports exactly one of each"
        )
    (in_name, in_spec), = inputs.items()
    (out_name,) = outputs.keys()
    input_shape = tuple(in_spec.shape[1:])
    if any(d is None for d in input_shape):
        raise ModelError(f"model input shape {_shape_str(input_shape)} has unknown dimensions; fix them in the model")

    # Re-trace the serving signature on a batch-1 input, for the same reason as above.
    @tf.function(input_signature=[tf.TensorSpec((1, *input_shape), in_spec.dtype)])
    def fixed(x):
        return signature(**{in_name: x})[out_name]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fixed.get_concrete_function()], loaded)
    return converter, input_shape


def _check_calibration(calibration, input_shape) -> np.ndarray:
    expected = (None, *input_shape)
    if calibration is None:
        raise InputDataError("no calibration data: " + _CALIBRATION_HINT.format(shape=_shape_str(expected)))
    data = np.asarray(calibration)
    if not np.issubdtype(data.dtype, np.floating):
        raise InputDataError(
            f"calibration data must be float samples of shape {_shape_str(expected)}, got dtype {data.dtype}; "
            "convert and scale it exactly as the model's float input"
        )
    if data.ndim != len(expected) or tuple(data.shape[1:]) != tuple(input_shape) or data.shape[0] == 0:
        raise InputDataError(
            f"calibration data has shape {_shape_str(data.shape)}, expected {_shape_str(expected)} "
            "(a batch of samples of the model's input)"
        )
    if not np.all(np.isfinite(data)):
        raise InputDataError("calibration data contains NaN or infinite values")
    return data.astype(np.float32, copy=False)


def _shape_str(shape) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _converter_message(exc: BaseException) -> str:
    """The converter's MLIR diagnostics are long; the first `error:` line says what is wrong."""
    for line in str(exc).splitlines():
        match = re.search(r"error:\s*(.+)", line)
        if match:
            return _one_line(match.group(1))
    return _one_line(exc)


@contextlib.contextmanager
def quiet_tensorflow():
    """Silence TF's C++ logs, absl, Python warnings and the converter's prints.

    Much of that noise is written straight to file descriptors 1 and 2 by C++
    code, so Python-level redirection alone does not catch it.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                import logging

                logging.getLogger("tensorflow").setLevel(logging.ERROR)
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
