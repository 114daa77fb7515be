"""The op table: each op's kernel template and the function computing its context.

Alias ops (RESHAPE, SQUEEZE, EXPAND_DIMS) have no row: they emit no code.
"""
from __future__ import annotations

from ..ir import Op
from .layer import Kernel
from .ops.depthwise import depthwise_conv_2d
from .ops import activations as act
from .ops.elementwise import add, mul
from .ops.pooling import average_pool_2d, max_pool_2d, mean
from .ops.shape import concatenation, pad, transpose
from .ops.sparse import conv_2d_auto, fully_connected_auto

KERNELS: dict[Op, Kernel] = {
    Op.FULLY_CONNECTED: Kernel("kernels/fully_connected.c.j2", fully_connected_auto),
    Op.SOFTMAX: Kernel("kernels/softmax.c.j2", act.softmax),
    Op.LOGISTIC: Kernel("kernels/lut.c.j2", act.logistic),
    Op.TANH: Kernel("kernels/lut.c.j2", act.tanh),
    Op.RELU: Kernel("kernels/lut.c.j2", act.relu),
    Op.RELU6: Kernel("kernels/lut.c.j2", act.relu6),
    Op.HARD_SWISH: Kernel("kernels/lut.c.j2", act.hard_swish),
    Op.QUANTIZE: Kernel("kernels/lut.c.j2", act.quantize),
    Op.CONV_2D: Kernel("kernels/conv_2d.c.j2", conv_2d_auto),
    Op.DEPTHWISE_CONV_2D: Kernel("kernels/depthwise_conv_2d.c.j2", depthwise_conv_2d),
    Op.ADD: Kernel("kernels/add.c.j2", add),
    Op.MUL: Kernel("kernels/mul.c.j2", mul),
    Op.AVERAGE_POOL_2D: Kernel("kernels/average_pool_2d.c.j2", average_pool_2d),
    Op.MAX_POOL_2D: Kernel("kernels/max_pool_2d.c.j2", max_pool_2d),
    Op.MEAN: Kernel("kernels/mean.c.j2", mean),
    Op.CONCATENATION: Kernel("kernels/concatenation.c.j2", concatenation),
    Op.PAD: Kernel("kernels/pad.c.j2", pad),
    Op.TRANSPOSE: Kernel("kernels/transpose.c.j2", transpose),
}
