"""Data-movement ops (STRIDED_SLICE, SLICE, SPLIT, SPLIT_V, GATHER, PACK,
DEPTH_TO_SPACE, SPACE_TO_DEPTH, RESIZE_NEAREST_NEIGHBOR) as copy loops.

passes/index_maps.py says, for every output element, which input element
TFLM copies there. Each (input, output) pair becomes one part: a box of the
output whose source index is a sum of one term per output axis (checked
here), so the part is a loop nest in which each axis steps the source by a
constant stride or through a small table, and the innermost run of
consecutive bytes on both sides is one memcpy. TFLM copies int8 bytes
unchanged whatever the quantization, and so does this.
"""
from __future__ import annotations

import numpy as np

from ...passes.index_maps import data_inputs, source_maps
from ..layer import Layer
from .elementwise import operand_exprs


def _strides(shape) -> list[int]:
    out, step = [], 1
    for d in reversed(shape):
        out.append(step)
        step *= int(d)
    return out[::-1]


def _axis_terms(index: np.ndarray):
    """Per axis, the source offset of each coordinate, if the index is
    separable (index[o] = base + sum_d term_d[o_d]); else None."""
    base = int(index.flat[0]) if index.size else 0
    terms = []
    for d in range(index.ndim):
        sel = [0] * index.ndim
        sel[d] = slice(None)
        terms.append(index[tuple(sel)].astype(np.int64) - base)
    total = np.full(index.shape, base, np.int64)
    for d, t in enumerate(terms):
        shape = [1] * index.ndim
        shape[d] = len(t)
        total = total + t.reshape(shape)
    return (base, terms) if np.array_equal(total, index) else None


def _separable_groups(layer: Layer, index: np.ndarray, out_shape, box):
    """Groups of adjacent output axes (each group one loop level) over which
    the source index is separable, merging the axes that are not (GATHER
    with 2-D indices: the two index axes become one level with one table).
    Returns (base, per group: size, dst stride, source terms)."""
    groups = [[d] for d in range(index.ndim)]
    out_strides = _strides(out_shape)
    while True:
        shape = [int(np.prod([index.shape[d] for d in g])) for g in groups]
        sep = _axis_terms(index.reshape(shape)) if shape else (int(index.flat[0]), [])
        if sep is not None:
            break
        sub = next((j for j in range(len(groups) - 1)
                    if _axis_terms(_plane(index.reshape(shape), j)) is None), len(groups) - 2)
        inner = groups[sub + 1]
        if any(box[d][1] != out_shape[d] for d in inner):  # dst must stay affine in the merged axis
            raise layer.refuse("its index map is not separable per axis (no kernel for it)")
        groups[sub:sub + 2] = [groups[sub] + inner]
    base, terms = sep
    return base, [(size, out_strides[g[-1]], t) for size, g, t in zip(shape, groups, terms)]


def _plane(index: np.ndarray, j: int) -> np.ndarray:
    """The 2-D slice of index over axes j, j + 1, the others at 0."""
    sel = [0] * index.ndim
    sel[j], sel[j + 1] = slice(None), slice(None)
    return index[tuple(sel)]


def _part(layer: Layer, src: str, dst: str, out_shape, box, index: np.ndarray, k: int) -> dict:
    """Loops of one part: box = (start, size) per output axis."""
    base, groups = _separable_groups(layer, index, out_shape, box)
    out_strides = _strides(out_shape)
    dst_base = sum(s * st for (s, _), st in zip(box, out_strides))
    levels = []  # outer to inner: size, dst stride, src stride (int) or table (list)
    for size, dst_stride, t in groups:
        if size == 1:
            continue
        step = int(t[1] - t[0])
        affine = np.array_equal(t, np.arange(size, dtype=np.int64) * step)
        levels.append({"size": size, "dst": dst_stride, "src": step if affine else [int(v) for v in t]})
    # merge adjacent affine levels that walk both sides as one
    merged = []
    for lv in levels:
        if merged:
            prev = merged[-1]
            if (isinstance(prev["src"], int) and isinstance(lv["src"], int)
                    and prev["dst"] == lv["dst"] * lv["size"] and prev["src"] == lv["src"] * lv["size"]):
                merged[-1] = {"size": prev["size"] * lv["size"], "dst": lv["dst"], "src": lv["src"]}
                continue
        merged.append(lv)
    run = 1
    if merged and merged[-1]["dst"] == 1 and merged[-1]["src"] == 1:
        run = merged.pop()["size"]
    loops = []
    for j, lv in enumerate(merged):
        if isinstance(lv["src"], int):
            src_term = f"i{j} * {lv['src']}" if lv["src"] != 1 else f"i{j}"
        else:
            ctype = "int16_t" if max(lv["src"]) < 32768 else "int32_t"
            src_term = f"{layer.const(f'p{k}_axis{j}', lv['src'], ctype)}[i{j}]"
        loops.append({"size": lv["size"], "dst_term": f"i{j} * {lv['dst']}" if lv["dst"] != 1 else f"i{j}",
                      "src_term": src_term})
    dst_index = " + ".join([str(dst_base)] + [l["dst_term"] for l in loops])
    src_index = " + ".join([str(base)] + [l["src_term"] for l in loops])
    return {"src": src, "dst": dst, "loops": loops, "run": run,
            "dst_index": dst_index, "src_index": src_index}


def data_movement(layer: Layer) -> dict:
    node, graph = layer.node, layer.graph
    maps = source_maps(graph, node)
    ins = [graph.tensor(t) for t in data_inputs(node)]
    outs = [graph.tensor(t) for t in node.outputs]
    for t in ins + outs:
        if t.dtype != outs[0].dtype or t.dtype not in ("int8", "int16"):
            raise layer.refuse(f"tensor {t.name!r} is {t.dtype}; all must be int8, or all int16")
    if all(t.is_const for t in ins):
        raise layer.refuse("all its inputs are constant (folded before code generation)")
    # PACK moves every input (constant ones from their arrays); the other ops
    # move one activation, in0 (their geometry inputs are constants)
    srcs = operand_exprs(layer) if len(ins) > 1 else ["in0"]
    names = ["out"] if len(outs) == 1 else [f"out{k}" for k in range(len(outs))]
    parts = []
    for o, (m, out, dst) in enumerate(zip(maps, outs, names)):
        if out.size == 0:
            continue
        for k in range(len(ins)):
            chosen = m.input == k
            if not chosen.any():
                continue
            where = np.nonzero(chosen)
            box = [(int(c.min()), int(c.max()) - int(c.min()) + 1) for c in where]
            if int(np.prod([s for _, s in box])) != int(chosen.sum()):
                raise layer.refuse("an input's share of the output is not a box")
            sub = m.index[tuple(slice(a, a + s) for a, s in box)]
            parts.append(_part(layer, srcs[k], dst, out.shape, box, sub, len(parts)))
    return {"parts": parts, "what": f"{node.op.value}: copies of the input values",
            "esize": 2 if outs[0].dtype == "int16" else 1}
