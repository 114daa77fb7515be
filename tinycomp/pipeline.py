"""The pipeline, end to end: model -> IR -> C -> build -> run.

    load_model   .tflite through the LiteRT schema; Keras through the TFLite
                 converter with calibration data; .pt2/.onnx through ONNX ->
                 Keras, then the same converter (frontends/)
    generate     IR + kernel table -> C sources (codegen/)
    build        the board's toolchain (targets/)
    run          samples in, outputs back in the model's own types (targets/)
"""
from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from . import __version__
from .boards import Board, load_board
from .codegen.generate import GeneratedModel, generate
from .errors import InputDataError, ModelError
from .frontends.tflite import parse_tflite, read_tflite
from .ir import Graph
from .outputs import MANIFEST, check_out_dir, file_digests, staged_dir
from .targets import get_runner
from .userdata import check_finite

DEFAULT_BOARD = "qemu"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TORCH_SUFFIXES = (".onnx", ".pt2")  # float PyTorch models: tinycomp[torch]


@dataclass(frozen=True)
class BuildOptions:
    board: str = DEFAULT_BOARD
    calibration: Path | None = None
    optimize: str = "balanced"  # weights' storage: balanced, size or speed (codegen/ops/sparse.py)


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


def _tensor_info(t) -> dict:
    quantized = t.quant is not None and t.dtype != "float32"
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype,
            "scale": t.scale if quantized else None,
            "zero_point": t.zero_point if quantized else None}


def manifest(graph: Graph, model: GeneratedModel, board: Board, optimize: str = "balanced") -> dict:
    inputs = [_tensor_info(graph.tensor(t)) for t in graph.inputs]
    outputs = [_tensor_info(graph.tensor(t)) for t in graph.outputs]
    from .codegen.ops.sparse import compression_summary
    compression = compression_summary(graph, optimize)  # what pruning bought; None if unpruned
    return {
        "tinycomp_version": __version__,
        "model": graph.name,
        "model_hash": graph.model_hash,
        "board": board.name,
        "optimize": optimize,
        "inputs": inputs,
        "outputs": outputs,
        # one-input / one-output models also name them singly
        **({"input": inputs[0]} if len(inputs) == 1 else {}),
        **({"output": outputs[0]} if len(outputs) == 1 else {}),
        "arena_bytes": model.arena_bytes,
        # bytes of state kept between inferences (0: every inference stands alone)
        "state_bytes": model.state_bytes,
        "weights_bytes": model.weights_bytes,
        "macs": model.macs,
        "layers": list(model.layers),
        **({"compression": compression} if compression else {}),
    }


def build(model_path: Path, out_dir: Path, options: BuildOptions = BuildOptions()) -> dict:
    """Compile a model for a board into out_dir; returns the manifest written there."""
    load_board(options.board)  # an unknown board or a bad --out is reported before a slow conversion
    inputs = tuple(p for p in (model_path, options.calibration) if p is not None)
    check_out_dir(out_dir, protect=inputs)
    graph, tflite = load_model(model_path, options.calibration)
    return build_graph(graph, tflite, out_dir, options.board, protect=inputs, optimize=options.optimize)


def build_graph(graph: Graph, tflite: bytes, out_dir: Path, board_name: str,
                protect: tuple[Path, ...] = (), optimize: str = "balanced",
                features: frozenset[str] | None = None) -> dict:
    board = load_board(board_name)
    # the board's core features choose kernels (Helium where the core has
    # MVE); `features` overrides them (tests: C generated for a plainer core
    # compiled for this one must still be exact)
    model = generate(graph, storage=optimize, features=board.features if features is None else features)
    info = manifest(graph, model, board, optimize)
    with staged_dir(out_dir, protect) as stage:
        model.write(stage / "src")
        (stage / "model.tflite").write_bytes(tflite)
        built = get_runner(board, stage / "build").build(stage / "src")
        if board.is_embedded:  # a FirmwareImage: what the linker says it takes
            image = built.summary()
            info["firmware"] = {key: (f"build/{v}" if key in ("elf", "bin", "hex", "map") else v)
                                for key, v in image.items()}
            info["flash_bytes"], info["ram_bytes"] = image["flash_used"], image["ram_used"]
        # written last: the list of files proves which files a later build may replace
        manifest_text = json.dumps({**info, "files": file_digests(stage)}, indent=2) + "\n"
        (stage / MANIFEST).write_text(manifest_text)
    return info


