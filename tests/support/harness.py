"""Compile a .tflite with tinycomp for the host and compare it with TFLM bit for bit."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tinycomp.boards import load_board
from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tinycomp.targets.host import build_host, run_batch

from .tflm import run_tflm

REPO = Path(__file__).resolve().parents[2]
BUILD_CACHE = REPO / ".cache" / "host-builds"


class HostBuild:
    """A host executable of one model; infer() runs a whole batch in one process."""

    def __init__(self, exe: Path, output_size: int):
        self.exe, self.output_size = exe, output_size

    def infer(self, samples: np.ndarray) -> np.ndarray:
        return run_batch(self.exe, samples, self.output_size)


def compile_for_host(tflite_bytes: bytes, extra_flags: tuple[str, ...] = ()) -> HostBuild:
    """Generate the C and build it; a build of the same sources and flags is reused."""
    graph = parse_tflite(tflite_bytes, name="test")
    model = generate(graph)
    digest = hashlib.sha256(repr((sorted(model.files.items()), extra_flags)).encode())
    workdir = BUILD_CACHE / digest.hexdigest()[:16]  # named by content: never stale
    exe = workdir / "build" / "tinycomp_runner"
    if not exe.exists():
        model.write(workdir / "src")
        exe = build_host(load_board("host"), workdir / "src", workdir / "build", extra_flags)
    return HostBuild(exe, graph.tensor(graph.outputs[0]).size)


def _assert_equal_to_tflm(ours: np.ndarray, tflite_bytes: bytes, inputs: np.ndarray, where: str) -> None:
    ref = run_tflm(tflite_bytes, inputs).reshape(len(inputs), -1)
    diff = ours.astype(np.int32) - ref.astype(np.int32)
    bad = np.count_nonzero(diff)
    assert bad == 0, (f"{bad} of {diff.size} outputs on {where} differ from TFLM "
                      f"(largest {np.abs(diff).max()} LSB, first at flat index {np.flatnonzero(diff)[0]})")


def assert_bit_exact(tflite_bytes: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run inputs (N, *shape) through tinycomp's host build and TFLM; assert equal."""
    ours = compile_for_host(tflite_bytes).infer(inputs)
    _assert_equal_to_tflm(ours, tflite_bytes, inputs, "host")
    return ours


def assert_bit_exact_on_board(tflite_bytes: bytes, inputs: np.ndarray, board: str = "qemu") -> np.ndarray:
    """Build for a QEMU board (firmware cached by generated sources and board),
    run inputs (N, *shape) over serial, assert equal to TFLM; returns the outputs.
    This is how kernels' DSP paths (compiled only for cores with DSP) are proven."""
    from tinycomp.pipeline import build_graph, run

    graph = parse_tflite(tflite_bytes, name="test")
    model = generate(graph)
    digest = hashlib.sha256(repr((sorted(model.files.items()), board)).encode()).hexdigest()[:16]
    out = REPO / ".cache" / "board-builds" / board / digest
    if not (out / "tinycomp.json").exists():
        build_graph(graph, tflite_bytes, out, board)
    samples = np.asarray(inputs, np.int8).reshape((len(inputs), *graph.tensor(graph.inputs[0]).shape[1:]))
    ours = run(out, samples)[0].reshape(len(inputs), -1)
    _assert_equal_to_tflm(ours, tflite_bytes, inputs, board)
    return ours
