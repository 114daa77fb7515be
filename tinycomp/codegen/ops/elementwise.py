"""ADD, SUB, MUL, MINIMUM, MAXIMUM and PRELU on int8 tensors, with
numpy-style broadcasting.

All follow TFLM's quantized arithmetic:
- ADD rescales both inputs to a common scale (twice the larger input scale)
  after a left shift of 20 bits, adds, and rescales to the output; SUB is
  the same with the second operand subtracted;
- MUL multiplies the offset inputs and rescales once by s1 * s2 / s_out;
- MINIMUM and MAXIMUM compare raw int8 codes (TFLM never reads their
  quantization);
- PRELU rescales x - zp by s_in / s_out where it is >= 0, and
  (x - zp) * (alpha - zp_alpha) by s_in * s_alpha / s_out where it is not.
Every multiplier is computed here, in double precision from the float32
scales, the way TFLM's Prepare computes them.
"""
from __future__ import annotations

import numpy as np

from ...reference.gemmlowp import multiply_by_quantized_multiplier
from ..fixedpoint import f32, quantize_multiplier
from ..layer import Layer, c_type
from .common import fused_activation

# TFLM shifts int8 ADD inputs left by 20 bits before rescaling so that the
# two rescaled values keep enough precision to be added exactly.
ADD_LEFT_SHIFT = 20
ADD_LEFT_SHIFT_INT16 = 15


def operand_exprs(layer: Layer) -> list[str]:
    """C expression of every input of the op, in input order: `inK` for the
    K-th activation input (the generator's parameter names), or the name of a
    constant array emitted for constant int8 inputs."""
    exprs, k = [], 0
    for i, t in enumerate(layer.node.inputs):
        tensor = layer.graph.tensor(t)
        if tensor.is_const:
            if tensor.dtype not in ("int8", "int16"):
                raise layer.refuse(f"constant input {i} is {tensor.dtype}, not int8 or int16")
            exprs.append(layer.const(f"in{i}", tensor.data, c_type(tensor.dtype)))
        else:
            exprs.append(f"in{k}")
            k += 1
    return exprs


def _contiguous_strides(shape) -> list[int]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return strides[::-1]


def coalesce(dims: list[tuple[int, list[int]]]) -> list[tuple[int, list[int]]]:
    """Merge adjacent loop levels (outer to inner, each (size, strides of every
    operand)) where every operand steps through both as through one level: the
    outer stride equals the inner stride times the inner size. Fewer, longer
    loops; the visiting order is unchanged."""
    merged: list[tuple[int, list[int]]] = []
    for size, strides in dims:
        if size == 1:
            continue
        if merged:
            prev_size, prev_strides = merged[-1]
            if all(p == s * size for p, s in zip(prev_strides, strides)):
                merged[-1] = (prev_size * size, list(strides))
                continue
        merged.append((size, list(strides)))
    return merged


def broadcast_loops(layer: Layer, out_shape, shapes) -> list[dict]:
    """Loop levels over the output (row-major) with each operand's element
    stride per level; 0 where the operand is broadcast along that axis."""
    rank = len(out_shape)
    if any(len(s) > rank for s in shapes):
        raise layer.refuse(f"input shapes {list(map(list, shapes))} do not broadcast to {list(out_shape)}")
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    strides = []
    for shape in padded:
        st = _contiguous_strides(shape)
        for d in range(rank):
            if shape[d] == out_shape[d]:
                continue
            if shape[d] != 1:
                raise layer.refuse(f"input shapes {list(map(list, shapes))} do not broadcast "
                                   f"to {list(out_shape)}")
            st[d] = 0
        strides.append(st)
    dims = coalesce([(out_shape[d], [s[d] for s in strides]) for d in range(rank)])
    if not dims:  # a single element
        dims = [(1, [0] * len(shapes))]
    return [{"size": size, "strides": st} for size, st in dims]


