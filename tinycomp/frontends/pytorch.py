"""PyTorch front end: a float `.pt2` (torch.export.save) or `.onnx` model plus
calibration samples in the model's own layout -> full-integer INT8 .tflite.

Route: .pt2 -> torch.onnx (dynamo exporter) -> ONNX; ONNX -> Keras
(onnx_to_keras.py) -> the Keras front end's converter with calibration. The
packages come from the optional extra `tinycomp[torch]` and are imported here
only, so building from .tflite or Keras never loads torch or onnx.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputDataError, ModelError, UnsupportedOpError
from .keras import _one_line, quiet_tensorflow

EXTRA_HINT = "pip install 'tinycomp[torch]'"
# torch.export's archive schema that torch 2.13 writes and reads.
SUPPORTED_SCHEMA_MAJOR = 8


def _require(*modules: str) -> None:
    import importlib
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise ModelError(f"reading .onnx and .pt2 models needs the PyTorch extra ({name} is not "
                             f"installed): {EXTRA_HINT}") from None


# ------------------------------------------------------------------ ONNX files

def _check_external_data(model, path: Path) -> None:
    """External data must sit beside the model, inside its folder, and be long enough."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    base = path.parent.resolve()
    tensors = list(model.graph.initializer)
    for t in tensors:
        if not uses_external_data(t):
            continue
        info = ExternalDataInfo(t)
        location = Path(info.location)
        target = (base / location).resolve()
        if location.is_absolute() or base not in target.parents:
            raise ModelError(f"{path.name}: tensor {t.name!r} points outside the model's folder "
                             f"({info.location!r}); tinycomp reads external data beside the model only")
        if not target.is_file():
            raise ModelError(f"{path.name}: external data file {info.location!r} (tensor {t.name!r}) "
                             f"is missing; keep it beside {path.name}")
        end = (info.offset or 0) + (info.length or 0)
        if end > target.stat().st_size:
            raise ModelError(f"{path.name}: external data file {info.location!r} is shorter than tensor "
                             f"{t.name!r} needs ({target.stat().st_size} < {end} bytes): truncated?")


def load_onnx(path: Path):
    """Read and check an ONNX model, external data included."""
    _require("onnx")
    import onnx
    from google.protobuf.message import DecodeError
    from onnx.external_data_helper import load_external_data_for_model

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise ModelError(f"{path}: not a readable ONNX model (corrupt or truncated?): {_one_line(exc, 160)}") from None
    if not model.graph.node:
        raise ModelError(f"{path}: not a readable ONNX model (no graph nodes): corrupt or truncated?")
    _check_external_data(model, path)
    try:
        load_external_data_for_model(model, str(path.parent))
        onnx.checker.check_model(model)
    except Exception as exc:  # the checker raises several types
        raise ModelError(f"{path}: invalid ONNX model: {_one_line(exc, 200)}") from None
    return model


# ------------------------------------------------------------------ .pt2 files

def _pt2_versions(path: Path) -> tuple[dict | None, str | None]:
    """(schema version, torch version) from the archive's model JSON, read
    without unpickling anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(".json") and "/models/" in n]
            if not names:
                return None, None
            meta = json.loads(archive.read(names[0]))
    except (zipfile.BadZipFile, OSError, ValueError, KeyError):
        raise ModelError(f"{path}: not a torch.export archive (.pt2 is a zip written by "
                         "torch.export.save): corrupt or truncated?") from None
    return meta.get("schema_version"), meta.get("torch_version")


def _check_pt2_pickles(path: Path, torch) -> None:
    """torch.export.load unpickles some members with weights_only=False (pickled
    weights, custom and opaque objects, and sample inputs that the safe loader
    refuses), which can run code from the file. Refuse a .pt2 unless every
    pickled member loads with torch's weights-only unpickler."""
    unsafe = f"{path.name}: %s holds pickled Python objects, not plain tensors; tinycomp does not " \
             "load them (unpickling can run code from the file)"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickled = [n for n in names if n.endswith(".pt")]
        for config_name in (n for n in names if n.endswith("_config.json") and "/data/" in n):
            try:
                config = json.loads(archive.read(config_name)).get("config", {})
            except (ValueError, AttributeError):
                raise ModelError(f"{path.name}: {config_name} is not valid JSON: corrupt?") from None
            folder = config_name.rsplit("/", 1)[0]
            for meta in config.values():
                member = f"{folder}/{meta.get('path_name', '')}"
                if meta.get("use_pickle"):
                    pickled.append(member)
                elif str(meta.get("path_name", "")).startswith(("custom_obj_", "opaque_obj_")):
                    raise ModelError(unsafe % member)
        for member in pickled:
            try:
                torch.load(io.BytesIO(archive.read(member)), weights_only=True)
            except Exception:
                raise ModelError(unsafe % member) from None


