"""The op table: each (op, input type, output type)'s kernel template and the
function computing its context. The types are the first activation input's
and the output's numpy dtype names; a new type adds rows, not branches.

Alias ops (RESHAPE, SQUEEZE, EXPAND_DIMS) have no row: they emit no code.
"""
from __future__ import annotations

from ..ir import Op
from .layer import Kernel, Layer
from .ops.depthwise import depthwise_conv_2d
from .ops import activations as act
from .ops.gather import data_movement
from .ops.elementwise import add, maximum, minimum, mul, prelu, sub
from .ops.pooling import average_pool_2d, max_pool_2d, mean
from .ops.quantize import dequantize, quantize_float, requantize
from .ops.shape import concatenation, pad, transpose
from .ops.sparse import dense_or_sparse
from .ops.svdf import svdf
from .ops.variables import assign_variable, read_variable
from .ops.lstm import lstm
from .ops.batch_matmul import batch_matmul
from .ops.transpose_conv import transpose_conv
from .ops.int16 import conv_2d16, depthwise_conv_2d16, fully_connected16
from .ops.int16_act import leaky_relu16, logistic16, relu16, relu6_16, softmax16, tanh16
from .ops.mve import add_mve, average_pool_mve, conv_2d_mve, depthwise_mve, fully_connected_mve

I8, I16, I32, U8, F32 = "int8", "int16", "int32", "uint8", "float32"

# Ops that move values without arithmetic: passes/index_maps.py maps them
DATA_MOVEMENT = (Op.STRIDED_SLICE, Op.SLICE, Op.SPLIT, Op.SPLIT_V, Op.GATHER, Op.PACK,
                 Op.DEPTH_TO_SPACE, Op.SPACE_TO_DEPTH, Op.RESIZE_NEAREST_NEIGHBOR)

# Ops on int8 activations: one row each, (op, int8, int8).
_INT8: dict[Op, Kernel] = {
    Op.FULLY_CONNECTED: Kernel("kernels/fully_connected.c.j2", dense_or_sparse),
    Op.SOFTMAX: Kernel("kernels/softmax.c.j2", act.softmax),
    Op.LOGISTIC: Kernel("kernels/lut.c.j2", act.logistic),
    Op.TANH: Kernel("kernels/lut.c.j2", act.tanh),
    Op.RELU: Kernel("kernels/lut.c.j2", act.relu),
    Op.RELU6: Kernel("kernels/lut.c.j2", act.relu6),
    Op.HARD_SWISH: Kernel("kernels/lut.c.j2", act.hard_swish),
    Op.CONV_2D: Kernel("kernels/conv_2d.c.j2", dense_or_sparse),
    Op.DEPTHWISE_CONV_2D: Kernel("kernels/depthwise_conv_2d.c.j2", depthwise_conv_2d),
    Op.ADD: Kernel("kernels/add.c.j2", add),
    Op.MUL: Kernel("kernels/mul.c.j2", mul),
    Op.SUB: Kernel("kernels/add.c.j2", sub),
    Op.MINIMUM: Kernel("kernels/minmax.c.j2", minimum),
    Op.MAXIMUM: Kernel("kernels/minmax.c.j2", maximum),
    Op.PRELU: Kernel("kernels/prelu.c.j2", prelu),
    Op.LEAKY_RELU: Kernel("kernels/lut.c.j2", act.leaky_relu),
    **{op: Kernel("kernels/gather.c.j2", data_movement) for op in DATA_MOVEMENT},
    Op.AVERAGE_POOL_2D: Kernel("kernels/average_pool_2d.c.j2", average_pool_2d),
    Op.MAX_POOL_2D: Kernel("kernels/max_pool_2d.c.j2", max_pool_2d),
    Op.MEAN: Kernel("kernels/mean.c.j2", mean),
    Op.CONCATENATION: Kernel("kernels/concatenation.c.j2", concatenation),
    Op.PAD: Kernel("kernels/pad.c.j2", pad),
    Op.TRANSPOSE: Kernel("kernels/transpose.c.j2", transpose),
    # int16 state, in place (a variable tensor outside the arena)
    Op.SVDF: Kernel("kernels/svdf.c.j2", svdf),
    Op.TRANSPOSE_CONV: Kernel("kernels/transpose_conv.c.j2", transpose_conv),
    Op.BATCH_MATMUL: Kernel("kernels/batch_matmul.c.j2", batch_matmul),
    # resource variables: copies to and from their state buffer
    Op.READ_VARIABLE: Kernel("kernels/variable.c.j2", read_variable),
    Op.ASSIGN_VARIABLE: Kernel("kernels/variable.c.j2", assign_variable),
    # int8 in and out; int8 hidden and int16 cell state in place
    Op.UNIDIRECTIONAL_SEQUENCE_LSTM: Kernel("kernels/lstm.c.j2", lstm),
}