def _tensor_entry_ok(entry) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("shape"), list)
            and all(isinstance(d, int) and d > 0 for d in entry["shape"])
            and entry.get("dtype", "int8") in ("int8", "int16", "uint8", "int32", "float32")
            and isinstance(entry.get("scale"), (int, float, type(None)))
            and isinstance(entry.get("zero_point"), (int, type(None))))


def _entries_ok(info: dict, role: str) -> bool:
    entries = info.get(f"{role}s", [info.get(role)])
    return isinstance(entries, list) and bool(entries) and all(_tensor_entry_ok(e) for e in entries)


def read_manifest(build_dir: Path) -> dict:
    path = Path(build_dir) / MANIFEST
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputDataError(f"{build_dir} is not a tinycomp build (no {MANIFEST}); "
                             "run 'tinycomp build MODEL --out DIR' first") from None
    except (OSError, ValueError) as exc:
        raise InputDataError(f"{path} is unreadable: {str(exc).splitlines()[0][:200]}") from None
    # A manifest is read back by run/profile/flash: one from elsewhere must not crash them.
    if not (isinstance(info, dict) and isinstance(info.get("board"), str)
            and _entries_ok(info, "input") and _entries_ok(info, "output")
            and isinstance(info.get("layers"), list) and all(isinstance(r, dict) for r in info["layers"])
            and isinstance(info.get("macs"), int) and isinstance(info.get("arena_bytes"), int)
            and _firmware_entry_ok(info.get("firmware"), info["board"])):
        raise InputDataError(f"{path} is not a tinycomp manifest (board, input, output, layers or "
                             "firmware missing or malformed)")
    return info


def _firmware_entry_ok(entry, board: str) -> bool:
    """Absent for a host build, else naming files inside the build folder."""
    if entry is None:
        return board == "host"
    return isinstance(entry, dict) and all(
        isinstance(entry.get(k), str) and not Path(entry[k]).is_absolute() and ".." not in Path(entry[k]).parts
        for k in ("elf", "bin"))


def tensor_specs(info: dict, role: str) -> list[dict]:
    """The manifest's inputs or outputs ("input" / "output"), in the model's order."""
    specs = info.get(f"{role}s") or [info[role]]
    return [{"dtype": "int8", **spec} for spec in specs]  # manifests before float edges: int8


def _inner(shape) -> tuple:
    shape = tuple(shape)
    return shape[1:] if shape and shape[0] == 1 else shape


def _convert(samples, spec: dict, what: str) -> np.ndarray:
    """One input's samples -> its dtype, (N, *shape without the batch of 1)."""
    shape, dtype = tuple(spec["shape"]), spec["dtype"]
    inner = _inner(shape)
    x = np.asarray(samples)
    if x.shape[1:] == shape and shape[:1] == (1,) and x.ndim == len(shape) + 1:
        x = x.reshape((len(x), *inner))
    if x.ndim < 1 or x.shape[1:] != inner:
        raise InputDataError(f"{what} have shape {x.shape}; the model takes (N, "
                             f"{', '.join(map(str, inner))})")
    if dtype == "float32":
        if not np.issubdtype(x.dtype, np.floating):
            raise InputDataError(f"{what} are {x.dtype}; the model takes float32 (it quantizes "
                                 "inside): pass float samples")
        check_finite(x, what)
        return x.astype(np.float32)
    if x.dtype == np.dtype(dtype):
        return x
    if np.issubdtype(x.dtype, np.floating):
        check_finite(x, what)
        info = np.iinfo(dtype)
        q = x.astype(np.float32) / np.float32(spec["scale"])
        q = np.where(q >= 0, np.floor(q + 0.5), -np.floor(-q + 0.5)) + spec["zero_point"]  # TFLite rounds half away
        return np.clip(q, info.min, info.max).astype(dtype)
    raise InputDataError(f"{what} are {x.dtype}; pass {dtype} (already quantized) or float32 samples")


