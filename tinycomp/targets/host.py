"""The host target: generated C built with the system compiler and run as a
child process that reads samples on stdin and writes outputs on stdout (raw
bytes: a pipe needs no framing)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np

from ..boards import Board
from ..errors import BuildError, TargetError, TargetTimeout
from ..resources import data_dir
from .base import CHILD, InferResult, Runner, compiler_error
from .protocol import TYPE_NAMES, ModelInfo, TensorSpec

RUNNER = "tinycomp_runner"
HEADER = "tinycomp_model.h"


def build_host(board: Board, src_dir: Path, build_dir: Path, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile the model library and the host runner; returns the executable."""
    if shutil.which(board.cc) is None:
        raise BuildError(f"C compiler {board.cc!r} not found; install it (make setup does)")
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / RUNNER
    partial = build_dir / f".{RUNNER}.{os.getpid()}"  # renamed into place once complete
    sources = sorted(str(p) for p in src_dir.glob("*.c")) + [str(data_dir("firmware") / "host" / "main.c")]
    cmd = [board.cc, *board.cflags, *extra_flags, "-I", str(src_dir), *sources, "-o", str(partial)]
    result = subprocess.run(cmd, capture_output=True, text=True, errors="replace", **CHILD)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise compiler_error(board.cc, f"building {src_dir} for the host", result.stderr)
    shutil.copyfile(src_dir / HEADER, build_dir / HEADER)  # describe() reads it
    os.replace(partial, exe)
    return exe


def header_info(header: Path, board: str) -> ModelInfo:
    """The model's description from the #defines of its generated header."""
    macros = dict(re.findall(r"^#define (TINYCOMP_\w+) (.+)$", header.read_text(), re.M))

    def values(name, kind=int):
        return [kind(v.strip().rstrip("f")) for v in macros[name].strip("{}").split(",") if v.strip()]

    def specs(role):
        codes, nbytes = values(f"TINYCOMP_{role}_TYPE_CODES"), values(f"TINYCOMP_{role}_BYTES_LIST")
        ranks, dims = values(f"TINYCOMP_{role}_RANKS"), values(f"TINYCOMP_{role}_DIMS")
        scales, zps = values(f"TINYCOMP_{role}_SCALES", float), values(f"TINYCOMP_{role}_ZERO_POINTS")
        out, at = [], 0
        for code, n, rank, scale, zp in zip(codes, nbytes, ranks, scales, zps):
            out.append(TensorSpec(TYPE_NAMES[code], n, tuple(dims[at:at + rank]), scale, zp))
            at += rank
        return tuple(out)

    return ModelInfo(
        model_hash=macros["TINYCOMP_MODEL_HASH"].strip('"'), version=macros["TINYCOMP_VERSION"].strip('"'),
        board=board, inputs=specs("INPUT"), outputs=specs("OUTPUT"),
        arena_bytes=int(macros["TINYCOMP_ARENA_BYTES"]), num_layers=int(macros["TINYCOMP_NUM_LAYERS"]))


class HostRunner(Runner):
    """One child process for the runner's lifetime; one sample per infer()."""

    def __init__(self, board: Board, build_dir: Path, timeout: float = 30.0):
        super().__init__(board, build_dir)
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self.info: ModelInfo | None = None

    def build(self, model_src: Path, extra_flags: tuple[str, ...] = ()) -> Path:
        return build_host(self.board, Path(model_src), self.build_dir, extra_flags)

    @property
    def started(self) -> bool:
        return self.process is not None

    def start(self) -> None:
        exe = self.build_dir / RUNNER
        if not exe.exists():
            raise TargetError(f"{self.build_dir} holds no host build; run 'tinycomp build' first")
        self.info = self.describe()
        self.process = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, **CHILD)

    def reset_state(self) -> None:
        # the state lives in the child's static buffers: a new child starts
        # from zeros, exactly what tinycomp_reset_state() leaves
        self.close()
        self.start()

    def describe(self) -> ModelInfo:
        return header_info(self.build_dir / HEADER, self.board.name)

    def _read(self, size: int) -> bytes:
        """Read with a deadline: a hung model must not hang tinycomp."""
        chunks: list[bytes] = []

        def reader():
            remaining = size
            while remaining:
                chunk = self.process.stdout.read1(remaining)
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            raise TargetTimeout(f"the host runner sent no output within {self.timeout:.0f} s")
        return b"".join(chunks)

    def infer(self, data: bytes) -> InferResult:
        if not self.started:
            self.start()
        if len(data) != self.info.input_size:
            raise TargetError(f"sample has {len(data)} bytes, the model takes {self.info.input_size}")
        try:
            self.process.stdin.write(bytes(data))
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # the exit code below says why
        out = self._read(self.info.output_size)
        if len(out) != self.info.output_size:
            code = self.process.wait(timeout=5)
            err = self.process.stderr.read().decode(errors="replace").strip()[-300:]
            raise TargetError(f"the host runner exited with code {code}: {err}")
        return InferResult(out, None, None)

    def close(self) -> None:
        if self.process is not None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
            self.process = None


def run_batch(exe: Path, inputs: list[np.ndarray], outputs: list[tuple[np.dtype, int]],
              timeout: float = 120.0) -> list[np.ndarray]:
    """All samples through one run of the host executable (fast path for tests).

    inputs: one array (N, ...) per model input, in its dtype; outputs: (dtype,
    elements) per model output. Returns one array (N, elements) per output."""
    n = len(inputs[0])
    flat = [np.ascontiguousarray(a).reshape(n, -1) for a in inputs]
    data = flat[0].tobytes() if len(flat) == 1 else \
        b"".join(a[i].tobytes() for i in range(n) for a in flat)
    try:
        result = subprocess.run([str(exe)], input=data, capture_output=True, timeout=timeout, **CHILD)
    except subprocess.TimeoutExpired:
        raise TargetTimeout(f"{exe.name} did not finish {n} samples within {timeout:.0f} s") from None
    if result.returncode != 0:
        raise TargetError(f"{exe.name} exited with code {result.returncode}: "
                          f"{result.stderr.decode(errors='replace').strip()[-300:]}")
    # each sample's outputs follow one another: one record per sample
    record = np.dtype([(f"o{k}", np.dtype(d), (size,)) for k, (d, size) in enumerate(outputs)])
    rows = np.frombuffer(result.stdout, dtype=record, count=n)
    return [np.array(rows[f"o{k}"]) for k in range(len(outputs))]
