"""Compile a .tflite with tinycomp for the host and compare it with TFLM bit for bit."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tinycomp.boards import load_board
from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite
from tinycomp.targets.host import HostRunner, build_host

from .tflm import run_tflm

REPO = Path(__file__).resolve().parents[2]
BUILD_CACHE = REPO / ".cache" / "host-builds"


def compile_for_host(tflite_bytes: bytes, extra_flags: tuple[str, ...] = ()) -> HostRunner:
    """Generate the C and build it; a build of the same sources and flags is reused."""
    graph = parse_tflite(tflite_bytes, name="test")
    model = generate(graph)
    digest = hashlib.sha256(repr((sorted(model.files.items()), extra_flags)).encode())
    workdir = BUILD_CACHE / digest.hexdigest()[:16]  # named by content: never stale
    exe = workdir / "build" / "tinycomp_runner"
    if not exe.exists():
        model.write(workdir / "src")
        exe = build_host(load_board("host"), workdir / "src", workdir / "build", extra_flags)
    x, y = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
    return HostRunner(exe, x.size, y.size)


def assert_bit_exact(tflite_bytes: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run inputs (N, *shape) through tinycomp's host build and TFLM; assert equal."""
    ours = compile_for_host(tflite_bytes).infer(inputs)
    ref = run_tflm(tflite_bytes, inputs).reshape(len(inputs), -1)
    diff = ours.astype(np.int32) - ref.astype(np.int32)
    bad = np.count_nonzero(diff)
    assert bad == 0, (f"{bad} of {diff.size} outputs differ from TFLM "
                      f"(largest {np.abs(diff).max()} LSB, first at flat index {np.flatnonzero(diff)[0]})")
    return ours
