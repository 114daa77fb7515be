"""Reading the user's data files (samples, labels) as untrusted input.

np.load with allow_pickle=False runs no code, but trusts the header: a .npy
claiming 58 TiB would try to allocate it. Headers are checked against the
file's size first, and values (NaN samples, fractional labels) before use.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import InputDataError


def _declared_bytes(path: Path) -> int:
    """What the .npy header says the array takes, checked for consistency."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        header_end = f.tell()
    if dtype.hasobject:
        raise ValueError("it holds Python objects, which tinycomp does not load")
    count = int(np.prod(shape, dtype=object))
    declared = count * dtype.itemsize
    available = Path(path).stat().st_size - header_end
    if declared > available:
        raise ValueError(f"its header declares {declared:,} bytes of data but the file holds {available:,}")
    return declared


def load_npy(path: Path, what: str) -> np.ndarray:
    """An array from a .npy file, or InputDataError in one line."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{what} file {path} does not exist" if not path.exists()
                             else f"{what} path {path} is not a file")
    try:
        _declared_bytes(path)
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, MemoryError, SyntaxError, TypeError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputDataError(f"{what} file {path} is not a readable .npy array: {reason}") from None


def load_arrays(path: Path, what: str) -> np.ndarray | list[np.ndarray]:
    """A .npy array, or the arrays of a .npz in np.savez's positional order
    (arr_0, arr_1, ...: one per model input) as a list."""
    path = Path(path)
    if path.suffix != ".npz":
        return load_npy(path, what)
    if not path.is_file():
        raise InputDataError(f"{what} file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
            expected = [f"arr_{k}" for k in range(len(names))]
            if not names or sorted(names) != sorted(expected):
                raise InputDataError(f"{what} file {path} holds {', '.join(names) or 'nothing'}; save one "
                                     "array per model input in order with np.savez(path, x0, x1, ...) "
                                     "(arr_0, arr_1, ...)")
            return [data[name] for name in expected]
    except (OSError, ValueError, EOFError, MemoryError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputDataError(f"{what} file {path} is not a readable .npz archive: {reason}") from None


def check_finite(x: np.ndarray, what: str) -> None:
    """Float samples must be numbers: a NaN would be quantized to some int8 silently."""
    if np.issubdtype(x.dtype, np.floating) and x.size and not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise InputDataError(f"{what} holds {bad} NaN or infinite values")


def class_labels(labels: np.ndarray, samples: int, classes: int | None, what: str = "labels") -> np.ndarray:
    """Integer class indices (N,) from integer labels, integral floats or one-hot
    rows. classes=None checks all but the range (before the model is known)."""
    y = np.asarray(labels)
    if classes is None:
        classes = y.shape[1] if y.ndim == 2 else np.iinfo(np.int64).max
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)
            or y.dtype == np.bool_):
        raise InputDataError(f"{what} are {y.dtype}; give integer class indices")
    if y.ndim == 2 and y.shape[1] == classes and y.shape[0] == samples:
        if not np.all((y == 0) | (y == 1)) or not np.all(y.sum(axis=1) == 1):
            raise InputDataError(f"{what} of shape {y.shape} are not one-hot rows")
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise InputDataError(f"{what} have shape {y.shape}; give (N,) class indices or (N, {classes}) one-hot")
    if len(y) != samples:
        raise InputDataError(f"{len(y)} labels for {samples} samples")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise InputDataError(f"{what} hold NaN or fractional values; give integer class indices")
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise InputDataError(f"{what} must be class indices 0..{classes - 1}, "
                             f"not {int(y.min())}..{int(y.max())}")
    return y.astype(np.int64)