# TFLite's 16x8 scheme: int16 activations (symmetric), int8 weights, int64
# bias; plain C kernels (ops/int16.py and the int8 families' int16 rows).
_INT16: dict[tuple[Op, str, str], Kernel] = {
    (Op.FULLY_CONNECTED, I16, I16): Kernel("kernels/int16/conv.c.j2", fully_connected16),
    (Op.CONV_2D, I16, I16): Kernel("kernels/int16/conv.c.j2", conv_2d16),
    (Op.DEPTHWISE_CONV_2D, I16, I16): Kernel("kernels/int16/conv.c.j2", depthwise_conv_2d16),
    (Op.ADD, I16, I16): Kernel("kernels/add.c.j2", add),
    (Op.SUB, I16, I16): Kernel("kernels/add.c.j2", sub),
    (Op.MUL, I16, I16): Kernel("kernels/mul.c.j2", mul),
    (Op.AVERAGE_POOL_2D, I16, I16): Kernel("kernels/average_pool_2d.c.j2", average_pool_2d),
    (Op.MAX_POOL_2D, I16, I16): Kernel("kernels/max_pool_2d.c.j2", max_pool_2d),
    (Op.QUANTIZE, I16, I16): Kernel("kernels/requantize.c.j2", requantize),
    # int32 model inputs and outputs (converted right at the edge)
    (Op.QUANTIZE, I32, I16): Kernel("kernels/requantize.c.j2", requantize),
    (Op.QUANTIZE, I16, I32): Kernel("kernels/requantize.c.j2", requantize),
    (Op.QUANTIZE, I32, I8): Kernel("kernels/requantize.c.j2", requantize),
    (Op.QUANTIZE, I8, I32): Kernel("kernels/requantize.c.j2", requantize),
    (Op.LOGISTIC, I16, I16): Kernel("kernels/int16/sigmoid.c.j2", logistic16),
    (Op.TANH, I16, I16): Kernel("kernels/int16/sigmoid.c.j2", tanh16),
    (Op.RELU, I16, I16): Kernel("kernels/int16/rescale.c.j2", relu16),
    (Op.MEAN, I16, I16): Kernel("kernels/mean.c.j2", mean),
    (Op.SOFTMAX, I16, I16): Kernel("kernels/int16/softmax.c.j2", softmax16),
    (Op.RELU6, I16, I16): Kernel("kernels/int16/rescale.c.j2", relu6_16),
    (Op.LEAKY_RELU, I16, I16): Kernel("kernels/int16/rescale.c.j2", leaky_relu16),
    (Op.CONCATENATION, I16, I16): Kernel("kernels/concatenation.c.j2", concatenation),
    (Op.PAD, I16, I16): Kernel("kernels/pad.c.j2", pad),
    (Op.TRANSPOSE, I16, I16): Kernel("kernels/transpose.c.j2", transpose),
    (Op.READ_VARIABLE, I16, I16): Kernel("kernels/variable.c.j2", read_variable),
    (Op.ASSIGN_VARIABLE, I16, I16): Kernel("kernels/variable.c.j2", assign_variable),
    # not GATHER, DEPTH_TO_SPACE, SPACE_TO_DEPTH: TFLM has no int16 kernel for them (measured)
    **{(op, I16, I16): Kernel("kernels/gather.c.j2", data_movement) for op in DATA_MOVEMENT
       if op not in (Op.GATHER, Op.DEPTH_TO_SPACE, Op.SPACE_TO_DEPTH)},
}

