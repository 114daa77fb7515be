"""Data-movement ops as index maps: for every output element, which input and
which (flat, row-major) element of it TFLM copies there.

STRIDED_SLICE, SLICE, SPLIT, SPLIT_V, GATHER (constant indices), PACK,
DEPTH_TO_SPACE, SPACE_TO_DEPTH, RESIZE_NEAREST_NEIGHBOR and SHAPE move
values without arithmetic (TFLM copies int8 bytes unchanged, whatever the
quantization), so one numpy evaluation of the op on an array of indices
describes it completely: the code generator turns the map into copy loops,
and the constant-folding pass applies it to constant data. Each map checks
the output shape the file declares against the one the op computes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelError, UnsupportedOpError
from ..ir import Graph, Node, Op


@dataclass(frozen=True)
class SourceMap:
    """For one output, shaped like it: the input number (among the op's data
    inputs) and that input's flat element index for every element."""
    input: np.ndarray
    index: np.ndarray


def _label(node: Node) -> str:
    return f"{node.op.value} at layer {node.index} ({node.name!r})"


def _refuse(node: Node, what: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"{_label(node)}: {what}")


def _const(graph: Graph, node: Node, i: int, what: str) -> np.ndarray:
    if i >= len(node.inputs) or node.inputs[i] < 0:
        raise ModelError(f"{_label(node)}: the {what} input is missing")
    t = graph.tensor(node.inputs[i])
    if not t.is_const:
        raise _refuse(node, f"the {what} must be constant (tinycomp computes shapes at build time)")
    if not np.issubdtype(t.data.dtype, np.integer):
        raise ModelError(f"{_label(node)}: the {what} is {t.data.dtype}, not an integer tensor")
    return t.data.astype(np.int64)


def _positions(shape) -> np.ndarray:
    return np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(shape)


def _one(idx: np.ndarray) -> SourceMap:
    return SourceMap(np.zeros(idx.shape, np.int64), idx)


