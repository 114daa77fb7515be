"""The op table: each op's kernel template and the function computing its context.

Alias ops (RESHAPE, SQUEEZE, EXPAND_DIMS) have no row: they emit no code.
"""
from __future__ import annotations

from ..ir import Op
from .layer import Kernel
from .ops.fully_connected import fully_connected

KERNELS: dict[Op, Kernel] = {
    Op.FULLY_CONNECTED: Kernel("kernels/fully_connected.c.j2", fully_connected),
}
