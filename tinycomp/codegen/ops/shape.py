"""CONCATENATION, PAD and TRANSPOSE: element moves, no arithmetic (int8 or int16).

TFLM copies int8 bytes unchanged in both. CONCATENATION never rescales: the
TFLM we match rejects inputs whose scale or zero point differs from the
output's (measured), so tinycomp refuses them too rather than invent a
rescaling TFLM would not do. PAD fills with the output zero point.
"""
from __future__ import annotations

from ..layer import Layer, c_type
from .elementwise import operand_exprs


# bytes per element of the types these ops move (int16: TFLite's 16x8 models)
ELEMENT_BYTES = {"int8": 1, "int16": 2}


def _prod(values) -> int:
    p = 1
    for v in values:
        p *= int(v)
    return p


def concatenation(layer: Layer) -> dict:
    y = layer.output()
    inputs = [layer.input(i) for i in range(len(layer.node.inputs))]
    if len(inputs) < 1:
        raise layer.refuse("needs at least one input")
    if y.dtype not in ELEMENT_BYTES or any(t.dtype != y.dtype for t in inputs):
        raise layer.refuse("all tensors must be int8, or all int16")
    # TFLM's Prepare rejects fused activations on CONCATENATION.
    if layer.options.get("activation", "NONE") != "NONE":
        raise layer.refuse(f"fused activation {layer.options['activation']} is not supported")
    rank = len(y.shape)
    axis = int(layer.options.get("axis", 0))
    if not -rank <= axis < rank:
        raise layer.refuse(f"axis {axis} is out of range for rank {rank}")
    axis %= rank
    for t in inputs:
        if len(t.shape) != rank or any(t.shape[d] != y.shape[d] for d in range(rank) if d != axis):
            raise layer.refuse(f"input shape {list(t.shape)} does not fit output {list(y.shape)} "
                               f"along axis {axis}")
    if y.size == 0:
        raise layer.refuse("empty outputs are not supported")
    for i, t in enumerate(inputs):
        if (t.quant is None or y.quant is None or t.quant.per_channel
                or (t.scale, t.zero_point) != (y.scale, y.zero_point)):
            raise layer.refuse(f"input {i} ({t.name!r}) is not quantized exactly like the output "
                               "(TFLM copies bytes and requires equal scale and zero point)")
    if sum(t.shape[axis] for t in inputs) != y.shape[axis]:
        raise layer.refuse(f"inputs along axis {axis} do not add up to the output's {y.shape[axis]}")
    # Everything before the axis is an outer loop; each input contributes one
    # contiguous run of shape[axis:] per outer step.
    outer = _prod(y.shape[:axis])
    parts, offset = [], 0
    for expr, t in zip(operand_exprs(layer), inputs):
        run = _prod(t.shape[axis:])
        if run:
            parts.append({"src": expr, "run": run, "offset": offset})
        offset += run
    return {"outer": outer, "out_run": offset, "parts": parts, "esize": ELEMENT_BYTES[y.dtype]}