def _axis(node: Node, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ModelError(f"{_label(node)}: axis {axis} is out of range for rank {rank}")
    return axis % rank


def _strided_slice(graph, node, x):
    rank = len(x.shape)
    begin = _const(graph, node, 1, "begin").reshape(-1)
    end = _const(graph, node, 2, "end").reshape(-1)
    strides = _const(graph, node, 3, "strides").reshape(-1)
    o = node.options
    if o.get("ellipsis_mask", 0) or o.get("new_axis_mask", 0):
        raise _refuse(node, "ellipsis_mask and new_axis_mask are not supported")
    if o.get("offset", False):
        raise _refuse(node, "offset=True is not supported")
    if not len(begin) == len(end) == len(strides) == rank:
        raise ModelError(f"{_label(node)}: begin, end and strides need {rank} values each "
                         f"(got {len(begin)}, {len(end)}, {len(strides)})")
    bm, em, sm = int(o.get("begin_mask", 0)), int(o.get("end_mask", 0)), int(o.get("shrink_axis_mask", 0))
    coords = []
    for d, size in enumerate(x.shape):
        step = int(strides[d])
        if step == 0:
            raise ModelError(f"{_label(node)}: stride 0 on axis {d}")
        lo, hi = (0, size) if step > 0 else (-1, size - 1)
        # TFLM's StartForAxis / StopForAxis: masks, negative indices, clamping
        start = (-(1 << 62) if step > 0 else 1 << 62) if bm >> d & 1 else int(begin[d])
        start = min(max(start + size if start < 0 else start, lo), hi)
        if sm >> d & 1:
            stop = start + 1
        else:
            stop = ((1 << 62) if step > 0 else -(1 << 62)) if em >> d & 1 else int(end[d])
            stop = min(max(stop + size if stop < 0 else stop, lo), hi)
        coords.append(np.arange(start, stop, step, dtype=np.int64))
    idx = _positions(x.shape)[np.ix_(*coords)] if rank else _positions(())
    keep = [d for d in range(rank) if not sm >> d & 1]
    if any(len(coords[d]) != 1 for d in range(rank) if sm >> d & 1):
        raise ModelError(f"{_label(node)}: a shrunk axis selects no element")
    return [idx.reshape([idx.shape[d] for d in keep])]


def _slice(graph, node, x):
    begin = _const(graph, node, 1, "begin").reshape(-1)
    size = _const(graph, node, 2, "size").reshape(-1)
    rank = len(x.shape)
    if len(begin) != rank or len(size) != rank:
        raise ModelError(f"{_label(node)}: begin and size need {rank} values each")
    coords = []
    for d, dim in enumerate(x.shape):
        b, s = int(begin[d]), int(size[d])
        s = dim - b if s == -1 else s
        if b < 0 or s < 0 or b + s > dim:
            raise ModelError(f"{_label(node)}: slice [{b}, {b + s}) of axis {d} is outside its size {dim}")
        coords.append(np.arange(b, b + s, dtype=np.int64))
    return [_positions(x.shape)[np.ix_(*coords)]]


def _split_at(node, x, axis, sizes):
    idx = _positions(x.shape)
    if sum(sizes) != x.shape[axis] or any(s < 0 for s in sizes):
        raise ModelError(f"{_label(node)}: sizes {sizes} do not split axis {axis} of size {x.shape[axis]}")
    return np.split(idx, np.cumsum(sizes)[:-1], axis=axis)


def _split(graph, node, x):
    axis = _axis(node, int(_const(graph, node, 0, "axis").reshape(-1)[0]), len(x.shape))
    n = int(node.options.get("num_splits", len(node.outputs)))
    if n != len(node.outputs) or n <= 0 or x.shape[axis] % n:
        raise ModelError(f"{_label(node)}: {n} splits of axis {axis} (size {x.shape[axis]}) into "
                         f"{len(node.outputs)} outputs")
    return _split_at(node, x, axis, [x.shape[axis] // n] * n)


def _split_v(graph, node, x):
    sizes = [int(s) for s in _const(graph, node, 1, "size_splits").reshape(-1)]
    axis = _axis(node, int(_const(graph, node, 2, "axis").reshape(-1)[0]), len(x.shape))
    if len(sizes) != len(node.outputs):
        raise ModelError(f"{_label(node)}: {len(sizes)} sizes for {len(node.outputs)} outputs")
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    return _split_at(node, x, axis, sizes)


def _gather(graph, node, x):
    indices = _const(graph, node, 1, "indices")
    if int(node.options.get("batch_dims", 0)) != 0:
        raise _refuse(node, "batch_dims other than 0 is not supported")
    axis = _axis(node, int(node.options.get("axis", 0)), len(x.shape))
    if indices.size and (indices.min() < 0 or indices.max() >= x.shape[axis]):
        raise ModelError(f"{_label(node)}: indices outside [0, {x.shape[axis]}) on axis {axis} "
                         "(TFLM fails at run time)")
    return [np.take(_positions(x.shape), indices, axis=axis)]


def _depth_to_space(graph, node, x):
    b = int(node.options.get("block_size", 0))
    if len(x.shape) != 4 or b < 1 or x.shape[3] % (b * b):
        raise ModelError(f"{_label(node)}: block size {b} does not divide the depth of {list(x.shape)}")
    n, h, w, c = x.shape
    idx = _positions(x.shape).reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5)
    return [idx.reshape(n, h * b, w * b, c // (b * b))]


def _space_to_depth(graph, node, x):
    b = int(node.options.get("block_size", 0))
    if len(x.shape) != 4 or b < 1 or x.shape[1] % b or x.shape[2] % b:
        raise ModelError(f"{_label(node)}: block size {b} does not divide the height and width "
                         f"of {list(x.shape)}")
    n, h, w, c = x.shape
    idx = _positions(x.shape).reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5)
    return [idx.reshape(n, h // b, w // b, b * b * c)]


def _nearest(node, out_size: int, in_size: int, align: bool, half: bool) -> np.ndarray:
    """TFLM's GetNearestNeighbor per output coordinate, in float32."""
    f = np.float32
    if align and out_size > 1:
        scale = f(in_size - 1) / f(out_size - 1)
    else:
        scale = f(in_size) / f(out_size)
    offset = f(0.5) if half else f(0.0)
    src = (np.arange(out_size, dtype=np.float32) + offset) * scale
    if align:
        v = np.where(src >= 0, np.floor(src + f(0.5)), -np.floor(-src + f(0.5)))  # TfLiteRound
    else:
        v = np.floor(src)
    v = np.minimum(v.astype(np.int64), in_size - 1)
    return np.maximum(v, 0) if half else v


def _resize_nearest(graph, node, x):
    size = _const(graph, node, 1, "size").reshape(-1)
    if len(x.shape) != 4 or len(size) != 2 or size.min() < 1:
        raise ModelError(f"{_label(node)}: needs a 4-D input and a size of two positive values")
    align = bool(node.options.get("align_corners", False))
    half = bool(node.options.get("half_pixel_centers", False))
    ys = _nearest(node, int(size[0]), x.shape[1], align, half)
    xs = _nearest(node, int(size[1]), x.shape[2], align, half)
    return [_positions(x.shape)[:, ys][:, :, xs]]


def _pack(graph, node, xs):
    shapes = {t.shape for t in xs}
    if len(shapes) != 1:
        raise ModelError(f"{_label(node)}: inputs of different shapes {sorted(map(list, shapes))}")
    rank = len(xs[0].shape) + 1
    axis = _axis(node, int(node.options.get("axis", 0)), rank)
    count = int(node.options.get("values_count", len(xs)))
    if count != len(xs):
        raise ModelError(f"{_label(node)}: values_count {count} for {len(xs)} inputs")
    idx = _positions(xs[0].shape)
    return [SourceMap(np.stack([np.full(idx.shape, k, np.int64) for k in range(len(xs))], axis=axis),
                      np.stack([idx] * len(xs), axis=axis))]


_SINGLE = {
    Op.STRIDED_SLICE: _strided_slice, Op.SLICE: _slice, Op.SPLIT_V: _split_v, Op.GATHER: _gather,
    Op.DEPTH_TO_SPACE: _depth_to_space, Op.SPACE_TO_DEPTH: _space_to_depth,
    Op.RESIZE_NEAREST_NEIGHBOR: _resize_nearest,
}
MAPPED_OPS = frozenset(_SINGLE) | {Op.SPLIT, Op.PACK}


def data_inputs(node: Node) -> list[int]:
    """The tensors whose values the op moves (the others give its geometry)."""
    if node.op == Op.SPLIT:
        return [node.inputs[1]]
    if node.op == Op.PACK:
        return list(node.inputs)
    return [node.inputs[0]]


def source_maps(graph: Graph, node: Node) -> list[SourceMap]:
    """One SourceMap per output of a data-movement op (MAPPED_OPS)."""
    xs = [graph.tensor(t) for t in data_inputs(node)]
    if node.op == Op.PACK:
        maps = _pack(graph, node, xs)
    elif node.op == Op.SPLIT:
        maps = [_one(i) for i in _split(graph, node, xs[0])]
    else:
        maps = [_one(i) for i in _SINGLE[node.op](graph, node, xs[0])]
    if len(maps) != len(node.outputs):
        raise ModelError(f"{_label(node)}: computes {len(maps)} outputs, the file lists {len(node.outputs)}")
    for k, (m, t) in enumerate(zip(maps, node.outputs)):
        declared = graph.tensor(t).shape
        if tuple(m.index.shape) != tuple(declared):
            raise ModelError(f"{_label(node)}: output {k} has shape {list(declared)} in the file, "
                             f"but the op computes {list(m.index.shape)}")
    return maps