def index_expr(loops: list[dict], operand: int, var: str = "i") -> str:
    """C expression of an operand's element index inside the loop nest whose
    level k counts with `{var}k`."""
    terms = []
    for k, level in enumerate(loops):
        stride = level["strides"][operand]
        if stride:
            terms.append(f"{var}{k}" if stride == 1 else f"{var}{k} * {stride}")
    return " + ".join(terms) or "0"


def _operands(layer: Layer, types: tuple[str, ...] = ("int8",)):
    """(a, b, y) of a binary op: not both constant, all three of one of `types`."""
    a, b, y = layer.input(0), layer.input(1), layer.output()
    if a.is_const and b.is_const:
        raise layer.refuse("both operands are constant (fold them before compiling)")
    for t in (a, b, y):
        if t.dtype != y.dtype or y.dtype not in types:
            raise layer.refuse(f"tensor {t.name!r} is {t.dtype}; all three must be "
                               + ", or all three ".join(types))
    return a, b, y


def _binary_common(layer: Layer) -> dict:
    a, b, y = _operands(layer, ("int8", "int16"))
    for t in (a, b, y):
        if t.quant is None or t.quant.per_channel:
            raise layer.refuse(f"tensor {t.name!r} needs one (per-tensor) scale and zero point")
        if t.dtype == "int16" and t.zero_point != 0:
            # TFLM's Prepare requires symmetric int16 operands and output
            raise layer.refuse(f"int16 tensor {t.name!r} has zero point {t.zero_point}; "
                               "TFLM's int16 kernels need 0")
    act_min, act_max = fused_activation(layer)
    loops = broadcast_loops(layer, y.shape, [a.shape, b.shape])
    exprs = operand_exprs(layer)
    # out may overwrite in0 only when in0 is the op's first input, is not
    # broadcast, and so is read at exactly the index about to be written.
    inplace = not a.is_const and a.size == y.size
    return {
        "a": exprs[0], "b": exprs[1], "loops": loops,
        "a_index": index_expr(loops, 0), "b_index": index_expr(loops, 1),
        "a_offset": -a.zero_point, "b_offset": -b.zero_point, "out_offset": y.zero_point,
        "act_min": act_min, "act_max": act_max, "inplace": inplace,
        "out_ctype": c_type(y.dtype),
    }


def _smaller_than_one(layer: Layer, what: str, real: float) -> tuple[int, int]:
    # TFLM's QuantizeMultiplierSmallerThanOneExp aborts outside (0, 1).
    if not 0.0 < real < 1.0:
        raise layer.refuse(f"{what} rescale factor {real:g} is outside (0, 1), "
                           f"which TFLM's {layer.node.op.value} cannot represent")
    return quantize_multiplier(real)


def add(layer: Layer) -> dict:
    return _add_or_sub(layer, "+")


def sub(layer: Layer) -> dict:
    return _add_or_sub(layer, "-")


def _add_or_sub(layer: Layer, sign: str) -> dict:
    ctx = _binary_common(layer)
    ctx["sign"] = sign
    s1, s2, s_out = f32(layer.input(0).scale), f32(layer.input(1).scale), f32(layer.output().scale)
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = _smaller_than_one(layer, "input 1", s1 / twice_max)
    m2, sh2 = _smaller_than_one(layer, "input 2", s2 / twice_max)
    # int16: 15 bits of headroom, not 20 (TFLM's int16 ADD and SUB)
    left_shift = ADD_LEFT_SHIFT if layer.output().dtype == "int8" else ADD_LEFT_SHIFT_INT16
    mo, sho = _smaller_than_one(layer, "output", twice_max / ((1 << left_shift) * s_out))
    ctx.update(left_shift=left_shift, a_mult=m1, a_shift=sh1, b_mult=m2, b_shift=sh2,
               out_mult=mo, out_shift=sho)
    ctx.update(_add_fast(layer, ctx))
    return ctx


