"""The static memory planner: no two live tensors overlap, aliases share bytes,
in-place ops reuse their input, and the arena is no larger than it must be."""
import numpy as np

from tinycomp.frontends.tflite import parse_tflite
from tinycomp.passes.memory import ARENA, OUTPUT, plan_memory
from tests.support.tflite_builder import ModelBuilder, random_bias, random_weights


def _chain(widths, reshape_at=None):
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.input((1, widths[0]), 0.1, 0)
    for i, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        wq, ws = random_weights(rng, (n_out, n_in))
        bq, bs = random_bias(rng, n_out, 0.1, ws)
        x = b.fully_connected(x, b.const_int8(wq, scales=ws), b.const_int32(bq, scales=bs), 0.1, 0)
        if i == reshape_at:
            x = b.reshape(x, (1, 1, n_out))
            x = b.reshape(x, (1, n_out))
    b.output(x)
    return parse_tflite(b.build())


def _live_ranges(graph, plan):
    steps = {n: s for s, n in enumerate(plan.steps)}
    first, last = {}, {}
    for node in graph.nodes:
        if node.op.is_alias:
            continue
        s = steps[node.index]
        for t in node.outputs:
            first.setdefault(t, s)
        for t in node.inputs + node.outputs:
            last[t] = max(last.get(t, -1), s)
    return first, last


def test_live_tensors_never_overlap_and_arena_is_tight():
    graph = _chain([16, 100, 40, 100, 8])
    plan = plan_memory(graph)
    first, last = _live_ranges(graph, plan)
    arena = [t for t in first if plan.places[t][0] == ARENA]
    for a in arena:
        for b in arena:
            if a < b and first[a] <= last[b] and first[b] <= last[a]:
                oa, ob = plan.places[a][1], plan.places[b][1]
                sa, sb = graph.tensor(a).nbytes, graph.tensor(b).nbytes
                assert oa + sa <= ob or ob + sb <= oa, (a, b)
    # 100 and 40 live together, then 40 and 100: the peak is 140 bytes (plus alignment)
    assert plan.arena_bytes <= 152
    assert plan.places[graph.inputs[0]][0] == ARENA  # the caller writes it there, or invoke copies it
    assert plan.places[graph.outputs[0]] == (OUTPUT, 0)


def test_reshapes_alias_their_input():
    graph = _chain([16, 30, 8], reshape_at=0)
    plan = plan_memory(graph)
    reshapes = [n for n in graph.nodes if n.op.is_alias]
    assert len(reshapes) == 2
    for node in reshapes:
        assert plan.places[node.outputs[0]] == plan.places[node.inputs[0]]


def test_inplace_op_writes_over_its_dying_input():
    graph = _chain([16, 30, 30, 8])
    middle = graph.nodes[1]
    plan = plan_memory(graph, inplace={middle.index})
    assert plan.places[middle.outputs[0]] == plan.places[middle.inputs[0]]
    # one 30-byte buffer (aligned to 32) beside the 16-byte model input, which
    # lives in the arena until the first layer has read it
    assert plan.arena_bytes == 48


def test_scratch_gets_its_own_bytes_for_its_step():
    graph = _chain([16, 30, 8])
    plan = plan_memory(graph, scratch_bytes={graph.nodes[1].index: 64})
    t = graph.nodes[0].outputs[0]
    off, size = plan.places[t][1], graph.tensor(t).nbytes
    s = plan.scratch[graph.nodes[1].index]
    assert s + 64 <= off or off + size <= s


# --- brute force: replay every step byte by byte on the planned arena -------
#
# Each arena byte carries a tag (tensor, byte index) of what it holds. A step
# writes its outputs in the order its kernel does; every read checks that the
# byte still holds the expected tensor byte. Window ops are replayed at their
# most hostile legal order (a whole output pixel written before its window is
# read), so a plan that passes is safe for any kernel producing pixels in
# row-major order; element-wise ops read element i just before writing it.

import pytest

from tinycomp.codegen.layer import Layer
from tinycomp.codegen.ops.conv import geometry
from tinycomp.passes.memory import MemoryPlan, window_lag

