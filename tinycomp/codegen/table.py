"""The op table: each op's kernel template and the function computing its context.

Alias ops (RESHAPE, SQUEEZE, EXPAND_DIMS) have no row: they emit no code.
"""
from __future__ import annotations

from ..ir import Op
from .layer import Kernel
from .ops.conv import conv_2d, depthwise_conv_2d
from .ops.fully_connected import fully_connected
from .ops.elementwise import add, mul
from .ops.pooling import average_pool_2d, max_pool_2d, mean

KERNELS: dict[Op, Kernel] = {
    Op.FULLY_CONNECTED: Kernel("kernels/fully_connected.c.j2", fully_connected),
    Op.CONV_2D: Kernel("kernels/conv_2d.c.j2", conv_2d),
    Op.DEPTHWISE_CONV_2D: Kernel("kernels/depthwise_conv_2d.c.j2", depthwise_conv_2d),
    Op.ADD: Kernel("kernels/add.c.j2", add),
    Op.MUL: Kernel("kernels/mul.c.j2", mul),
    Op.AVERAGE_POOL_2D: Kernel("kernels/average_pool_2d.c.j2", average_pool_2d),
    Op.MAX_POOL_2D: Kernel("kernels/max_pool_2d.c.j2", max_pool_2d),
    Op.MEAN: Kernel("kernels/mean.c.j2", mean),
}
