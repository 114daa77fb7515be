"""Boards are data: one TOML file per board under boards/, loaded into a Board."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BoardError
from .resources import data_dir


@dataclass(frozen=True)
class Board:
    name: str
    kind: str  # "host", "qemu" or "device"
    description: str = ""
    cc: str = "gcc"
    cflags: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _board_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(data_dir("boards").glob("*.toml"))}


def _aliases(files: dict[str, Path]) -> dict[str, str]:
    aliases = {}
    for name, path in files.items():
        for alias in _read(path).get("aliases", []):
            aliases[alias] = name
    return aliases


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BoardError(f"board file {path} is unreadable: {exc}") from None


def board_names() -> list[str]:
    return list(_board_files())


def load_board(name: str) -> Board:
    files = _board_files()
    name = _aliases(files).get(name, name)
    if name not in files:
        raise BoardError(f"unknown board {name!r}; known boards: {', '.join(files)}")
    data = _read(files[name])
    try:
        return Board(
            name=data["name"],
            kind=data["kind"],
            description=data.get("description", ""),
            cc=data.get("cc", "gcc"),
            cflags=tuple(data.get("cflags", ())),
            raw=data,
        )
    except KeyError as exc:
        raise BoardError(f"board file {files[name]} lacks the key {exc}") from None