WINDOW_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D")


def _window(graph, node):
    """(geometry dict, kernel size) of a window op, from its options."""
    layer = Layer(graph, node)
    op = node.op.value
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = graph.tensor(node.inputs[1])
        kh, kw = w.shape[1:3]
        return geometry(layer, kh, kw, graph.tensor(node.outputs[0]).shape[3]), (kh, kw)
    opts = node.options
    kh, kw = int(opts.get("filter_height", 1)), int(opts.get("filter_width", 1))
    from tinycomp.codegen.ops.pooling import _pool
    ctx = _pool(layer)
    geo = dict(stride_h=ctx["stride_h"], stride_w=ctx["stride_w"], pad_h=ctx["pad_h"],
               pad_w=ctx["pad_w"], dil_h=1, dil_w=1)
    return geo, (kh, kw)


def _lag_of(graph, node):
    geo, k = _window(graph, node)
    return window_lag(graph.tensor(node.inputs[0]).shape, graph.tensor(node.outputs[0]).shape, k,
                      (geo["stride_h"], geo["stride_w"]), (geo["pad_h"], geo["pad_w"]),
                      (geo["dil_h"], geo["dil_w"]))


class _Memory:
    def __init__(self, graph, plan):
        self.graph, self.plan = graph, plan
        self.regions = {ARENA: np.zeros(plan.arena_bytes, np.int64)}
        for t in (graph.inputs[0], graph.outputs[0]):
            region = plan.places[t][0]
            if region != ARENA:  # the caller's buffer
                self.regions[region] = np.zeros(graph.tensor(t).nbytes, np.int64)

    def _view(self, t, idx):
        region, off = self.plan.places[t]
        return self.regions[region], off + np.asarray(idx)

    def write(self, t, idx):
        mem, at = self._view(t, idx)
        mem[at] = (t + 1) * (1 << 32) + np.asarray(idx) + 1

    def read(self, t, idx, where):
        mem, at = self._view(t, idx)
        want = (t + 1) * (1 << 32) + np.asarray(idx) + 1
        bad = np.flatnonzero(mem[at] != want)
        assert bad.size == 0, f"{where}: byte {np.asarray(idx).reshape(-1)[bad[0]]} of tensor {t} clobbered"


def _replay(graph, plan):
    mem = _Memory(graph, plan)
    x = graph.inputs[0]
    mem.write(x, np.arange(graph.tensor(x).nbytes))
    for node in graph.nodes:
        if not node.op.is_alias:
            _replay_node(graph, plan, mem, node)
    out = graph.outputs[0]
    mem.read(out, np.arange(graph.tensor(out).nbytes), "model output")


def _conv_order(graph, node):
    """(pixels per block, windows read before the block's writes) of the
    CONV_2D kernel the generator picks for `node`: the blocked kernel takes
    pixel pairs, through the scratch window copy (read first) or straight
    from the input (reads between the pair's writes); the grouped kernel one
    pixel at a time. Read off the kernel's own context, replayed below in the
    most hostile order that kernel allows."""
    from tinycomp.codegen.ops.conv import conv_2d
    ctx = conv_2d(Layer(graph, node))
    if ctx.get("template") == "kernels/conv_2d_fast.c.j2":
        return 2, bool(ctx["im2col"])
    return 1, False


def _window_reader(graph, mem, node, x, y, where):
    """read_window(p): mark as read every in-bounds input byte of output pixel
    p's window (node's geometry, input x, output y)."""
    geo, (kh, kw) = _window(graph, node)
    _, h, w, ic = graph.tensor(x).shape
    _, oh, ow, _ = graph.tensor(y).shape

    def read_window(p):
        b, oy, ox = p // (oh * ow), p // ow % oh, p % ow
        for ky in range(kh):
            iy = oy * geo["stride_h"] - geo["pad_h"] + ky * geo["dil_h"]
            for kx in range(kw):
                ix = ox * geo["stride_w"] - geo["pad_w"] + kx * geo["dil_w"]
                if 0 <= iy < h and 0 <= ix < w:
                    q = (b * h + iy) * w + ix
                    mem.read(x, np.arange(q * ic, (q + 1) * ic), where)

    return read_window