def pad(layer: Layer) -> dict:
    x, y = layer.input(), layer.output()
    if x.dtype != y.dtype or x.dtype not in ELEMENT_BYTES:
        raise layer.refuse(f"{x.dtype} -> {y.dtype}: only int8 -> int8 and int16 -> int16 are supported")
    if len(layer.node.inputs) > 2:
        raise layer.refuse("constant_values (PADV2-style third input) is not supported")
    paddings = layer.input(1)
    if not paddings.is_const:
        raise layer.refuse("paddings must be a constant tensor")
    rank = len(x.shape)
    pads = paddings.data.reshape(-1).tolist()
    if len(pads) != 2 * rank:
        raise layer.refuse(f"{len(pads)} padding values for a rank-{rank} input")
    pads = [(int(pads[2 * d]), int(pads[2 * d + 1])) for d in range(rank)]
    if any(p < 0 for pair in pads for p in pair):
        raise layer.refuse(f"negative paddings {pads} are not supported")
    out_shape = tuple(d + a + b for d, (a, b) in zip(x.shape, pads))
    if out_shape != tuple(y.shape):
        raise layer.refuse(f"output shape {list(y.shape)} is not the padded input {list(out_shape)}")
    if y.quant is None:
        raise layer.refuse("the output has no quantization (its zero point is the pad value)")
    if x.size == 0:
        raise layer.refuse("empty inputs are not supported")

    # Fold axes into the one inside them while that inner axis has no
    # padding: rows of the outer axis are then contiguous in input and output
    # alike. Leading unpadded size-1 axes vanish the same way.
    dims = [(int(d), a, b) for d, (a, b) in zip(x.shape, pads)]
    folded = [dims[-1]] if dims else [(1, 0, 0)]
    for d, a, b in reversed(dims[:-1]):
        inner, ia, ib = folded[0]
        if ia == 0 and ib == 0:
            folded[0] = (d * inner, a * inner, b * inner)
        else:
            folded.insert(0, (d, a, b))
    while len(folded) > 1 and folded[0] == (1, 0, 0):
        folded.pop(0)
    # Output strides of the folded axes; the innermost run is copied whole.
    out_dims = [d + a + b for d, a, b in folded]
    out_strides = [_prod(out_dims[i + 1:]) for i in range(len(folded))]
    in_strides = [_prod([d for d, _, _ in folded[i + 1:]]) for i in range(len(folded))]
    loops = [{"size": d, "in_stride": si, "out_stride": so, "before": a}
             for (d, a, _), si, so in zip(folded[:-1], in_strides[:-1], out_strides[:-1])]
    run, run_before, _ = folded[-1]
    out_base = run_before + sum(l["before"] * l["out_stride"] for l in loops)
    out_index = " + ".join([str(out_base)] + [f"i{k} * {l['out_stride']}" for k, l in enumerate(loops)])
    in_index = " + ".join([f"i{k} * {l['in_stride']}" for k, l in enumerate(loops)]) or "0"
    return {
        "out_size": y.size, "pad_value": y.zero_point, "loops": loops,
        "run": run, "out_index": out_index, "in_index": in_index,
        "esize": ELEMENT_BYTES[y.dtype], "ctype": c_type(y.dtype),
    }


MAX_UNROLL = 16  # innermost TRANSPOSE axes up to this many bytes are unrolled


def transpose(layer: Layer) -> dict:
    """Output axis k reads input axis perm[k]; bytes move unchanged, as in
    TFLM (which copies int8 values whatever the quantization says)."""
    x, y = layer.input(), layer.output()
    if x.dtype != y.dtype or x.dtype not in ELEMENT_BYTES:
        raise layer.refuse(f"{x.dtype} -> {y.dtype}: only int8 -> int8 and int16 -> int16 are supported")
    perm_t = layer.input(1) if layer.has_input(1) else None
    if perm_t is None or not perm_t.is_const:
        raise layer.refuse("the permutation must be a constant tensor")
    perm = [int(p) for p in perm_t.data.reshape(-1)]
    rank = len(x.shape)
    if not 1 <= rank <= 5:  # TFLM's Prepare refuses the rest (measured)
        raise layer.refuse(f"rank {rank}: TFLM transposes 1-D to 5-D tensors")
    if sorted(perm) != list(range(rank)):
        raise layer.refuse(f"{perm} is not a permutation of the {rank} input axes")
    if tuple(y.shape) != tuple(x.shape[p] for p in perm):
        raise layer.refuse(f"output shape {list(y.shape)} is not the input {list(x.shape)} "
                           f"permuted by {perm}")
    if x.size == 0:
        raise layer.refuse("empty inputs are not supported")
    in_strides = [_prod(x.shape[d + 1:]) for d in range(rank)]
    # Output axes in order with the input stride each one walks; size-1 axes
    # move nothing, and an axis whose stride is its inner neighbour's whole
    # extent is contiguous with it in both tensors, so the two become one loop.
    axes: list[list[int]] = []
    for k in range(rank):
        size, stride = int(y.shape[k]), in_strides[perm[k]]
        if size == 1:
            continue
        if axes and axes[-1][1] == stride * size:
            axes[-1] = [axes[-1][0] * size, stride]
        else:
            axes.append([size, stride])
    if not axes:
        axes = [[1, 1]]
    # An innermost stride of 1 is a contiguous run: memcpy it. A short strided
    # innermost axis is unrolled into constant offsets (a byte load and store
    # each; the loop costed three times that on Cortex-M4).
    run = axes.pop()[0] if axes[-1][1] == 1 else 1
    unroll = []
    if run == 1 and axes and axes[-1][0] <= MAX_UNROLL:
        size, stride = axes.pop()
        unroll = [k * stride for k in range(size)]
    loops = [{"size": s, "stride": st} for s, st in axes]
    index = " + ".join(f"i{k} * {l['stride']}" for k, l in enumerate(loops)) or "0"
    return {"loops": loops, "run": run, "unroll": unroll, "index": index, "size": y.size,
            "esize": ELEMENT_BYTES[y.dtype], "ctype": c_type(y.dtype)}
