"""The pipeline, end to end: model -> IR -> C -> build -> run.

    load_model   .tflite through the LiteRT schema; Keras through the TFLite
                 converter with calibration data; .pt2/.onnx through ONNX ->
                 Keras, then the same converter (frontends/)
    generate     IR + kernel table -> C sources (codegen/)
    build        the board's toolchain (targets/)
    run          samples in, raw int8 outputs back (targets/)
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from . import __version__
from .boards import Board, load_board
from .codegen.generate import GeneratedModel, generate
from .errors import InputDataError, ModelError, OutputError
from .frontends.tflite import parse_tflite, read_tflite
from .ir import Graph
from .targets import get_runner

DEFAULT_BOARD = "qemu"
MANIFEST = "tinycomp.json"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TORCH_SUFFIXES = (".onnx", ".pt2")  # float PyTorch models: tinycomp[torch]


@dataclass(frozen=True)
class BuildOptions:
    board: str = DEFAULT_BOARD
    calibration: Path | None = None


def load_model(path: Path, calibration: Path | None = None) -> tuple[Graph, bytes]:
    """Any supported model file -> (IR graph, the INT8 .tflite bytes it came from)."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or folder")
    if path.suffix == ".tflite":
        graph = read_tflite(path)
        return graph, path.read_bytes()
    if path.suffix in KERAS_SUFFIXES or path.is_dir():
        from .frontends.keras import keras_to_tflite, load_calibration  # imports TensorFlow
        samples = load_calibration(calibration) if calibration is not None else None
        data = keras_to_tflite(path, samples)
        return parse_tflite(data, name=path.stem), data
    if path.suffix in TORCH_SUFFIXES:
        from .frontends.keras import load_calibration
        from .frontends.pytorch import torch_to_tflite  # torch/onnx: the optional extra
        samples = load_calibration(calibration) if calibration is not None else None
        data = torch_to_tflite(path, samples)
        return parse_tflite(data, name=path.stem), data
    raise ModelError(f"{path}: unknown model format {path.suffix!r}; "
                     "tinycomp reads .tflite, .keras, .h5, SavedModel folders, .onnx and .pt2")


@contextlib.contextmanager
def staged_dir(out_dir: Path):
    """Build into a hidden sibling folder and move it into place only when complete,
    so an interrupted or failed build never leaves a folder that looks valid."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or
                             (any(out_dir.iterdir()) and not (out_dir / MANIFEST).exists())):
        raise OutputError(f"{out_dir} exists and is not a tinycomp build; "
                          "choose an empty or new folder for --out")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise OutputError(f"cannot write to {out_dir.parent}: {exc.strerror}") from None
    try:
        yield stage
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(stage, out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_atomic(path: Path, write) -> None:
    """write(temporary path) beside `path`, then rename it into place, so a
    reader never sees half a file. The temporary path keeps path's suffix
    (savers such as np.save and keras' Model.save look at it)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _tensor_info(t) -> dict:
    return {"shape": list(t.shape), "scale": t.scale, "zero_point": t.zero_point}


def manifest(graph: Graph, model: GeneratedModel, board: Board) -> dict:
    x, y = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
    from .codegen.ops.sparse import compression_summary
    compression = compression_summary(graph)  # what pruning bought; None if unpruned
    return {
        "tinycomp_version": __version__,
        "model": graph.name,
        "model_hash": graph.model_hash,
        "board": board.name,
        "input": _tensor_info(x),
        "output": _tensor_info(y),
        "arena_bytes": model.arena_bytes,
        "weights_bytes": model.weights_bytes,
        "macs": model.macs,
        "layers": list(model.layers),
        **({"compression": compression} if compression else {}),
    }


def build(model_path: Path, out_dir: Path, options: BuildOptions = BuildOptions()) -> dict:
    """Compile a model for a board into out_dir; returns the manifest written there."""
    load_board(options.board)  # an unknown board is reported before a slow conversion
    graph, tflite = load_model(model_path, options.calibration)
    return build_graph(graph, tflite, out_dir, options.board)


def build_graph(graph: Graph, tflite: bytes, out_dir: Path, board_name: str) -> dict:
    board = load_board(board_name)
    model = generate(graph)
    info = manifest(graph, model, board)
    with staged_dir(out_dir) as stage:
        model.write(stage / "src")
        (stage / "model.tflite").write_bytes(tflite)
        built = get_runner(board, stage / "build").build(stage / "src")
        if board.is_embedded:  # a FirmwareImage: what the linker says it takes
            image = built.summary()
            info["firmware"] = {key: (f"build/{v}" if key in ("elf", "bin", "hex", "map") else v)
                                for key, v in image.items()}
            info["flash_bytes"], info["ram_bytes"] = image["flash_used"], image["ram_used"]
        (stage / MANIFEST).write_text(json.dumps(info, indent=2) + "\n")
    return info


def read_manifest(build_dir: Path) -> dict:
    path = Path(build_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputDataError(f"{build_dir} is not a tinycomp build (no {MANIFEST}); "
                             "run 'tinycomp build MODEL --out DIR' first") from None
    except (OSError, ValueError) as exc:
        raise InputDataError(f"{path} is unreadable: {exc}") from None


def model_samples(samples: np.ndarray, info: dict) -> np.ndarray:
    """User samples -> int8 (N, *input shape): int8 as is, float quantized with the
    model's input scale and zero point. Accepts (N, *shape) with or without the
    batch dimension of 1."""
    shape = tuple(info["input"]["shape"])
    inner = shape[1:] if shape and shape[0] == 1 else shape
    x = np.asarray(samples)
    if x.shape[1:] == shape and shape[:1] == (1,) and x.ndim == len(shape) + 1:
        x = x.reshape((len(x), *inner))
    if x.ndim < 1 or x.shape[1:] != inner:
        raise InputDataError(f"inputs have shape {x.shape}; the model takes (N, "
                             f"{', '.join(map(str, inner))})")
    if x.dtype == np.int8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        scale, zp = info["input"]["scale"], info["input"]["zero_point"]
        q = x.astype(np.float32) / np.float32(scale)
        q = np.where(q >= 0, np.floor(q + 0.5), -np.floor(-q + 0.5)) + zp  # TFLite rounds half away
        return np.clip(q, -128, 127).astype(np.int8)
    raise InputDataError(f"inputs are {x.dtype}; pass int8 (already quantized) or float32 samples")


def run(build_dir: Path, samples: np.ndarray, port: str | None = None,
        progress: bool = False) -> tuple[np.ndarray, list[int | None]]:
    """Run every sample on the build's target. Returns the int8 outputs
    (N, *output shape) and each inference's instruction or cycle count
    (None on the host)."""
    info = read_manifest(build_dir)
    x = model_samples(samples, info)
    out_shape = tuple(info["output"]["shape"])
    inner = out_shape[1:] if out_shape and out_shape[0] == 1 else out_shape
    outputs, counts = [], []
    with get_runner(info["board"], Path(build_dir) / "build", port=port) as runner:
        bar = click.progressbar(x, label=f"running on {info['board']}", file=sys.stderr,
                                show_pos=True) if progress else contextlib.nullcontext(x)
        with bar as items:
            for sample in items:
                result = runner.infer(sample.tobytes())
                outputs.append(np.frombuffer(result.output, dtype=np.int8))
                counts.append(result.count)
    y = np.stack(outputs) if outputs else np.zeros((0, *inner), np.int8)
    return y.reshape((len(x), *inner)), counts