def _replay_node(graph, plan, mem, node, order=None):
    """order: (block, read_first) of a window op's kernel; default one pixel
    at a time, its output written before its window is read."""
    where = f"{node.op.value} {node.index}"
    ins = [t for t in node.inputs if t >= 0 and not graph.tensor(t).is_const]
    y = node.outputs[0]
    if node.index in plan.scratch:  # the kernel may scribble over its scratch first
        off = plan.scratch[node.index]
        mem.regions[ARENA][off:off + 24] = -1
    fused = node.options.get("residual_add")
    if fused:
        _replay_fused(graph, plan, mem, node, fused["conv"], order)
    elif node.op.value in WINDOW_OPS:
        n, _, _, _ = graph.tensor(ins[0]).shape
        _, oh, ow, oc = graph.tensor(y).shape
        block, read_first = order or ((1, False) if node.op.value != "CONV_2D"
                                      else _conv_order(graph, node))
        read_window = _window_reader(graph, mem, node, ins[0], y, where)
        pixels = n * oh * ow
        for p0 in range(0, pixels, block):
            group = range(p0, min(p0 + block, pixels))
            if read_first:
                for p in group:
                    read_window(p)
            mem.write(y, np.arange(p0 * oc, group[-1] * oc + oc))
            if not read_first:
                for p in group:
                    read_window(p)
    elif node.op.value in ("ADD", "MUL"):
        out_shape = graph.tensor(y).shape
        idx = [np.broadcast_to(np.arange(graph.tensor(t).size).reshape(
            (1,) * (len(out_shape) - len(graph.tensor(t).shape)) + tuple(graph.tensor(t).shape)),
            out_shape).reshape(-1) for t in ins]
        for i in range(graph.tensor(y).size):
            for t, ix in zip(ins, idx):
                mem.read(t, [ix[i]], where)
            mem.write(y, [i])
    else:
        for t in ins:
            mem.read(t, np.arange(graph.tensor(t).nbytes), where)
        mem.write(y, np.arange(graph.tensor(y).nbytes))


def _replay_fused(graph, plan, mem, node, conv, order=None):
    """A CONV_2D with its residual ADD fused (conv_2d_fast.c.j2), in the most
    hostile order the kernel allows: per pixel pair, the windows read first
    (window copy) or after all of the pair's writes (direct path); pixel 0's
    bytes each written right after its skip byte is read, all of them before
    any skip byte of pixel 1 is read; pixel 1's bytes written last."""
    where = f"fused {node.op.value}+ADD {node.index}"
    x, skip, y = node.inputs[0], node.inputs[3], node.outputs[0]
    n, _, _, _ = graph.tensor(x).shape
    _, oh, ow, oc = graph.tensor(y).shape
    block, read_first = order or _conv_order(graph, conv)
    read_window = _window_reader(graph, mem, conv, x, y, where)
    pixels = n * oh * ow
    for p0 in range(0, pixels, block):
        group = list(range(p0, min(p0 + block, pixels)))
        if read_first:
            for p in group:
                read_window(p)
        for i in range(p0 * oc, p0 * oc + oc):
            mem.read(skip, [i], where)
            mem.write(y, [i])
        rest = np.arange(p0 * oc + oc, group[-1] * oc + oc)
        if rest.size:
            mem.read(skip, rest, where)
            mem.write(y, rest)
        if not read_first:
            for p in group:
                read_window(p)


def _fused(graph):
    from tinycomp.codegen.generate import passes
    for graph_pass in passes():
        graph = graph_pass(graph)
    return graph


def _quant(rng):
    return float(rng.uniform(0.01, 0.1)), int(rng.integers(-20, 20))