def _add_fast(layer: Layer, ctx: dict) -> dict:
    """Tables and literals of add_fast.c.j2 when both operands have the
    output's shape and its shortcuts are exact; else nothing (general kernel)."""
    loops = ctx["loops"]
    if ctx["out_ctype"] != "int8_t" or len(loops) != 1 or loops[0]["strides"] != [1, 1] or ctx["out_shift"] > -1:
        return {}
    if layer.storage == "size":  # --optimize size: no 2 KB of tables, the general kernel multiplies
        return {}
    x = np.arange(-128, 128)
    ta = multiply_by_quantized_multiplier((x + ctx["a_offset"]) << ADD_LEFT_SHIFT, ctx["a_mult"], ctx["a_shift"])
    tb = multiply_by_quantized_multiplier((x + ctx["b_offset"]) << ADD_LEFT_SHIFT, ctx["b_mult"], ctx["b_shift"])
    if ctx["sign"] == "-":  # SUB: TFLM subtracts the rescaled second operand
        tb = -tb
    e = -ctx["out_shift"]
    rnd = (1 << (e - 1)) + ctx["out_offset"] * (1 << e)
    bound = int(np.abs(ta).max() + np.abs(tb).max())
    if bound >= 1 << 30 or bound + 1 + abs(rnd) >= 1 << 31:
        return {}
    return {"template": "kernels/add_fast.c.j2", "count": loops[0]["size"],
            "a_table": layer.const("a_table", ta, "int32_t"),
            "b_table": layer.const("b_table", tb, "int32_t"),
            "out_rnd": rnd, "out_e": e}


def mul(layer: Layer) -> dict:
    ctx = _binary_common(layer)
    real = f32(layer.input(0).scale) * f32(layer.input(1).scale) / f32(layer.output().scale)
    mult, shift = quantize_multiplier(real)
    ctx.update(mult=mult, shift=shift)
    return ctx


def _minmax(layer: Layer, cmp: str) -> dict:
    a, b, y = _operands(layer)
    loops = broadcast_loops(layer, y.shape, [a.shape, b.shape])
    exprs = operand_exprs(layer)
    return {"a": exprs[0], "b": exprs[1], "loops": loops, "cmp": cmp,
            "a_index": index_expr(loops, 0), "b_index": index_expr(loops, 1),
            "inplace": not a.is_const and a.size == y.size}


def minimum(layer: Layer) -> dict:
    return _minmax(layer, "<")


def maximum(layer: Layer) -> dict:
    return _minmax(layer, ">")


def prelu(layer: Layer) -> dict:
    x, alpha, y = layer.input(0), layer.input(1), layer.output()
    for t in (x, alpha, y):
        if t.dtype != "int8":
            raise layer.refuse(f"tensor {t.name!r} is {t.dtype}; only int8 is supported")
        if t.quant is None or t.quant.per_channel:
            raise layer.refuse(f"tensor {t.name!r} needs one (per-tensor) scale and zero point")
    if x.is_const:
        raise layer.refuse("a constant input (fold it before compiling)")
    if max(len(x.shape), len(alpha.shape), len(y.shape)) > 4:
        raise layer.refuse("more than 4 dimensions (TFLM's PRELU broadcasts up to 4)")
    loops = broadcast_loops(layer, y.shape, [x.shape, alpha.shape])
    exprs = operand_exprs(layer)
    s_in, s_a, s_out = f32(x.scale), f32(alpha.scale), f32(y.scale)
    m1, sh1 = quantize_multiplier(s_in / s_out)
    m2, sh2 = quantize_multiplier(s_in * s_a / s_out)
    return {"a": exprs[0], "b": exprs[1], "loops": loops,
            "a_index": index_expr(loops, 0), "b_index": index_expr(loops, 1),
            "x_offset": -x.zero_point, "alpha_offset": -alpha.zero_point, "out_offset": y.zero_point,
            "mult_pos": m1, "shift_pos": sh1, "mult_neg": m2, "shift_neg": sh2,
            "inplace": x.size == y.size}
