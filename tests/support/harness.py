"""Compile a .tflite with tinycomp for the host and compare it with TFLM bit for bit."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from tinycomp.boards import load_board
from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tinycomp.targets.host import build_host, run_batch

from .tflm import run_tflm

REPO = Path(__file__).resolve().parents[2]
BUILD_CACHE = REPO / ".cache" / "host-builds"


CTYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4,
               "int64_t": 8}


def declared_arrays(model) -> dict[str, tuple[str, int]]:
    """C name -> (C type, bytes) of every constant array a generated model's
    tinycomp_weights.c declares."""
    return {name: (ctype, CTYPE_BYTES[ctype] * int(n)) for ctype, name, n in
            re.findall(r"const (\w+) (tinycomp_w_\w+)\[(\d+)\]", model.files["tinycomp_weights.c"])}


class HostBuild:
    """A host executable of one model; infer() runs a whole batch in one process."""

    def __init__(self, exe: Path, outputs: list[tuple[str, int]]):
        self.exe, self.outputs = exe, outputs

    @property
    def output_size(self) -> int:
        return self.outputs[0][1]

    def infer(self, samples):
        """samples: an array (N, ...) per input (one array for a one-input
        model); returns (N, size) per output (one array for one output)."""
        outs = run_batch(self.exe, _as_list(samples), self.outputs)
        return outs[0] if len(outs) == 1 else outs


def _as_list(samples) -> list[np.ndarray]:
    return list(samples) if isinstance(samples, (list, tuple)) else [samples]


def compile_for_host(tflite_bytes: bytes, extra_flags: tuple[str, ...] = (),
                     storage: str = "balanced") -> HostBuild:
    """Generate the C (weights stored as build --optimize `storage` says) and
    build it; a build of the same sources and flags is reused."""
    graph = parse_tflite(tflite_bytes, name="test")
    model = generate(graph, storage=storage)
    digest = hashlib.sha256(repr((sorted(model.files.items()), extra_flags)).encode())
    workdir = BUILD_CACHE / digest.hexdigest()[:16]  # named by content: never stale
    exe = workdir / "build" / "tinycomp_runner"
    if not exe.exists():
        model.write(workdir / "src")
        exe = build_host(load_board("host"), workdir / "src", workdir / "build", extra_flags)
    outs = [graph.tensor(t) for t in graph.outputs]
    return HostBuild(exe, [(t.dtype, t.size) for t in outs])


def extreme_samples(tflite_bytes: bytes, seed: int, count: int) -> list[np.ndarray]:
    """Random int8 samples (count, *shape) for every model input, the first
    all -128 and the second all 127: the extremes stress accumulators and clamps."""
    graph = parse_tflite(tflite_bytes)
    rng = np.random.default_rng(seed)
    inputs = []
    for t in graph.inputs:
        a = rng.integers(-128, 128, (count, *graph.tensor(t).shape)).astype(np.int8)
        a[0].fill(-128)
        a[1].fill(127)
        inputs.append(a)
    return inputs


def bits(a: np.ndarray) -> np.ndarray:
    """Values to compare bit for bit: integers widened, floats as their bits."""
    a = np.asarray(a)
    if a.dtype == np.float32:
        return a.view(np.int32).astype(np.int64)
    return a.astype(np.int64)


def _assert_equal_to_tflm(ours, tflite_bytes: bytes, inputs, where: str) -> None:
    refs = run_tflm(tflite_bytes, inputs)
    refs, ours = _as_list(refs), _as_list(ours)
    assert len(refs) == len(ours)
    n = len(_as_list(inputs)[0])
    for k, (mine, ref) in enumerate(zip(ours, refs)):
        mine, ref = np.asarray(mine).reshape(n, -1), np.asarray(ref).reshape(n, -1)
        assert mine.dtype == ref.dtype, f"output {k}: {mine.dtype} here, {ref.dtype} in TFLM"
        diff = bits(mine) - bits(ref)
        bad = np.count_nonzero(diff)
        if ref.dtype == np.float32:
            diff = mine.astype(np.float64) - ref.astype(np.float64)
        assert bad == 0, (f"output {k}: {bad} of {diff.size} values on {where} differ from TFLM "
                          f"(largest {np.abs(diff).max()}{' LSB' if ref.dtype != np.float32 else ''}, "
                          f"first at flat index {np.flatnonzero(diff)[0]})")


def assert_bit_exact(tflite_bytes: bytes, inputs, storage: str = "balanced") -> np.ndarray:
    """Run inputs (N, *shape) (a list of such arrays for several inputs, each
    in its input's dtype) through tinycomp's host build (build --optimize
    `storage`) and TFLM; assert equal."""
    ours = compile_for_host(tflite_bytes, storage=storage).infer(inputs)
    _assert_equal_to_tflm(ours, tflite_bytes, inputs, "host")
    return ours


def assert_bit_exact_on_board(tflite_bytes: bytes, inputs, board: str = "qemu",
                              storage: str = "balanced", features: frozenset[str] | None = None):
    """Build for a QEMU board (firmware cached by generated sources and board),
    run inputs (N, *shape) (a list for several inputs) over serial, assert equal
    to TFLM; returns the outputs (N, size) (a list for several outputs).
    This is how kernels' DSP paths (compiled only for cores with DSP) are proven.
    `features` replaces the board's when choosing kernels (the C stays the
    board's to compile)."""
    from tinycomp.pipeline import build_graph, run_all

    graph = parse_tflite(tflite_bytes, name="test")
    # the board's kernels (MVE on an547), weights stored as build --optimize `storage` says
    features = load_board(board).features if features is None else frozenset(features)
    model = generate(graph, storage=storage, features=features)
    digest = hashlib.sha256(repr((sorted(model.files.items()), board)).encode()).hexdigest()[:16]
    out = REPO / ".cache" / "board-builds" / board / digest
    if not (out / "tinycomp.json").exists():
        build_graph(graph, tflite_bytes, out, board, optimize=storage, features=features)
    arrays = _as_list(inputs)
    # (N, *shape), the batch dimension dropped only where it is 1 (run_all's convention)
    inner = lambda s: s[1:] if s and s[0] == 1 else s  # noqa: E731
    samples = [np.asarray(a, graph.tensor(t).dtype).reshape((len(a), *inner(graph.tensor(t).shape)))
               for a, t in zip(arrays, graph.inputs)]
    ours, _ = run_all(out, samples)
    ours = [o.reshape(len(arrays[0]), -1) for o in ours]
    _assert_equal_to_tflm(ours, tflite_bytes, inputs, board)
    return ours[0] if len(ours) == 1 else ours