def _dw(b, rng, x, c, k=3, stride=1, padding="SAME", dilation=1, mult=1):
    wq, ws = random_weights(rng, (1, k, k, c * mult), axis=3)
    w = b.const_int8(wq, scales=ws, axis=3)
    bq, bs = random_bias(rng, c * mult, 0.05, ws)
    return b.depthwise_conv2d(x, w, b.const_int32(bq, scales=bs), *_quant(rng), stride=stride,
                              padding=padding, dilation=dilation, depth_multiplier=mult)


def _conv(b, rng, x, cin, cout, k=1, stride=1, padding="SAME"):
    wq, ws = random_weights(rng, (cout, k, k, cin), axis=0)
    bq, bs = random_bias(rng, cout, 0.05, ws)
    return b.conv2d(x, b.const_int8(wq, scales=ws), b.const_int32(bq, scales=bs), *_quant(rng),
                    stride=stride, padding=padding)


def _ds_cnn(rng, hw=(7, 5), c=8, blocks=3):
    b = ModelBuilder()
    x = b.input((1, *hw, 1), 0.1, 0)
    x = _conv(b, rng, x, 1, c, k=3, stride=1)
    for _ in range(blocks):
        x = _dw(b, rng, x, c)
        x = _conv(b, rng, x, c, c)
    x = b.average_pool2d(x, hw)
    b.output(x)
    return parse_tflite(b.build())


def _resnet(rng):
    b = ModelBuilder()
    x = b.input((1, 8, 8, 3), 0.1, 0)
    x0 = _conv(b, rng, x, 3, 4, k=3)
    y = _conv(b, rng, x0, 4, 4, k=3)
    y = _conv(b, rng, y, 4, 4, k=3)
    x1 = b.add(y, x0, *_quant(rng))
    y = _conv(b, rng, x1, 4, 8, k=3, stride=2)
    y = _conv(b, rng, y, 8, 8, k=3)
    s = _conv(b, rng, x1, 4, 8, k=1, stride=2)
    x2 = b.add(s, y, *_quant(rng), activation="RELU")
    b.output(b.average_pool2d(x2, 4))
    return parse_tflite(b.build())


def _random_window_chain(rng):
    b = ModelBuilder()
    h, w, c = int(rng.integers(3, 9)), int(rng.integers(3, 9)), int(rng.integers(1, 6))
    x = b.input((1, h, w, c), 0.1, 0)
    for _ in range(int(rng.integers(2, 6))):
        kind = rng.integers(4)
        if kind == 0:
            x = _dw(b, rng, x, c, k=int(rng.integers(1, 5)), stride=int(rng.integers(1, 3)),
                    padding=["SAME", "VALID"][int(rng.integers(2)) if min(h, w) >= 5 else 0],
                    dilation=int(rng.integers(1, 3)) if min(h, w) >= 5 else 1,
                    mult=int(rng.integers(1, 3)))
        elif kind == 1:
            cout = int(rng.integers(1, 7))
            x = _conv(b, rng, x, c, cout, k=int(rng.integers(1, 4)), stride=int(rng.integers(1, 3)))
        elif kind == 2:
            x = b.add(x, x, *_quant(rng))
        else:
            x = b.max_pool2d(x, 2, 1, padding="SAME")
        _, h, w, c = b.tensors[x].shape
    b.output(x)
    return parse_tflite(b.build())


def _all_lags(graph):
    """Every op the planner may run in place, with its lag: window ops from
    their geometry, same-size element-wise ops at lag 0."""
    lags = {}
    for node in graph.nodes:
        if node.op.value == "CONV_2D":  # what the kernel declares, checked by the replay
            from tinycomp.codegen.ops.conv import conv_2d
            ctx = conv_2d(Layer(graph, node))
            lags[node.index] = {0: ctx["inplace_lag"], **ctx.get("inplace_lags", {})}
        elif node.op.value in WINDOW_OPS:
            lags[node.index] = _lag_of(graph, node)
        elif node.op.value == "ADD" and graph.tensor(node.inputs[0]).size == graph.tensor(node.outputs[0]).size:
            lags[node.index] = 0
    return lags


