"""Static memory plan: one arena, buffers placed by lifetime.

Every activation lives from the step that writes it to the last step that
reads it (reads through aliases count). Buffers whose lifetimes do not overlap
may share bytes. An op may also write its output over an input that dies at
that step ("in place"), with a lag of D bytes: its output may start D or more
bytes *below* the input. D = 0 is the classic in-place op (output element i is
written after input element i was read, in increasing order); a window op such
as a 3x3 depthwise needs D = a couple of input rows, because output row r
still reads input row r - 1 (`window_lag` computes D from the geometry). The
pair then needs input size + D bytes instead of input + output.

Placement is greedy, each buffer at the lowest offset that conflicts with no
placed buffer, tried in a few orders (largest first as TFLM's greedy planner
does, and by time both ways, which lays lagged chains out downwards); the
smallest arena wins. Everything runs at build time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import random

import numpy as np

from ..ir import Graph
from .aliases import storage_roots

ALIGN = 8
MAX_SHUFFLES = 64

OUTPUT, ARENA, STATE = "output", "arena", "state"


@dataclass(frozen=True)
class MemoryPlan:
    # tensor index -> (region, where): OUTPUT (the caller's output buffer;
    # where = the output's index) or ARENA (everything else, the model inputs
    # included; where = byte offset) or STATE (a variable tensor: its own
    # static buffer outside the arena, kept between inferences; where = its
    # number among the graph's variable tensors)
    places: dict[int, tuple[str, int]]
    scratch: dict[int, int]  # node index -> arena offset of its scratch buffer
    arena_bytes: int
    steps: tuple[int, ...] = field(default=())  # node indices that run code, in order
    # node index -> lag in bytes of the in-place pairs the plan actually overlapped
    overlapped: dict[int, int] = field(default_factory=dict)


@dataclass
class _Buffer:
    key: object
    size: int
    first: int
    last: int
    offset: int = -1


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def align_down(n: int) -> int:
    return n // ALIGN * ALIGN


def window_lag(in_shape, out_shape, kernel, stride, pad, dilation=(1, 1),
               block: int = 1, read_first: bool = False, row_blocks: bool = False) -> int:
    """Smallest D (bytes) such that a window op over NHWC int8 tensors may
    write its output starting D bytes below its input, for a kernel that
    produces output pixels in row-major order and, for each pixel, reads its
    window before the next pixel's window (it may write a pixel's channels
    before reading all of that pixel's window: the bound below keeps the
    whole pixel's window intact until the pixel is done).

    Output pixel p occupies bytes [(p)*oc, (p+1)*oc) of the output; the
    lowest input pixel still needed once p is being written is the smallest
    first-tap pixel of all windows q >= p. Writing p is safe when its end
    lies at or below that pixel's first byte: D >= (p+1)*oc - m(p)*ic.

    Blocked kernels produce `block` consecutive pixels at a time (the last
    block may be shorter): the block's writes reach its last pixel's end while
    windows from its first pixel on may still be read (interleaved reads and
    writes), or, with `read_first` (the windows copied to scratch, or the
    outputs held in registers, before any write), only windows after the
    block still matter. block=1, read_first=False is the bound above.
    row_blocks: the blocks start afresh at every output row (the last of a
    row may be shorter) instead of every `block` pixels of the whole output."""
    ic, oc = in_shape[3], out_shape[3]
    suffix_min = read_floor(in_shape, out_shape, kernel, stride, pad, dilation)
    first = suffix_min[:-1]
    if row_blocks:
        width = out_shape[2]
        rows = np.arange(0, first.size, width, dtype=np.int64)
        starts = (rows[:, None] + np.arange(0, width, block, dtype=np.int64)[None, :]).reshape(-1)
        ends = np.minimum(starts + block, (starts // width + 1) * width)  # a block ends with its row
    else:
        starts = np.arange(0, first.size, block, dtype=np.int64)
        ends = np.minimum(starts + block, first.size)
    kept = suffix_min[ends] if read_first else suffix_min[starts]
    return max(0, int((ends * oc - kept * ic).max()))


def read_floor(in_shape, out_shape, kernel, stride, pad, dilation=(1, 1)) -> np.ndarray:
    """floor[p]: the lowest input pixel (NHWC pixel index) that any window of
    output pixel q >= p reads, for a window op over NHWC tensors that visits
    its output pixels in row-major order; floor[n_out] (one past the end) is
    beyond the last input pixel: nothing is read any more. Non-decreasing."""
    n, h, w, ic = in_shape
    on, oh, ow, oc = out_shape
    kh, kw = kernel
    sh, sw = stride
    ph, pw = pad
    dh, dw = dilation
    # first in-bounds tap row / column of each output row / column; a window
    # with no tap inside reads nothing (it keeps nothing alive)
    def first_tap(o, size, k, s, p, d):
        taps = o * s - p + np.arange(k) * d
        inside = taps[(taps >= 0) & (taps < size)]
        return int(inside[0]) if inside.size else None

    rows = [first_tap(o, h, kh, sh, ph, dh) for o in range(oh)]
    cols = [first_tap(o, w, kw, sw, pw, dw) for o in range(ow)]
    big = n * h * w  # "needs nothing": beyond the last input pixel
    first = np.full((on, oh, ow), big, dtype=np.int64)
    for b in range(on):
        for oy, r in enumerate(rows):
            if r is None:
                continue
            for ox, c in enumerate(cols):
                if c is not None:
                    first[b, oy, ox] = (b * h + r) * w + c
    first = first.reshape(-1)
    return np.append(np.minimum.accumulate(first[::-1])[::-1], big)


def state_tensors(graph: Graph) -> list[int]:
    """The variable tensors some layer reads, in tensor order: each gets its
    own static buffer (checks.py makes sure one layer owns each)."""
    read = {t for n in graph.nodes for t in n.inputs if t >= 0}
    return [t for t in sorted(read) if graph.tensor(t).variable]


def lifetimes(graph: Graph):
    """(find, steps, step_of, first, last): find(t) is the tensor whose
    storage t shares (aliases), steps the node indices that run code in
    order, step_of a node's step, and first/last the steps at which each
    storage root is born and last read (model inputs: born at -1)."""
    root = storage_roots(graph)
    find = lambda t: root.get(t, t)  # noqa: E731
    steps = tuple(n.index for n in graph.nodes if not n.op.is_alias)
    step_of = {n: s for s, n in enumerate(steps)}
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for node in graph.nodes:
        if node.op.is_alias:
            continue
        s = step_of[node.index]
        for t in node.outputs:
            first.setdefault(find(t), s)
            last[find(t)] = max(last.get(find(t), s), s)
        for t in node.inputs:
            if t >= 0 and not graph.tensor(t).is_const and not graph.tensor(t).variable:
                last[find(t)] = max(last.get(find(t), s), s)
    # The model input lives in the arena too, written by the caller before
    # step 0 (tinycomp_invoke copies it there unless the caller wrote it in
    # place through tinycomp_input_buffer()): once its last reader ran, its
    # bytes serve later tensors, and the first layer may write over it.
    for t in graph.inputs:
        first[find(t)] = -1
        last.setdefault(find(t), -1)  # an input no layer reads still gets its place
    return find, steps, step_of, first, last


def busy_at(graph: Graph, plan: MemoryPlan, node_index: int,
            scratch_bytes: int = 0) -> list[tuple[int, int, object]]:
    """The arena bytes in use while node `node_index` runs, as (start, end,
    owner): every tensor stored in the arena whose life spans that step
    (owner: its storage root, see lifetimes) and the node's own scratch of
    `scratch_bytes` (owner: "scratch")."""
    find, _, step_of, first, last = lifetimes(graph)
    s = step_of[node_index]
    busy = []
    for t in first:
        region, offset = plan.places.get(t, (None, 0))
        if region == ARENA and first[t] <= s <= last[t]:
            busy.append((offset, offset + graph.tensor(t).nbytes, t))
    if scratch_bytes > 0:
        busy.append((plan.scratch[node_index], plan.scratch[node_index] + scratch_bytes, "scratch"))
    return busy


def plan_memory(graph: Graph, scratch_bytes: dict[int, int] | None = None,
                inplace: set[int] | frozenset | dict[int, int] = frozenset()) -> MemoryPlan:
    """scratch_bytes: node -> bytes of scratch it needs; inplace: nodes whose
    output may overwrite their first input when that input dies there, as a
    set (lag 0), as node -> lag in bytes (see the module docstring), or as
    node -> {k: lag} for its k-th non-constant input."""
    scratch_bytes = scratch_bytes or {}
    # node -> {k: lag}: out may start lag bytes below the k-th non-constant input
    lags = {n: (v if isinstance(v, dict) else {0: v})
            for n, v in (inplace.items() if isinstance(inplace, dict) else ((n, 0) for n in inplace))}
    find, steps, step_of, first, last = lifetimes(graph)
    model_outs = [find(t) for t in graph.outputs]
    buffers: dict[object, _Buffer] = {}
    for t, s in first.items():
        if t not in model_outs:
            buffers[t] = _Buffer(t, graph.tensor(t).nbytes, s, last[t])
    for node_index, size in scratch_bytes.items():
        if size > 0:
            s = step_of[node_index]
            buffers[("scratch", node_index)] = _Buffer(("scratch", node_index), size, s, s)

    # (dst, src) -> (lag, node): dst may overlap src when dst starts >= lag
    # bytes below it. Only where src dies and dst is born at that very step,
    # so the two are live together at that step and nowhere else.
    pairs: dict[tuple, tuple[int, int]] = {}
    for node in graph.nodes:
        if node.index not in lags or node.op.is_alias:
            continue
        ins = [t for t in node.inputs if t >= 0 and not graph.tensor(t).is_const]
        if not ins:
            continue
        dst, s = find(node.outputs[0]), step_of[node.index]
        for k, lag in lags[node.index].items():
            src = find(ins[k]) if k < len(ins) else None
            if (src in buffers and dst in buffers and src != dst and last[src] == s
                    and first[dst] == s and lag >= 0):
                # one tensor read as two inputs (ADD(conv(x), x) fused): out
                # must keep clear of both readings, the larger lag
                prev = pairs.get((dst, src), (lag, node.index))[0]
                pairs[(dst, src)] = (max(lag, prev), node.index)

    def compatible(a: _Buffer, b: _Buffer) -> bool:
        if a.last < b.first or b.last < a.first:
            return True
        if a.offset + a.size <= b.offset or b.offset + b.size <= a.offset:
            return True
        for dst, src in ((a, b), (b, a)):
            pair = pairs.get((dst.key, src.key))
            if pair is not None and dst.offset + pair[0] <= src.offset:
                return True
        return False

    def place(order: list[_Buffer]) -> dict[object, int]:
        placed: list[_Buffer] = []
        for buf in order:
            cands = {0}
            for p in placed:
                cands.add(align(p.offset + p.size))
                if (p.key, buf.key) in pairs:  # buf is the input p may write over
                    cands.add(align(p.offset + pairs[(p.key, buf.key)][0]))
                if (buf.key, p.key) in pairs:  # buf is the output written over p
                    c = align_down(p.offset - pairs[(buf.key, p.key)][0])
                    if c >= 0:
                        cands.add(c)
            live = [p for p in placed if p.first <= buf.last and buf.first <= p.last]
            for c in sorted(cands):
                buf.offset = c
                if all(compatible(buf, p) for p in live):
                    break
            placed.append(buf)
        return {b.key: b.offset for b in placed}

    keys = [
        lambda b: (-b.size, b.first),
        lambda b: (-b.size, -b.first),
        lambda b: (b.first, -b.size),
        lambda b: (-b.first, -b.size),
        lambda b: (-b.last, -b.size),
    ]
    orders = [sorted(buffers.values(), key=k) for k in keys]
    # Greedy first-fit is sensitive to the order, most of all with lagged
    # pairs (an output wants to sit below its input, which first-fit from 0
    # cannot do if the input went first). Seeded shuffles of the largest-first
    # order are cheap for layer-sized graphs and keep the plan reproducible.
    rng = random.Random(0)
    n = len(buffers)
    for _ in range(min(MAX_SHUFFLES, 200_000 // max(1, n * n))):
        order = sorted(buffers.values(), key=lambda b: (-b.size * rng.uniform(0.5, 1.5), b.first))
        orders.append(order)
    # The same orders with each buffer's in-place partners placed right after
    # it, so a lagged pair tends to share one slot rather than two.
    partners: dict[object, list] = {}
    for dst, src in pairs:
        partners.setdefault(dst, []).append(src)
        partners.setdefault(src, []).append(dst)

    def chained(order):
        out, seen = [], set()

        def visit(b):
            if b.key in seen:
                return
            seen.add(b.key)
            out.append(b)
            for k in partners.get(b.key, ()):
                visit(buffers[k])
        for b in order:
            visit(b)
        return out
    orders += [chained(o) for o in orders[:len(keys)]]
    best = None
    for order in orders:
        offsets = place(order)
        arena = max((align(offsets[k] + b.size) for k, b in buffers.items()), default=0)
        if best is None or arena < best[0]:
            best = (arena, offsets)
    arena, offsets = best
    for k, b in buffers.items():
        b.offset = offsets[k]

    # output k goes to the caller's k-th output buffer
    places = {t: (OUTPUT, k) for k, t in enumerate(model_outs)}
    scratch = {}
    for key, buf in buffers.items():
        if isinstance(key, tuple):
            scratch[key[1]] = buf.offset
        else:
            places[key] = (ARENA, buf.offset)
    # State survives every inference: never in the reused arena.
    for k, t in enumerate(state_tensors(graph)):
        places[t] = (STATE, k)
    for t, r in storage_roots(graph).items():
        places[t] = places[r]
    overlapped = {}
    for (dst, src), (lag, node_index) in pairs.items():
        a, b = buffers[dst], buffers[src]
        if not (a.offset + a.size <= b.offset or b.offset + b.size <= a.offset):
            overlapped[node_index] = lag
    return MemoryPlan(places, scratch, arena, steps, overlapped)
