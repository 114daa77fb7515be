"""The runner interface every target implements (see tinycomp/targets/__init__.py)."""
from __future__ import annotations

import abc
import ctypes
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from ..boards import Board
from ..errors import BuildError, TargetError
from .protocol import ModelInfo

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """In the child, before exec: Linux sends it SIGKILL when tinycomp dies,
    even by SIGKILL, so no emulator or flash tool outlives its parent."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# Keyword arguments for every long-lived child process (subprocess.Popen/run).
CHILD = {"preexec_fn": _die_with_parent} if sys.platform.startswith("linux") else {}


def compiler_error(tool: str, what: str, stderr: str) -> BuildError:
    """One line for a failed compile or link; the whole output goes to the log
    (tinycomp -v shows it). Generated C failing to compile is a tinycomp bug."""
    log.info("%s output:\n%s", tool, stderr)
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    first = next((ln for ln in lines if "error" in ln), lines[0] if lines else "no output")
    first = "".join(c if c.isprintable() and c.isascii() else "?" for c in first)[:240]
    return BuildError(f"{what} failed ({tool}: {first}); run with -v for the whole output")


@dataclass(frozen=True)
class InferResult:
    output: bytes          # TINYCOMP_OUTPUT_SIZE int8 values as raw bytes
    count: int | None      # cost of the inference; None where nothing counts
    unit: str | None       # "instructions" (QEMU -icount), "cycles" (DWT) or None


@dataclass(frozen=True)
class ProfileResult:
    output: bytes
    total: int
    per_layer: tuple[int, ...]   # cost of layer i, from TINYCOMP_LAYER_HOOK(i) to (i + 1)
    unit: str


class Runner(abc.ABC):
    """build -> start -> describe / infer / profile -> close, on one board.

    A runner is a context manager: `with runner:` starts it (if not already
    started) and always closes it, killing emulators and child processes.
    """

    def __init__(self, board: Board, build_dir: Path):
        self.board = board
        self.build_dir = Path(build_dir)

    @abc.abstractmethod
    def build(self, model_src: Path, **options):
        """Compile the generated model library in model_src into build_dir."""

    @abc.abstractmethod
    def start(self) -> None:
        """Flash the board, launch the emulator or spawn the process; then connect."""

    @property
    @abc.abstractmethod
    def started(self) -> bool:
        ...

    @abc.abstractmethod
    def describe(self) -> ModelInfo:
        ...

    @abc.abstractmethod
    def infer(self, data: bytes) -> InferResult:
        ...

    @abc.abstractmethod
    def reset_state(self) -> None:
        """Zero the model's state (SVDF's activation state, variable tensors):
        the next inference starts a new sequence, as after power-up."""

    def profile(self, data: bytes) -> ProfileResult:
        raise TargetError(f"board {self.board.name} cannot profile layers")

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything; safe to call twice."""

    def __enter__(self):
        if not self.started:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