def load_pt2(path: Path):
    """A .pt2 ExportedProgram -> an ONNX ModelProto (weights inline)."""
    _require("torch", "onnx", "onnxscript")
    path = Path(path)
    schema, saved_by = _pt2_versions(path)
    import torch

    major = schema.get("major") if isinstance(schema, dict) else None
    if major is not None and major != SUPPORTED_SCHEMA_MAJOR:
        raise ModelError(f"{path}: saved by torch {saved_by or '?'} (export schema {major}."
                         f"{schema.get('minor')}); this tinycomp reads schema {SUPPORTED_SCHEMA_MAJOR} "
                         f"as torch {torch.__version__.split('+')[0]} writes it: re-export the model "
                         "with torch 2.13, or export it to .onnx")
    _check_pt2_pickles(path, torch)
    with _quiet_torch():
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise ModelError(f"{path}: cannot load the exported program (torch {torch.__version__}): "
                             f"{_one_line(exc, 200)}") from None
        _check_pt2_ops(program, path)
        try:
            onnx_program = torch.onnx.export(program, (), dynamo=True, verbose=False,
                                             optimize=True)
        except Exception as exc:
            raise ModelError(f"{path}: torch.onnx could not export the program: {_one_line(exc, 200)}") from None
    return onnx_program.model_proto


# aten ops (before decomposition) that the ONNX route turns into supported layers.
_PT2_OPS = {
    "conv1d", "conv2d", "convolution", "_native_batch_norm_legit_no_training", "batch_norm",
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "hardswish", "hardswish_", "sigmoid", "tanh",
    "linear", "addmm", "mm", "matmul", "t", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "mean", "flatten", "view", "reshape", "_unsafe_view",
    "add", "add_", "cat", "concat", "softmax", "_softmax", "dropout", "clone", "contiguous",
    "max_pool2d_with_indices", "mul", "squeeze", "unsqueeze", "permute", "transpose", "alias",
}


def _check_pt2_ops(program, path: Path) -> None:
    """Name the first op outside the supported layer set with its node, before
    the ONNX exporter gets a chance to fail on it less clearly."""
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        target = getattr(node.target, "_opname", None) or getattr(node.target, "__name__", str(node.target))
        if target == "getitem":
            continue
        if target not in _PT2_OPS:
            raise _unsupported_pt2(path, target, node.name)


def _unsupported_pt2(path, op, name):
    return UnsupportedOpError(f"{path}: unsupported op aten.{op} at node {name!r}; tinycomp converts "
                              "Conv1d/Conv2d (groups 1 or depthwise), BatchNorm, ReLU, ReLU6, Hardswish, "
                              "Sigmoid, Tanh, Linear, MaxPool, AvgPool, AdaptiveAvgPool(1), Flatten, "
                              "add, cat, softmax")


@contextlib.contextmanager
def _quiet_torch():
    """torch.onnx prints progress to stdout and logs warnings; keep the CLI's
    output to its own lines."""
    loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


# ------------------------------------------------------------------ conversion

def load_as_onnx(path: Path):
    path = Path(path)
    return load_pt2(path) if path.suffix == ".pt2" else load_onnx(path)


def _check_layout(samples, shape: tuple, layout: str) -> np.ndarray:
    """Calibration samples must be in the model's own layout; say which one."""
    if samples is None:
        raise InputDataError(f"no calibration data: pass --calibration X.npy with float samples in the "
                             f"model's {layout} layout, shape {_shape(shape)}")
    data = np.asarray(samples)
    inner = tuple(shape[1:])
    if data.ndim == len(shape) and tuple(data.shape[1:]) == inner and len(data):
        if not np.issubdtype(data.dtype, np.floating):
            raise InputDataError(f"calibration data must be float samples, got {data.dtype}")
        return data
    hint = ""
    if data.ndim == len(shape) and sorted(data.shape[1:]) == sorted(inner) and len(shape) > 2:
        hint = " (channels last?)"
    raise InputDataError(f"calibration samples have shape {_shape(data.shape)}{hint}; "
                         f"the model takes {layout} {_shape(shape)}")


def _shape(shape) -> str:
    dims = ["N"] + [str(d) for d in tuple(shape)[1:]]
    return "(" + ", ".join(dims) + ")"


def torch_to_tflite(path: Path, calibration) -> bytes:
    """A .pt2 or .onnx float model -> INT8 .tflite bytes (input in the model's layout)."""
    model = load_as_onnx(path)
    from .keras import keras_model_to_tflite
    from .onnx_to_keras import Builder

    try:
        builder = Builder(model)
        # Samples in a wrong layout fail before Keras (and TensorFlow) load;
        # missing samples only after the layers are known to convert.
        if calibration is not None:
            _check_layout(calibration, builder.input_shape, builder.input_layout)
        with quiet_tensorflow():
            keras_model = builder.build()
    except (UnsupportedOpError, ModelError) as exc:
        raise type(exc)(f"{Path(path).name}: {exc}") from None
    samples = _check_layout(calibration, builder.input_shape, builder.input_layout)
    return keras_model_to_tflite(keras_model, samples.astype(np.float32))


# ------------------------------------------------------------------ float reference

def float_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """The original float model's outputs: onnxruntime for .onnx, torch for .pt2.
    One sample at a time: exported programs are usually specialised to batch 1."""
    path = Path(path)
    x = np.asarray(x, np.float32)
    if path.suffix == ".pt2":
        _require("torch")
        import torch
        _pt2_versions(path)  # a readable archive
        _check_pt2_pickles(path, torch)
        with _quiet_torch():
            try:
                module = torch.export.load(str(path)).module()
            except Exception as exc:
                raise ModelError(f"{path}: cannot load the exported program: {_one_line(exc, 200)}") from None
            with torch.no_grad():
                return np.concatenate([module(torch.from_numpy(s[None])).numpy() for s in x])
    _require("onnxruntime")
    import onnxruntime as ort
    load_onnx(path)  # the same checks as the build
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: s[None]})[0] for s in x])