KERNELS: dict[tuple[Op, str, str], Kernel] = {
    **{(op, I8, I8): kernel for op, kernel in _INT8.items()},
    (Op.QUANTIZE, I8, I8): Kernel("kernels/lut.c.j2", act.quantize),
    # conversions at the model's edges (frontends/tflite.py allows no other
    # place for float32 and int16 tensors)
    (Op.QUANTIZE, F32, I8): Kernel("kernels/quantize_float.c.j2", quantize_float),
    (Op.QUANTIZE, I16, I8): Kernel("kernels/requantize.c.j2", requantize),
    (Op.QUANTIZE, I8, I16): Kernel("kernels/requantize.c.j2", requantize),
    (Op.QUANTIZE, U8, I8): Kernel("kernels/requantize.c.j2", requantize),
    (Op.QUANTIZE, I8, U8): Kernel("kernels/requantize.c.j2", requantize),
    (Op.DEQUANTIZE, I8, F32): Kernel("kernels/dequantize.c.j2", dequantize),
    **{key: kernel for key, kernel in _INT16.items()},
}


# Rows for a core feature (the board's `core.features`: "dsp", "mve"), tried
# before the plain row when the board has the feature, in FEATURES order. A
# feature row's context may return None to hand the layer to the plain row
# (e.g. sparse weights or a fused residual ADD). DSP code needs no rows of
# its own: the plain templates hold it under #if __ARM_FEATURE_DSP.
FEATURES = ("mve",)
FEATURE_KERNELS: dict[tuple[Op, str, str, str], Kernel] = {
    (Op.FULLY_CONNECTED, I8, I8, "mve"): Kernel("kernels/mve/fully_connected.c.j2", fully_connected_mve),
    (Op.CONV_2D, I8, I8, "mve"): Kernel("kernels/mve/conv_2d.c.j2", conv_2d_mve),
    (Op.DEPTHWISE_CONV_2D, I8, I8, "mve"): Kernel("kernels/mve/depthwise_conv_2d.c.j2", depthwise_mve),
    (Op.ADD, I8, I8, "mve"): Kernel("kernels/mve/add.c.j2", add_mve),
    (Op.SUB, I8, I8, "mve"): Kernel("kernels/mve/add.c.j2", add_mve),
    (Op.AVERAGE_POOL_2D, I8, I8, "mve"): Kernel("kernels/mve/average_pool_2d.c.j2", average_pool_mve),
}


def kernel_key(layer: Layer) -> tuple[Op, str, str]:
    """The row a layer takes: its op, its first activation input's type and
    its output's type (an op without output, ASSIGN_VARIABLE: the input's)."""
    acts = layer.activation_inputs()
    src = acts[0].dtype if acts else layer.input(0).dtype
    return layer.node.op, src, (layer.output().dtype if layer.node.outputs else src)


def feature_kernels(layer: Layer, features: frozenset[str] = frozenset()) -> list[Kernel]:
    """The feature rows a layer may take on a core with `features`, best first."""
    key = kernel_key(layer)
    return [FEATURE_KERNELS[(*key, f)] for f in FEATURES
            if f in features and (*key, f) in FEATURE_KERNELS]


def kernel_for(layer: Layer) -> Kernel:
    """The plain row (any core)."""
    key = kernel_key(layer)
    kernel = KERNELS.get(key)
    if kernel is None:
        op, src, dst = key
        known = sorted(f"{s} -> {d}" for o, s, d in KERNELS if o == op)
        raise layer.refuse(f"{src} -> {dst} is not supported"
                           + (f" (tinycomp compiles {', '.join(known)})" if known else
                              " (no kernel in this version of tinycomp)"))
    return kernel
