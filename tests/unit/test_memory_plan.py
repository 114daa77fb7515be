"""The static memory planner: no two live tensors overlap, aliases share bytes,
in-place ops reuse their input, and the arena is no larger than it must be."""
import numpy as np

from tinycomp.frontends.tflite import parse_tflite
from tinycomp.passes.memory import ARENA, INPUT, OUTPUT, plan_memory
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
    assert plan.places[graph.inputs[0]] == (INPUT, 0)
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
    assert plan.arena_bytes == 32  # one 30-byte buffer, aligned


def test_scratch_gets_its_own_bytes_for_its_step():
    graph = _chain([16, 30, 8])
    plan = plan_memory(graph, scratch_bytes={graph.nodes[1].index: 64})
    t = graph.nodes[0].outputs[0]
    off, size = plan.places[t][1], graph.tensor(t).nbytes
    s = plan.scratch[graph.nodes[1].index]
    assert s + 64 <= off or off + size <= s