@pytest.mark.parametrize("make", [_ds_cnn, _resnet], ids=["ds_cnn", "resnet"])
def test_brute_force_lagged_plans_never_clobber_live_bytes(make):
    graph = make(np.random.default_rng(3))
    lags = _all_lags(graph)
    plan = plan_memory(graph, inplace=lags)
    assert plan.overlapped, "the in-place mechanism was never used"
    _replay(graph, plan)
    plain = plan_memory(graph)
    _replay(graph, plain)
    assert plan.arena_bytes < plain.arena_bytes


@pytest.mark.parametrize("seed", range(12))
def test_brute_force_random_window_chains(seed):
    graph = _random_window_chain(np.random.default_rng(seed))
    plan = plan_memory(graph, inplace=_all_lags(graph), scratch_bytes={graph.nodes[0].index: 24})
    _replay(graph, plan)


def test_window_lag_is_tight():
    """One byte less than window_lag and the hostile replay (one pixel at a
    time, the order window_lag assumes) clobbers a byte."""
    rng = np.random.default_rng(5)
    for make in (_ds_cnn, _resnet):
        graph = make(rng)
        for node in graph.nodes:
            if node.op.value not in ("CONV_2D", "DEPTHWISE_CONV_2D") or node.inputs[0] == graph.inputs[0]:
                continue
            lag = _lag_of(graph, node)
            if lag == 0:
                continue
            x, y = node.inputs[0], node.outputs[0]
            sx, sy = graph.tensor(x).nbytes, graph.tensor(y).nbytes
            for d, ok in ((lag, True), (lag - 1, False)):
                size = max(sx + d, sy)
                plan = MemoryPlan({x: (ARENA, d), y: (ARENA, 0)}, {}, size, (node.index,))
                mem = _Memory.__new__(_Memory)
                mem.graph, mem.plan, mem.regions = graph, plan, {ARENA: np.zeros(size, np.int64)}
                mem.write(x, np.arange(sx))
                if ok:
                    _replay_node(graph, plan, mem, node, order=(1, False))
                else:
                    with pytest.raises(AssertionError, match="clobbered"):
                        _replay_node(graph, plan, mem, node, order=(1, False))


# --- CONV_2D's declared lags, per kernel variant -----------------------------

def _conv_geometries():
    """(hw, cin, cout, k, stride, padding, groups): blocked gemm through the
    window copy (3x3, 10x4, strided, odd and even pixel counts), the direct
    1x1 path (cout below, equal to and above cin), the grouped kernel."""
    return [
        ((5, 6), 4, 4, (3, 3), (1, 1), "SAME", 1),
        ((5, 5), 4, 4, (3, 3), (1, 1), "SAME", 1),
        ((7, 6), 3, 8, (3, 3), (2, 2), "SAME", 1),
        ((7, 7), 8, 4, (3, 3), (2, 2), "VALID", 1),
        ((6, 5), 4, 6, (3, 3), (1, 1), "VALID", 1),
        ((12, 6), 1, 8, (10, 4), (2, 2), "SAME", 1),
        ((12, 6), 2, 3, (10, 4), (1, 1), "VALID", 1),
        ((6, 8), 4, 4, (3, 3), (2, 2), "SAME", 1),  # pairs sharing one window copy
        ((6, 8), 8, 4, (3, 3), (1, 1), "VALID", 1),
        ((5, 5), 8, 4, (1, 1), (1, 1), "SAME", 1),
        ((5, 4), 8, 8, (1, 1), (1, 1), "VALID", 1),
        ((3, 5), 4, 12, (1, 1), (1, 1), "SAME", 1),
        ((6, 6), 8, 8, (1, 1), (2, 2), "SAME", 1),
        ((5, 6), 6, 4, (1, 1), (1, 1), "SAME", 1),  # cin % 4: window copy
        ((5, 6), 8, 4, (3, 3), (1, 1), "SAME", 2),
        ((6, 7), 6, 6, (3, 3), (2, 1), "VALID", 3),
    ]