def prepare_inputs(samples, info: dict) -> list[np.ndarray]:
    """User samples -> one array per model input, (N, *input shape) in the
    input's own type: int8/int16 as is, float quantized with the input's scale
    and zero point; a float32 input takes float samples. `samples` is an
    array for a one-input model, or a sequence with one array per input.
    Accepts (N, *shape) with or without the batch dimension of 1."""
    specs = tensor_specs(info, "input")
    arrays = list(samples) if isinstance(samples, (list, tuple)) else [samples]
    if len(arrays) != len(specs):
        raise InputDataError(f"{len(arrays)} input array(s) for a model with {len(specs)} inputs")
    out = [_convert(a, spec, "inputs" if len(specs) == 1 else f"input {k}")
           for k, (a, spec) in enumerate(zip(arrays, specs))]
    if len({len(a) for a in out}) > 1:
        raise InputDataError(f"the inputs hold different numbers of samples: {[len(a) for a in out]}")
    return out


def model_samples(samples: np.ndarray, info: dict) -> np.ndarray:
    """prepare_inputs for a one-input model: its one array."""
    inputs = prepare_inputs(samples, info)
    if len(inputs) != 1:
        raise InputDataError(f"the model has {len(inputs)} inputs; pass one array per input")
    return inputs[0]


def run_all(build_dir: Path, samples, port: str | None = None,
            progress: bool = False) -> tuple[list[np.ndarray], list[int | None]]:
    """Run every sample on the build's target. Returns one array per model
    output, (N, *output shape) in the output's type, and each inference's
    instruction or cycle count (None on the host)."""
    info = read_manifest(build_dir)
    inputs = prepare_inputs(samples, info)
    specs = tensor_specs(info, "output")
    n = len(inputs[0])
    shapes = [_inner(s["shape"]) for s in specs]
    record = np.dtype([(f"o{k}", np.dtype(s["dtype"]), (int(np.prod(shape, dtype=np.int64)),))
                       for k, (s, shape) in enumerate(zip(specs, shapes))])
    raw, counts = [], []
    with get_runner(info["board"], Path(build_dir) / "build", port=port) as runner:
        if info.get("state_bytes"):
            # a stateful model (SVDF) sees one sequence per run: the samples in
            # order, each after the state the previous left (as TFLM keeps its
            # variable tensors across invokes), from zeros at the start
            runner.reset_state()
        rows = range(n)
        bar = click.progressbar(rows, label=f"running on {info['board']}", file=sys.stderr,
                                show_pos=True) if progress else contextlib.nullcontext(rows)
        with bar as items:
            for i in items:
                result = runner.infer(b"".join(np.ascontiguousarray(a[i]).tobytes() for a in inputs))
                raw.append(result.output)
                counts.append(result.count)
    rows = np.frombuffer(b"".join(raw), dtype=record, count=n)
    return [np.array(rows[f"o{k}"]).reshape((n, *shape)) for k, shape in enumerate(shapes)], counts


def run(build_dir: Path, samples, port: str | None = None,
        progress: bool = False) -> tuple[np.ndarray | list[np.ndarray], list[int | None]]:
    """run_all, with the one output's array for a one-output model."""
    outputs, counts = run_all(build_dir, samples, port, progress)
    return (outputs[0] if len(outputs) == 1 else outputs), counts
