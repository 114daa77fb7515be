"""What each op's output shape must be, given its inputs and options.

A model file states every tensor's shape; these rules recompute the output
shapes from the inputs, as TFLite's shape inference would, so that a file
whose shapes disagree (an output larger than its op writes, an FC whose
output hides extra rows) is refused before any code reads past a buffer.
One rule per op; tests check that every Op has one.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import ModelError, UnsupportedOpError
from .graph import Graph, Node, Op

# A model whose options go beyond these is not a microcontroller model, and
# the numbers would no longer fit the C int the kernels index with.
MAX_WINDOW = 1 << 16  # filter sizes, strides, dilations


def conv_out_size(padding: str, size: int, kernel: int, stride: int, dilation: int = 1) -> int:
    """TFLite's ComputeOutSize (C++ division truncates toward zero)."""
    eff = (kernel - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    return int((size + stride - eff) / stride)


class _Check:
    """The node being checked, with short ways to refuse it."""

    def __init__(self, graph: Graph, node: Node):
        self.graph, self.node = graph, node

    def shape(self, i: int) -> tuple[int, ...]:
        return self.graph.tensor(self.node.inputs[i]).shape

    def has(self, i: int) -> bool:
        return i < len(self.node.inputs) and self.node.inputs[i] >= 0

    def const(self, i: int) -> np.ndarray:
        t = self.graph.tensor(self.node.inputs[i])
        if not t.is_const:
            raise self.error(f"input {i} ({t.name!r}) must be a constant tensor")
        return t.data

    @property
    def out(self) -> tuple[int, ...]:
        return self.graph.tensor(self.node.outputs[0]).shape

    def error(self, what: str, kind: type[ModelError] = ModelError) -> ModelError:
        return kind(f"layer {self.node.index} ({self.node.op.value}, {self.node.name!r}): {what}")

    def rank(self, i: int, *ranks: int) -> tuple[int, ...]:
        s = self.shape(i)
        if len(s) not in ranks:
            raise self.error(f"input {i} has shape {list(s)}; expected rank {' or '.join(map(str, ranks))}")
        return s

    def int_option(self, key: str, default: int) -> int:
        value = self.node.options.get(key, default)  # the schema's default when absent
        if not isinstance(value, (int, np.integer)) or not 1 <= int(value) <= MAX_WINDOW:
            raise self.error(f"option {key} = {value!r} must be between 1 and {MAX_WINDOW}")
        return int(value)

    def expect(self, shape, because: str) -> None:
        if tuple(self.out) != tuple(int(d) for d in shape):
            raise self.error(f"output shape {list(self.out)} does not follow from {because} "
                             f"(expected {[int(d) for d in shape]})")


def _window(c: _Check, kh: int, kw: int, channels: int, dilated: bool) -> None:
    n, h, w, _ = c.rank(0, 4)
    padding = c.node.options.get("padding", "SAME")
    if padding not in ("SAME", "VALID"):
        raise c.error(f"padding {padding!r} is not supported")
    sh, sw = c.int_option("stride_h", 1), c.int_option("stride_w", 1)
    dh = c.int_option("dilation_h_factor", 1) if dilated else 1
    dw = c.int_option("dilation_w_factor", 1) if dilated else 1
    oh, ow = conv_out_size(padding, h, kh, sh, dh), conv_out_size(padding, w, kw, sw, dw)
    if oh < 1 or ow < 1:
        raise c.error(f"a {kh}x{kw} window does not fit the {h}x{w} input")
    c.expect((n, oh, ow, channels), f"input {list(c.shape(0))}, a {kh}x{kw} window, "
             f"strides {sh}x{sw}, dilations {dh}x{dw}, {padding}")


_BIAS_TYPE_CODES = {"int32": 2, "int64": 4}  # TFLite's TensorType numbers


def _bias(c: _Check, channels: int) -> None:
    declared = c.node.options.get("quantized_bias_type", 0)
    if declared not in (0, *_BIAS_TYPE_CODES.values()):
        raise c.error(f"quantized_bias_type {declared} is not a bias type TFLite Micro knows")
    if c.has(2):
        b = c.graph.tensor(c.node.inputs[2])
        if not b.is_const or b.dtype not in ("int32", "int64") or b.size != channels:
            raise c.error(f"bias {b.name!r} must be a constant int32 vector of {channels}, "
                          f"not {b.dtype} {list(b.shape)}{'' if b.is_const else ' (computed)'}")
        if declared and declared != _BIAS_TYPE_CODES[b.dtype]:
            raise c.error(f"quantized_bias_type {declared} contradicts the {b.dtype} bias")


def _weights(c: _Check, axis: int) -> None:
    """Constant, quantized, symmetric, one scale or one per output channel."""
    w = c.graph.tensor(c.node.inputs[1])
    if not w.is_const or w.dtype not in ("int8", "int4") or w.quant is None or not w.quant.scale:
        raise c.error(f"weights {w.name!r} must be a constant, quantized int8 (or INT4) tensor")
    if any(w.quant.zero_point):
        raise c.error(f"weights {w.name!r} must be symmetric (zero point 0)", UnsupportedOpError)
    channels = w.shape[axis]
    if len(w.quant.scale) != 1 and (len(w.quant.scale) != channels or w.quant.axis != axis):
        raise c.error(f"weights {w.name!r} have {len(w.quant.scale)} scales along axis {w.quant.axis}; "
                      f"expected 1 or {channels} along axis {axis}")


def _conv(c: _Check) -> None:
    _, _, _, cin = c.rank(0, 4)
    cout, kh, kw, cin_f = c.rank(1, 4)
    _weights(c, 0)
    if cin % cin_f or cout % (cin // cin_f):
        raise c.error(f"filter {list(c.shape(1))} does not split the input's {cin} channels into groups "
                      f"that divide its {cout} filters")
    _bias(c, cout)
    _window(c, kh, kw, cout, dilated=True)


def _depthwise(c: _Check) -> None:
    _, _, _, cin = c.rank(0, 4)
    one, kh, kw, cout = c.rank(1, 4)
    _weights(c, 3)
    if one != 1 or cout % cin:
        raise c.error(f"filter shape {list(c.shape(1))} is not (1, h, w, a multiple of {cin})")
    _bias(c, cout)
    _window(c, kh, kw, cout, dilated=True)


def _pool(c: _Check) -> None:
    channels = c.rank(0, 4)[3]
    _window(c, c.int_option("filter_height", 1), c.int_option("filter_width", 1), channels, dilated=False)


def _fully_connected(c: _Check) -> None:
    units, depth = c.rank(1, 2)
    _weights(c, 0)
    _bias_scale_matches(c)
    fmt = c.node.options.get("weights_format", 0)
    if fmt not in (0, "DEFAULT"):
        raise c.error(f"weights format {fmt} (shuffled) is not supported; convert with the default format")
    size = int(np.prod(c.shape(0), dtype=np.int64))
    if size % depth:
        raise c.error(f"input of {size} values is not a multiple of the weights' depth {depth}")
    _bias(c, units)
    out = c.out
    if not out or out[-1] != units or int(np.prod(out, dtype=np.int64)) != size // depth * units:
        raise c.error(f"output shape {list(out)} does not follow from {size // depth} rows of "
                      f"{depth} inputs and {units} units")


def _bias_scale_matches(c: _Check) -> None:
    """TFLM's FULLY_CONNECTED refuses a bias whose scale is not input scale x
    weight scale (within 2% of the output scale), on the first channel."""
    if not c.has(2):
        return
    x, w, b, y = (c.graph.tensor(t) for t in (*c.node.inputs[:3], c.node.outputs[0]))
    if x.quant is None or y.quant is None:
        return  # refused by the tensor checks
    product = float(np.float32(x.quant.scale[0]) * np.float32(w.quant.scale[0]))  # float32, as C++ does
    bias_scale = b.quant.scale[0] if b.quant is not None and b.quant.scale else 0.0
    if not abs(product - bias_scale) / float(np.float32(y.quant.scale[0])) <= 0.02:
        raise c.error(f"bias scale {bias_scale:.6g} is not input scale x weight scale ({product:.6g}); "
                      "TFLite Micro refuses it")


def _broadcast(c: _Check) -> None:
    try:
        shape = np.broadcast_shapes(c.shape(0), c.shape(1))
    except ValueError:
        raise c.error(f"input shapes {list(c.shape(0))} and {list(c.shape(1))} do not broadcast") from None
    c.expect(shape, f"broadcasting {list(c.shape(0))} with {list(c.shape(1))}")


def _same(c: _Check) -> None:
    c.expect(c.shape(0), "its input")


def _same_size(c: _Check) -> None:
    before, after = (int(np.prod(s, dtype=np.int64)) for s in (c.shape(0), c.out))
    if before != after:
        raise c.error(f"turns {before} values into {after}")


# TFLite copies these option lists into fixed arrays of 8 and refuses longer ones.
MAX_OPTION_DIMS = 8


def _option_list(c: _Check, key: str) -> tuple:
    values = c.node.options.get(key) or ()
    if len(values) > MAX_OPTION_DIMS:
        raise c.error(f"option {key} lists {len(values)} dimensions; TFLite allows {MAX_OPTION_DIMS}")
    return tuple(values)


def _reshape(c: _Check) -> None:
    _option_list(c, "new_shape")  # the output tensor's shape is what counts
    _same_size(c)


def _squeeze(c: _Check) -> None:
    shape = c.shape(0)
    dims = _option_list(c, "squeeze_dims")
    if not dims:  # no list: every dimension of size 1 goes
        c.expect([d for d in shape if d != 1], f"squeezing every size-1 dimension of {list(shape)}")
        return
    if any(not -len(shape) <= a < len(shape) for a in dims):
        raise c.error(f"squeeze_dims {list(dims)} are out of range for a rank-{len(shape)} input")
    gone = {a % len(shape) for a in dims}
    if any(shape[a] != 1 for a in gone):
        raise c.error(f"squeeze_dims {sorted(gone)} name dimensions of {list(shape)} that are not 1")
    c.expect([d for i, d in enumerate(shape) if i not in gone], f"squeezing dimensions {sorted(gone)}")


def _expand_dims(c: _Check) -> None:
    shape = list(c.shape(0))
    axis = c.const(1).reshape(-1)
    if axis.size != 1 or not -len(shape) - 1 <= int(axis[0]) <= len(shape):
        raise c.error(f"axis {axis.tolist()} is not one position in a rank-{len(shape)} input")
    a = int(axis[0]) % (len(shape) + 1)
    c.expect(shape[:a] + [1] + shape[a:], f"inserting a dimension at {a}")


def _mean(c: _Check) -> None:
    shape = c.shape(0)
    axes = set()
    for a in c.const(1).reshape(-1).tolist():
        if not -len(shape) <= a < len(shape):
            raise c.error(f"axis {a} is out of range for a rank-{len(shape)} input")
        axes.add(a % len(shape))
    # Only the size: converters write either rank for keep_dims=False models.
    kept = int(np.prod([d for i, d in enumerate(shape) if i not in axes], dtype=np.int64))
    if int(np.prod(c.out, dtype=np.int64)) != kept:
        raise c.error(f"output shape {list(c.out)} does not hold the {kept} values left after "
                      f"reducing {list(shape)} over axes {sorted(axes)}")


def _concatenation(c: _Check) -> None:
    shapes = [c.shape(i) for i in range(len(c.node.inputs))]
    rank = len(shapes[0])
    axis = c.node.options.get("axis", 0)
    if not isinstance(axis, (int, np.integer)) or not -rank <= axis < rank:
        raise c.error(f"axis {axis} is out of range for rank {rank}")
    axis %= rank
    if any(len(s) != rank or any(s[d] != shapes[0][d] for d in range(rank) if d != axis) for s in shapes):
        raise c.error(f"input shapes {[list(s) for s in shapes]} differ off axis {axis}")
    c.expect([sum(s[axis] for s in shapes) if d == axis else shapes[0][d] for d in range(rank)],
             f"joining {len(shapes)} inputs along axis {axis}")


def _pad(c: _Check) -> None:
    shape = c.shape(0)
    pads = c.const(1).reshape(-1).tolist()
    if len(pads) != 2 * len(shape) or any(p < 0 or p > MAX_WINDOW for p in pads):
        raise c.error(f"paddings {pads} are not {len(shape)} pairs of non-negative sizes")
    c.expect([d + pads[2 * i] + pads[2 * i + 1] for i, d in enumerate(shape)], f"paddings {pads}")


def _index_map(c: _Check) -> None:
    """Data-movement ops: their index map computes (and checks) every output shape."""
    from ..passes.index_maps import source_maps  # passes import the IR: imported here
    try:
        source_maps(c.graph, c.node)
    except (ValueError, IndexError, OverflowError, MemoryError) as exc:  # numpy on absurd geometry
        raise c.error(f"its geometry cannot be computed ({type(exc).__name__})") from None


def _transpose(c: _Check) -> None:
    shape = c.shape(0)
    perm = [int(p) for p in c.const(1).reshape(-1)]
    if sorted(perm) != list(range(len(shape))):  # TFLite refuses negative entries too
        raise c.error(f"permutation {perm} does not reorder the {len(shape)} axes of {list(shape)}")
    c.expect([shape[p] for p in perm], f"permuting {list(shape)} by {perm}")


def _shape_of(c: _Check) -> None:
    c.expect((len(c.shape(0)),), f"the rank of {list(c.shape(0))}")


# op -> (fewest inputs, most inputs, rule); None: any number of inputs
def _svdf(c: _Check) -> None:
    """TFLM's PrepareSvdf: input (batch, input_size), weights_feature
    (filters, input_size), weights_time (filters, memory), bias (filters /
    rank), state a variable (batch, memory * filters), output (batch, units)."""
    batch, depth = c.rank(0, 2)
    filters, wdepth = c.rank(1, 2)
    tfilters, memory = c.rank(2, 2)
    c.const(1)
    c.const(2)
    rank = c.node.options.get("rank", 0)
    if not isinstance(rank, (int, np.integer)) or not 1 <= int(rank) <= filters or filters % int(rank):
        raise c.error(f"rank {rank!r} must be at least 1 and divide the {filters} filters")
    units = filters // int(rank)
    if wdepth != depth or tfilters != filters:
        raise c.error(f"weights_feature {[filters, wdepth]} and weights_time {[tfilters, memory]} do not "
                      f"fit an input of {depth} values and {filters} filters")
    if c.has(3):
        b = c.graph.tensor(c.node.inputs[3])
        if not b.is_const or b.size != units:
            raise c.error(f"bias {b.name!r} must be a constant vector of {units}")
    state = c.graph.tensor(c.node.inputs[4])
    if not state.variable:
        raise c.error(f"state {state.name!r} must be a variable tensor (TFLite Micro requires it)")
    if tuple(state.shape) != (batch, memory * filters):
        raise c.error(f"state shape {list(state.shape)} is not [{batch}, {memory * filters}] "
                      "(batch, memory x filters)")
    c.expect((batch, units), f"{batch} batches and {units} units")


def _transpose_conv(c: _Check) -> None:
    """Inputs: output shape (int32 constant), weights (out_c, kh, kw, in_c),
    input NHWC, bias (out_c). The output shape is the tensor's own; each
    input pixel scatters its window into it (TFLM's reference), so any size
    is well defined, but the batch and channels must follow."""
    shape = c.const(0)
    n, _, _, cin = c.rank(2, 4)
    cout, kh, kw, cin_f = c.rank(1, 4)
    _weights(c, 0)
    if cin_f != cin:
        raise c.error(f"filter {list(c.shape(1))} does not take the input's {cin} channels")
    if c.node.options.get("padding", "SAME") not in ("SAME", "VALID"):
        raise c.error(f"padding {c.node.options.get('padding')!r} is not supported")
    c.int_option("stride_h", 1)
    c.int_option("stride_w", 1)
    if c.has(3):
        b = c.graph.tensor(c.node.inputs[3])
        if not b.is_const or b.dtype != "int32" or b.size != cout:
            raise c.error(f"bias {b.name!r} must be a constant int32 vector of {cout}")
    if [int(v) for v in np.asarray(shape).reshape(-1)] != list(c.out):
        raise c.error(f"output shape tensor {np.asarray(shape).reshape(-1).tolist()} is not the output's "
                      f"shape {list(c.out)}")
    if len(c.out) != 4 or c.out[0] != n or c.out[3] != cout:
        raise c.error(f"output shape {list(c.out)} must be [{n}, h, w, {cout}]")


def batch_matmul_dims(lhs: tuple, rhs: tuple, adj_x: bool, adj_y: bool):
    """(broadcast batch dims, rows, depth of lhs, depth of rhs, cols) of a
    BATCH_MATMUL, or None where the batch dimensions do not broadcast."""
    rank = max(len(lhs), len(rhs))
    lx, rx = (1,) * (rank - len(lhs)) + tuple(lhs), (1,) * (rank - len(rhs)) + tuple(rhs)
    batch = []
    for a, b in zip(lx[:-2], rx[:-2]):
        if a != b and 1 not in (a, b):
            return None
        batch.append(max(a, b))
    rows, ldepth = (lx[-1], lx[-2]) if adj_x else (lx[-2], lx[-1])
    rdepth, cols = (rx[-1], rx[-2]) if adj_y else (rx[-2], rx[-1])
    return tuple(batch), rows, ldepth, rdepth, cols


def _batch_matmul(c: _Check) -> None:
    lhs, rhs = c.shape(0), c.shape(1)
    if not (2 <= len(lhs) <= 5 and 2 <= len(rhs) <= 5):
        raise c.error(f"inputs of ranks {len(lhs)} and {len(rhs)}; TFLite Micro takes ranks 2 to 5")
    dims = batch_matmul_dims(lhs, rhs, bool(c.node.options.get("adj_x", False)),
                             bool(c.node.options.get("adj_y", False)))
    if dims is None:
        raise c.error(f"batch dimensions of {list(lhs)} and {list(rhs)} do not broadcast")
    batch, rows, ldepth, rdepth, cols = dims
    if ldepth != rdepth:
        raise c.error(f"{list(lhs)} and {list(rhs)} do not share the summed dimension ({ldepth} vs {rdepth})")
    c.expect((*batch, rows, cols), f"inputs {list(lhs)} and {list(rhs)}")


def _same_variable(c: _Check, value, role: str) -> None:
    """A resource variable's every use holds the same values: a tensor of its
    state's type, shape and quantization (TFLM copies bytes, so another
    quantization would silently change the values' meaning)."""
    state = c.graph.tensor(c.node.inputs[0])
    if not state.variable:
        raise c.error(f"input 0 ({state.name!r}) is not a variable")
    if (value.dtype, tuple(value.shape)) != (state.dtype, tuple(state.shape)):
        raise c.error(f"{role} is {value.dtype} {list(value.shape)} but the variable {state.name!r} is "
                      f"{state.dtype} {list(state.shape)} elsewhere")
    if value.quant != state.quant:
        raise c.error(f"{role} has another quantization than the variable {state.name!r} elsewhere "
                      "(TFLite Micro copies the bytes unchanged)", UnsupportedOpError)


def _read_variable(c: _Check) -> None:
    _same_variable(c, c.graph.tensor(c.node.outputs[0]), "the output")


def _assign_variable(c: _Check) -> None:
    _same_variable(c, c.graph.tensor(c.node.inputs[1]), "the assigned value")
# UNIDIRECTIONAL_SEQUENCE_LSTM's 24 inputs (TFLite's lstm_shared.h): input 0,
# input_to_{input, forget, cell, output} weights 1-4, recurrent_to_* 5-8,
# peephole cell_to_* 9-11, gate biases 12-15, projection 16-17, the hidden
# (output) state 18 and the cell state 19 (variables), layer norm 20-23.
LSTM_INPUT_WEIGHTS, LSTM_RECURRENT_WEIGHTS, LSTM_BIASES = (1, 2, 3, 4), (5, 6, 7, 8), (12, 13, 14, 15)
LSTM_HIDDEN, LSTM_CELL = 18, 19
_LSTM_FEATURES = {  # optional inputs of LSTM variants TFLite Micro's integer kernel refuses
    "CIFG (no input gate)": (1, 5, 12), "peephole connections": (9, 10, 11),
    "a projection": (16, 17), "layer normalization": (20, 21, 22, 23)}


def _lstm(c: _Check) -> None:
    """TFLM's UnidirectionalSequenceLstmPrepare (lstm_eval_common.cc): the
    standard LSTM only, int8 activations, int8 weights, int32 biases, an
    int16 cell state; input (batch, time, depth), or (time, batch, depth)
    when time_major; output the input's first two dimensions x cells."""
    for what, inputs in _LSTM_FEATURES.items():
        cifg = inputs == _LSTM_FEATURES["CIFG (no input gate)"]  # refused when these are absent
        if any(c.has(i) != cifg for i in inputs):
            raise c.error(f"{what} is not supported (TFLite Micro's integer LSTM has none)", UnsupportedOpError)
    opts = c.node.options
    if opts.get("activation", "TANH") != "TANH":
        raise c.error(f"cell activation {opts.get('activation')} is not supported; TFLite Micro's "
                      "integer LSTM computes TANH only", UnsupportedOpError)
    if opts.get("diagonal_recurrent_tensors"):
        raise c.error("diagonal recurrent weights are not supported (TFLite Micro needs full matrices)",
                      UnsupportedOpError)
    clip = opts.get("cell_clip", 0.0)
    if not isinstance(clip, (int, float)) or not 0.0 <= clip < float("inf"):
        raise c.error(f"cell_clip {clip!r} must be 0 (none) or a positive number")
    d0, d1, depth = c.rank(0, 3)
    batch = d1 if opts.get("time_major") else d0
    x = c.graph.tensor(c.node.inputs[0])
    cells = c.shape(2)[0] if len(c.shape(2)) == 2 else -1
    for i in LSTM_INPUT_WEIGHTS + LSTM_RECURRENT_WEIGHTS:
        w = c.graph.tensor(c.node.inputs[i])
        width = depth if i in LSTM_INPUT_WEIGHTS else cells
        c.const(i)
        if tuple(w.shape) != (cells, width) or w.dtype != "int8":
            raise c.error(f"weights {w.name!r} (input {i}) must be int8 [{cells}, {width}], "
                          f"not {w.dtype} {list(w.shape)}")
    for i in LSTM_BIASES:
        bias = c.graph.tensor(c.node.inputs[i])
        c.const(i)
        if tuple(bias.shape) != (cells,) or bias.dtype != "int32":
            raise c.error(f"bias {bias.name!r} (input {i}) must be int32 [{cells}], not {bias.dtype} "
                          f"{list(bias.shape)}")
    hidden, cell = c.graph.tensor(c.node.inputs[LSTM_HIDDEN]), c.graph.tensor(c.node.inputs[LSTM_CELL])
    for state, dtype in ((hidden, x.dtype), (cell, "int16")):
        if not state.variable or state.dtype != dtype:
            raise c.error(f"state {state.name!r} must be a {dtype} variable tensor (TFLite Micro requires it)")
    if len(hidden.shape) < 2 or hidden.shape[1] != cells or hidden.size != batch * cells or \
            cell.size != batch * cells:
        raise c.error(f"states {list(hidden.shape)} and {list(cell.shape)} do not hold [{batch}, {cells}] "
                      "(batch, cells)")
    for t in opts.get("intermediates", ()):
        if not 0 <= t < len(c.graph.tensors):
            raise c.error(f"intermediate tensor {t} does not exist")
        inter = c.graph.tensor(t)
        # TFLM sizes it by type and shape; no op reads it, so nothing else checked its type
        if inter.dtype.startswith("type"):
            raise c.error(f"intermediate tensor {inter.name!r} has an unknown element type ({inter.dtype[4:]})")
        if inter.nbytes:
            raise c.error(f"intermediate tensor {inter.name!r} has {inter.nbytes} bytes; TFLite Micro supports "
                          "only empty intermediates", UnsupportedOpError)
    if c.graph.tensor(c.node.outputs[0]).dtype != x.dtype:
        raise c.error("the output type differs from the input's")
    c.expect((d0, d1, cells), f"input {[d0, d1, depth]} and {cells} cells")


RULES: dict[Op, tuple[int, int | None, Callable[[_Check], None]]] = {
    Op.CONV_2D: (2, 3, _conv),
    Op.DEPTHWISE_CONV_2D: (2, 3, _depthwise),
    Op.FULLY_CONNECTED: (2, 3, _fully_connected),
    Op.ADD: (2, 2, _broadcast),
    Op.MUL: (2, 2, _broadcast),
    Op.AVERAGE_POOL_2D: (1, 1, _pool),
    Op.MAX_POOL_2D: (1, 1, _pool),
    Op.MEAN: (2, 2, _mean),
    Op.RESHAPE: (1, 2, _reshape),
    Op.SQUEEZE: (1, 1, _squeeze),
    Op.EXPAND_DIMS: (2, 2, _expand_dims),
    Op.CONCATENATION: (1, None, _concatenation),
    Op.PAD: (2, 3, _pad),
    Op.SOFTMAX: (1, 1, _same),
    Op.LOGISTIC: (1, 1, _same),
    Op.TANH: (1, 1, _same),
    Op.RELU: (1, 1, _same),
    Op.RELU6: (1, 1, _same),
    Op.HARD_SWISH: (1, 1, _same),
    Op.QUANTIZE: (1, 1, _same),
    Op.DEQUANTIZE: (1, 1, _same),
    Op.SUB: (2, 2, _broadcast),
    Op.MINIMUM: (2, 2, _broadcast),
    Op.MAXIMUM: (2, 2, _broadcast),
    Op.LEAKY_RELU: (1, 1, _same),
    Op.PRELU: (2, 2, _broadcast),
    Op.STRIDED_SLICE: (4, 4, _index_map),
    Op.SLICE: (3, 3, _index_map),
    Op.SPLIT: (2, 2, _index_map),
    Op.SPLIT_V: (3, 3, _index_map),
    Op.GATHER: (2, 2, _index_map),
    Op.PACK: (1, None, _index_map),
    Op.DEPTH_TO_SPACE: (1, 1, _index_map),
    Op.SPACE_TO_DEPTH: (1, 1, _index_map),
    Op.RESIZE_NEAREST_NEIGHBOR: (2, 2, _index_map),
    Op.SHAPE: (1, 1, _shape_of),
    Op.TRANSPOSE: (2, 2, _transpose),
    Op.SVDF: (5, 5, _svdf),
    Op.TRANSPOSE_CONV: (3, 4, _transpose_conv),
    Op.BATCH_MATMUL: (2, 2, _batch_matmul),
    Op.READ_VARIABLE: (1, 1, _read_variable),
    Op.ASSIGN_VARIABLE: (2, 2, _assign_variable),
    Op.UNIDIRECTIONAL_SEQUENCE_LSTM: (24, 24, _lstm),
}

# Ops with several outputs (their rule checks each), and with none; every
# other op has one.
MULTI_OUTPUT = {Op.SPLIT, Op.SPLIT_V}
NO_OUTPUT = {Op.ASSIGN_VARIABLE}

# Inputs that may be absent (-1): the bias of the ops that have one, and the
# LSTM variants' inputs (refused by name in its rule).
OPTIONAL_INPUTS = {Op.CONV_2D: {2}, Op.DEPTHWISE_CONV_2D: {2}, Op.FULLY_CONNECTED: {2}, Op.SVDF: {3}, Op.TRANSPOSE_CONV: {3},
                   Op.UNIDIRECTIONAL_SEQUENCE_LSTM: {i for v in _LSTM_FEATURES.values() for i in v}}

# The inputs through which an op keeps state between inferences (a variable
# tensor it updates in place); no other input may be a variable tensor.
STATE_INPUTS = {Op.SVDF: {4}, Op.READ_VARIABLE: {0}, Op.ASSIGN_VARIABLE: {0},
                Op.UNIDIRECTIONAL_SEQUENCE_LSTM: {LSTM_HIDDEN, LSTM_CELL}}


def check_node_shapes(graph: Graph, node: Node) -> None:
    """Raise ModelError unless node's input count and output shape are what its op computes."""
    fewest, most, rule = RULES[node.op]
    c = _Check(graph, node)
    n = len(node.inputs)
    if n < fewest or (most is not None and n > most):
        raise c.error(f"has {n} inputs; the op takes {fewest}" + ("" if most == fewest else
                                                                 f" to {most or 'any number'}"))
    optional = OPTIONAL_INPUTS.get(node.op, set())
    for i, t in enumerate(node.inputs):
        if t < 0 and i not in optional:
            raise c.error(f"input {i} is missing")
    if node.op in NO_OUTPUT:
        if node.outputs:
            raise c.error(f"has {len(node.outputs)} outputs; the op has none")
    elif len(node.outputs) != 1 and not (node.op in MULTI_OUTPUT and node.outputs):
        raise c.error(f"has {len(node.outputs)} outputs; the op has 1")
    rule(c)
