"""The host target: generated C built with the system compiler, run as a child
process that reads samples on stdin and writes outputs on stdout."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..boards import Board
from ..errors import BuildError, TargetError, TargetTimeout
from ..resources import data_dir

RUNNER = "tinycomp_runner"


def build_host(board: Board, src_dir: Path, build_dir: Path, extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile the model library and the host runner; returns the executable."""
    if shutil.which(board.cc) is None:
        raise BuildError(f"C compiler {board.cc!r} not found; install it (make setup does)")
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / RUNNER
    partial = build_dir / f".{RUNNER}.{os.getpid()}"  # renamed into place once complete
    sources = sorted(str(p) for p in src_dir.glob("*.c")) + [str(data_dir("firmware") / "host" / "main.c")]
    cmd = [board.cc, *board.cflags, *extra_flags, "-I", str(src_dir), *sources, "-o", str(partial)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        partial.unlink(missing_ok=True)
        raise BuildError(f"{board.cc} failed building {src_dir}:\n{tail}")
    os.replace(partial, exe)
    return exe


class HostRunner:
    """Runs a built host executable; one process per batch of samples."""

    def __init__(self, exe: Path, input_size: int, output_size: int, timeout: float = 60.0):
        self.exe, self.input_size, self.output_size, self.timeout = exe, input_size, output_size, timeout

    def infer(self, samples: np.ndarray) -> np.ndarray:
        """samples: int8 (N, input_size...) -> int8 (N, output_size)."""
        data = np.ascontiguousarray(samples, dtype=np.int8).reshape(len(samples), -1)
        if data.shape[1] != self.input_size:
            raise TargetError(f"sample has {data.shape[1]} values, the model takes {self.input_size}")
        try:
            result = subprocess.run([str(self.exe)], input=data.tobytes(), capture_output=True,
                                    timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise TargetTimeout(f"{self.exe.name} did not finish {len(data)} samples "
                                f"within {self.timeout:.0f} s") from None
        if result.returncode != 0:
            raise TargetError(f"{self.exe.name} exited with code {result.returncode}: "
                              f"{result.stderr.decode(errors='replace').strip()[-300:]}")
        out = np.frombuffer(result.stdout, dtype=np.int8)
        if out.size != len(data) * self.output_size:
            raise TargetError(f"{self.exe.name} wrote {out.size} bytes, expected "
                              f"{len(data) * self.output_size}")
        return out.reshape(len(data), self.output_size)
