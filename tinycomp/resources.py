"""Locate the data folders (templates/, firmware/, boards/) that ship with tinycomp.

In a wheel they sit inside the package as tinycomp/_data/<name>; in a source
checkout (editable install) they are top-level folders of the repository.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tinycomp data folder {name!r} is missing from the installation")
