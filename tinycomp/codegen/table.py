"""The op table: each op's kernel template and the function computing its context.

Alias ops (RESHAPE, SQUEEZE, EXPAND_DIMS) have no row: they emit no code.
"""
from __future__ import annotations

from ..ir import Op
from .layer import Kernel
from .ops.conv import conv_2d, depthwise_conv_2d
from .ops.fully_connected import fully_connected

KERNELS: dict[Op, Kernel] = {
    Op.FULLY_CONNECTED: Kernel("kernels/fully_connected.c.j2", fully_connected),
    Op.CONV_2D: Kernel("kernels/conv_2d.c.j2", conv_2d),
    Op.DEPTHWISE_CONV_2D: Kernel("kernels/depthwise_conv_2d.c.j2", depthwise_conv_2d),
}