def _conv_sandwich(rng, hw, cin, cout, k, stride, padding, groups):
    """input -> 1x1 conv -> the conv under test -> 1x1 conv -> output, so the
    tested conv's input and output both live in the arena."""
    b = ModelBuilder()
    x = b.input((1, *hw, cin), 0.1, 0)
    x = _conv(b, rng, x, cin, cin)
    wq, ws = random_weights(rng, (cout, *k, cin // groups), axis=0)
    bq, bs = random_bias(rng, cout, 0.05, ws)
    x = b.conv2d(x, b.const_int8(wq, scales=ws), b.const_int32(bq, scales=bs), *_quant(rng),
                 stride=stride, padding=padding)
    x = _conv(b, rng, x, cout, 4)
    b.output(x)
    return parse_tflite(b.build())


@pytest.mark.parametrize("geo", _conv_geometries(), ids=lambda g: "x".join(map(str, g[0])) + f"-{g[1]}-{g[2]}-"
                         + "x".join(map(str, g[3])) + f"-s{g[4][0]}{g[4][1]}-{g[5]}-g{g[6]}")
def test_conv_lag_is_safe_and_tight_for_its_kernel(geo):
    """The middle conv's declared lag survives its kernel's most hostile
    legal order in a whole planned model; one byte (one alignment step in the
    planner) less and the replay clobbers a byte."""
    graph = _conv_sandwich(np.random.default_rng(7), *geo)
    node = graph.nodes[1]
    lags = _all_lags(graph)
    plan = plan_memory(graph, inplace=lags)
    _replay(graph, plan)
    _check_tight_lag(graph, node, lags[node.index][0], _replay_node)


def _check_tight_lag(graph, node, lag, replay, exact=True):
    """With the output `lag` bytes below the input, replay(graph, plan, mem,
    node) clobbers no byte it still needs; with one byte less (when the lag is
    exact) it does."""
    x, y = node.inputs[0], node.outputs[0]
    sx, sy = graph.tensor(x).nbytes, graph.tensor(y).nbytes
    for d, ok in ((lag, True), (lag - 1, False)):
        if d < 0 or (not ok and not exact):
            continue
        size = max(sx + d, sy)
        tight = MemoryPlan({x: (ARENA, d), y: (ARENA, 0)}, {}, size, (node.index,))
        mem = _Memory.__new__(_Memory)
        mem.graph, mem.plan, mem.regions = graph, tight, {ARENA: np.zeros(size, np.int64)}
        mem.write(x, np.arange(sx))
        if ok:
            replay(graph, tight, mem, node)
        else:
            with pytest.raises(AssertionError, match="clobbered"):
                replay(graph, tight, mem, node)


def test_conv_lags_let_the_plan_overlap():
    graph = _conv_sandwich(np.random.default_rng(7), (8, 8), 8, 8, (3, 3), (1, 1), "SAME", 1)
    plan = plan_memory(graph, inplace=_all_lags(graph))
    assert graph.nodes[1].index in plan.overlapped
    assert plan.arena_bytes < plan_memory(graph).arena_bytes


# --- CONV_2D + residual ADD fused (passes/fuse.py) ----------------------------

def test_brute_force_fused_resnet_never_clobbers_live_bytes():
    graph = _fused(_resnet(np.random.default_rng(3)))
    assert any("residual_add" in n.options for n in graph.nodes)
    plan = plan_memory(graph, inplace=_all_lags(graph))
    _replay(graph, plan)


@pytest.mark.parametrize("seed", range(10))
def test_brute_force_fused_random_residual_blocks(seed):
    """The host fusion tests' blocks (strides, 1x1 direct and window-copy
    paths, odd pixel counts, both operand orders, the skip being the conv's
    own input), planned with every declared lag and replayed."""
    from tests.host.test_fusion import residual_block
    model, _ = residual_block(seed) if seed < 7 else residual_block(93 + seed, skip_is_input=True)
    graph = _fused(parse_tflite(model))
    node = next(n for n in graph.nodes if "residual_add" in n.options)
    plan = plan_memory(graph, inplace=_all_lags(graph))
    _replay(graph, plan)
    # the same with out placed exactly over the skip tensor (lag 0 on in1),
    # whatever the planner chose
    if node.inputs[3] != node.inputs[0]:
        _replay_at_skip(graph, node)


def _replay_at_skip(graph, node):
    """Only the fused node, its output at the skip's very offset, the conv's
    input elsewhere: every skip byte is read before its output byte lands."""
    x, skip, y = node.inputs[0], node.inputs[3], node.outputs[0]
    sx, ss = graph.tensor(x).nbytes, graph.tensor(skip).nbytes
    size = sx + ss
    plan = MemoryPlan({x: (ARENA, ss), skip: (ARENA, 0), y: (ARENA, 0)}, {}, size, (node.index,))
    mem = _Memory.__new__(_Memory)
    mem.graph, mem.plan, mem.regions = graph, plan, {ARENA: np.zeros(size, np.int64)}
    mem.write(x, np.arange(sx))
    mem.write(skip, np.arange(ss))
    _replay_node(graph, plan, mem, node)
    mem.read(y, np.arange(graph.tensor(y).nbytes), "fused output")


# --- the gap / bitmap CONV_2D kernels (--optimize size, ops/sparse.py) -------

def _replay_sparse_conv(graph, plan, mem, node, ctx):
    """conv_2d_sparse.c.j2 in its most hostile order: padded, each batch's
    windows read (the copy into scratch) before any of its writes; else per
    output row, blocks of pixels (ctx's pixel_blocks), each block's bytes
    all written before its windows are read."""
    where = f"sparse CONV_2D {node.index}"
    x, y = node.inputs[0], node.outputs[0]
    n = graph.tensor(x).shape[0]
    _, oh, ow, oc = graph.tensor(y).shape
    read_window = _window_reader(graph, mem, node, x, y, where)
    for b in range(n):
        if ctx["pad"]:
            for p in range(b * oh * ow, (b + 1) * oh * ow):
                read_window(p)
            mem.write(y, np.arange(b * oh * ow * oc, (b + 1) * oh * ow * oc))
            continue
        for oy in range(oh):
            for block, first, last, _ in ctx["pixel_blocks"]:
                for ox in range(first, last, block):
                    p0 = (b * oh + oy) * ow + ox
                    mem.write(y, np.arange(p0 * oc, (p0 + block) * oc))
                    for p in range(p0, p0 + block):
                        read_window(p)


@pytest.mark.parametrize("geo", [
    ((8, 8), 16, 24, (1, 1), (1, 1), "SAME", 1),  # blocks of 4 tile the rows: window_lag's bound
    ((6, 7), 8, 8, (1, 1), (1, 1), "VALID", 1),  # 4 + 3 single pixels a row
    ((7, 6), 8, 12, (3, 3), (1, 1), "VALID", 1),
    ((9, 9), 4, 6, (3, 3), (2, 2), "VALID", 1),  # 4 + 0
    ((6, 6), 8, 8, (3, 3), (1, 1), "SAME", 1),  # padded: read first
    ((6, 6), 8, 4, (3, 3), (1, 1), "SAME", 2),
], ids=str)
def test_sparse_conv_lag_is_safe_for_its_kernel(geo):
    """The gap / bitmap conv's declared lag survives the kernel's most hostile
    order with its output that many bytes below its input; where its bound
    is window_lag's, one byte less clobbers a byte."""
    from tinycomp.codegen.ops import sparse
    graph = _conv_sandwich(np.random.default_rng(7), *geo)
    node = graph.nodes[1]
    for fmt in (sparse.GAP, sparse.BITMAP):
        ctx = sparse._conv_2d_sparse(Layer(graph, node, storage="size"), fmt)
        exact = ctx["pad"] or graph.tensor(node.outputs[0]).shape[2] % ctx["pixel_blocks"][0][0] == 0
        _check_tight_lag(graph, node, ctx["inplace_lag"],
                         lambda g, plan, mem, n: _replay_sparse_conv(g, plan, mem, n, ctx), exact)
