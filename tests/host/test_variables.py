"""Resource variables (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, CALL_ONCE)
on the host: bit-exact with TFLM over sequences (the state carried from one
invoke to the next), the variables' semantics checked by hand as well, the
state's reset, `tinycomp build` and `run` on a converted streaming model, and
every malformed or unsupported use refused in one line."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.cli import assert_one_line_error, tinycomp
from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import ModelBuilder
from tests.support.tflm import make_interpreter, run_tflm
from tests.support.variable_models import edge_case_model, frames, streaming_model
from tinycomp.codegen.generate import generate
from tinycomp.errors import ModelError, UnsupportedOpError
from tinycomp.frontends.tflite import parse_tflite

STEPS = 24


@pytest.mark.parametrize("kind", ["int8", "int16", "float-edges"])
def test_converted_streaming_model_bit_exact(kind):
    """The converter's streaming model (a ring of frames and the previous
    scores kept in variables, CONV_2D, MEAN, FULLY_CONNECTED, ADD), 24
    frames in a row, every output equal to TFLM's."""
    buf = streaming_model(kind)
    graph = parse_tflite(buf)
    assert sum(t.variable for t in graph.tensors) == 2
    x = frames(buf, STEPS, 3)
    x[10:14] = x[9]  # the same frame four times: the outputs still move with the ring
    ours = assert_bit_exact(buf, x).reshape(STEPS, -1)
    assert len(np.unique(ours[9:14], axis=0)) > 1


def _edge_inputs(dtype, n: int = 6, seed: int = 1) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max + 1, (n, 1, 6)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_edge_cases_bit_exact_and_as_specified(dtype):
    """Every READ of edge_case_model equals TFLM's over 6 invokes, and what
    the variables' semantics say by hand."""
    buf = edge_case_model(dtype)
    x = _edge_inputs(dtype)
    n = len(x)
    ours = [o.reshape(n, -1) for o in assert_bit_exact(buf, x)]
    init_sub = parse_init_values(buf)
    flat = x.reshape(n, -1)
    zp = -3 if dtype == np.int8 else 0
    read_init, ring, early, twice_a, twice_b, shared, c1, c2, constant, fixed = ours[:10]
    previous = np.concatenate([init_sub["init"][None], flat[:-1]])
    assert np.array_equal(read_init, previous)  # CALL_ONCE's value, then the last x
    assert np.array_equal(ring[0], np.full(18, zp))  # TFLM's zero-point fill
    assert np.array_equal(ring[3], np.concatenate([flat[0], flat[1], flat[2]]))
    assert np.array_equal(early, flat)  # assigned before the read
    assert np.array_equal(twice_a[1:], flat[:-1]) and np.array_equal(twice_b, flat)
    assert np.array_equal(shared, flat)  # two handles, one variable
    assert np.array_equal(c1, np.tile(init_sub["c1/dup"], (n, 1)))  # container c1: never assigned
    assert np.array_equal(c2[1:], flat[:-1])  # container c2: another variable
    assert len(np.unique(constant[1:], axis=0)) == 1 and not np.array_equal(constant[0], constant[1])
    assert np.array_equal(fixed, np.tile(init_sub["fixed"], (n, 1)))
    if dtype == np.int16:
        assert np.all(ours[10][0] == 0x0303)  # zero point 3, byte-filled as TFLM does


def parse_init_values(buf: bytes) -> dict:
    """{shared_name: values} CALL_ONCE's subgraph assigns, read from the file."""
    graph = parse_tflite(buf)
    return {t.name: t.init.reshape(-1) for t in graph.tensors if t.variable}


def test_reset_restores_start_values(tmp_path):
    """The host runner carries the state over its samples; RESET
    (tinycomp_reset_state) brings back CALL_ONCE's values and the zero-point
    fill: the sequence after it equals the first one, and both equal a fresh
    TFLM interpreter's."""
    from tinycomp.pipeline import build_graph
    from tinycomp.targets import get_runner

    buf = edge_case_model(np.int8)
    info = build_graph(parse_tflite(buf), buf, tmp_path / "b", "host")
    assert info["state_bytes"] == 6 * 8 + 18
    x = _edge_inputs(np.int8, 4, 7)
    ref = [r.reshape(4, -1) for r in run_tflm(buf, x)]
    with get_runner("host", tmp_path / "b" / "build") as runner:
        runs = []
        for reset in (False, False, True):
            if reset:
                runner.reset_state()
            runs.append([np.frombuffer(runner.infer(x[i].tobytes()).output, np.int8) for i in range(4)])
    first, carried, again = (np.stack(r) for r in runs)
    expected = np.concatenate([r for r in ref], axis=1)
    assert np.array_equal(first, expected) and np.array_equal(again, expected)
    assert not np.array_equal(carried, first)


def test_tflm_reset_does_not_rerun_call_once():
    """Why the reset test compares with a fresh interpreter: TFLM's own
    Reset() byte-fills every variable with its zero point and does not run
    CALL_ONCE again (measured), where tinycomp_reset_state() starts as after
    power-up. Without CALL_ONCE the two agree."""
    buf = edge_case_model(np.int8)
    x = _edge_inputs(np.int8, 1)
    interp = make_interpreter(buf)
    interp.set_input(x[0], 0)
    interp.invoke()
    fresh = np.array(interp.get_output(9)).reshape(-1)  # "fixed": CALL_ONCE's value
    interp.reset()
    interp.set_input(x[0], 0)
    interp.invoke()
    assert np.all(np.array(interp.get_output(9)) == -3) and not np.all(fresh == -3)


def test_build_and_run_streaming_model(tmp_path):
    """`tinycomp build` then `run` on the converted model: each run starts
    from the start values (RESET first) and carries the state over its
    samples, equal to TFLM's sequence."""
    buf = streaming_model("int8")
    (tmp_path / "s.tflite").write_bytes(buf)
    out = tmp_path / "out"
    result = tinycomp("build", tmp_path / "s.tflite", "--board", "host", "--out", out)
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "tinycomp.json").read_text())
    assert info["state_bytes"] == 8 * 10 + 4
    assert {"READ_VARIABLE", "ASSIGN_VARIABLE"} <= {row["op"] for row in info["layers"]}
    x = frames(buf, 16, 5)
    np.save(tmp_path / "x.npy", x.reshape(16, 1, 10, 1))
    ref = run_tflm(buf, x).reshape(16, -1)
    for k in range(2):
        result = tinycomp("run", out, "--inputs", tmp_path / "x.npy", "--outputs", tmp_path / f"y{k}.npy")
        assert result.returncode == 0, result.stderr
        assert np.array_equal(np.load(tmp_path / f"y{k}.npy").reshape(16, -1), ref)
    inspect = tinycomp("inspect", tmp_path / "s.tflite")
    assert inspect.returncode == 0 and "ASSIGN_VARIABLE" in inspect.stdout and "state" in inspect.stdout


# ---------------------------------------------------------------- refused


def _model(case: str) -> bytes:
    """A small variable model with one thing wrong, named by `case`."""
    b = ModelBuilder()
    x = b.input((1, 4), 0.1, 2)
    init = b.subgraph()
    h0 = init.var_handle("v")
    value = dict(init_shape=(1, 5), init_quant=(0.2, 2), init_dtype=(0.1, 2)).get(case, (0.1, 2))
    shape = (1, 5) if case == "init_shape" else (1, 4)
    if case == "init_not_const":
        init.assign_variable(h0, init.tensor(shape, 0.1, 2))
    elif case == "init_add":
        c = init.const(np.zeros(shape), np.int8, scales=0.1, zero_points=2)
        init.op("ADD", [c, c], [init.tensor(shape, 0.1, 2)])
    elif case == "init_dtype":
        init.assign_variable(h0, init.const(np.zeros(shape), np.int16, scales=0.1, zero_points=2))
    else:
        init.assign_variable(h0, init.const(np.zeros(shape), np.int8, scales=value[0], zero_points=value[1]))
    if case == "init_inputs":
        init.input((1, 4), 0.1, 2)
    index = {"call_once_range": 5, "call_once_main": 0}.get(case, 1)
    if case == "unused_subgraph":
        b.subgraph()
    if case == "read_before_call_once":
        b.read_variable(b.var_handle("v"), (1, 4), 0.1, 2)
    b.call_once(index)
    h = b.var_handle("v", "other" if case == "never_assigned" else "")
    if case == "handle_twice":
        b.op("VAR_HANDLE", [], [h], shared_name="w", container="")
    if case == "no_handle":
        h = b.resource()
    if case == "read_two_inputs":
        r = b.tensor((1, 4), 0.1, 2)
        b.op("READ_VARIABLE", [h, x], [r])
    else:
        r = b.read_variable(h, *(((1, 4), 0.1, 2, np.float32) if case == "float" else
                                 ((1, 4), 0.1, 0, np.int32) if case == "int32" else ((1, 4), 0.1, 2)))
    y = b.add(x, x if case in ("float", "int32") else r, 0.1, 2)
    assigned = {"assign_shape": b.reshape(x, (4, 1)),
                "assign_quant": b.quantize(x, 0.3, 2)}.get(case, y)
    if case == "assign_dtype":
        assigned = b.tensor((1, 4), 0.1, 2, np.int16)
        b.op("QUANTIZE", [x], [assigned])
    if case == "assign_output":
        b.op("ASSIGN_VARIABLE", [h, y], [b.tensor((1, 4), 0.1, 2)])
    elif case == "resource_to_add":
        b.op("ADD", [h, x], [b.tensor((1, 4), 0.1, 2)])
    elif case == "out_of_order":
        late = b.tensor((1, 4), 0.1, 2)
        b.assign_variable(h, late)
        b.op("ADD", [x, x], [late])
    elif case == "while":
        b.subgraph(), b.subgraph()
        b.op("WHILE", [x], [b.tensor((1, 4), 0.1, 2)], cond_subgraph_index=2, body_subgraph_index=3)
    elif case not in ("never_assigned", "float", "int32"):
        b.assign_variable(h, assigned)
    b.output(y)
    return b.build()


BAD = [
    ("call_once_range", ModelError, "runs subgraph 5, which does not exist"),
    ("call_once_main", ModelError, "runs subgraph 0, which is the main subgraph"),
    ("init_add", UnsupportedOpError, "subgraph 1, the initialiser of layer .* is ADD"),
    ("init_not_const", UnsupportedOpError, "which is not a constant"),
    ("init_inputs", ModelError, "has inputs or outputs"),
    ("init_shape", ModelError, r"CALL_ONCE assigns variable 'v' .* int8 \[1, 5\]"),
    ("init_quant", ModelError, r"CALL_ONCE assigns variable 'v' .*scale \[0.2"),
    ("init_dtype", ModelError, "CALL_ONCE assigns variable 'v' .* int16"),
    ("unused_subgraph", UnsupportedOpError, "subgraph 2 is not the init subgraph of a CALL_ONCE"),
    ("read_before_call_once", UnsupportedOpError, "comes after layer 1 uses a variable"),
    ("never_assigned", ModelError, "variable 'v' is read by layer .* never assigned"),
    ("handle_twice", ModelError, "which another VAR_HANDLE already made"),
    ("no_handle", ModelError, "which no VAR_HANDLE makes"),
    ("read_two_inputs", ModelError, "READ_VARIABLE.*has 2 inputs; the op takes 1"),
    ("assign_output", ModelError, "ASSIGN_VARIABLE.*has 1 outputs; the op has none"),
    ("assign_shape", ModelError, r"the assigned value is int8 \[4, 1\] but the variable 'v' is int8 \[1, 4\]"),
    ("assign_dtype", ModelError, "the assigned value is int16"),
    ("assign_quant", UnsupportedOpError, "another quantization than the variable 'v'"),
    ("float", UnsupportedOpError, "float32; tinycomp supports int8 and int16 variables .*"
                                  "_experimental_variable_quantization"),
    ("int32", UnsupportedOpError, "is int32; tinycomp supports int8 and int16 variables"),
    ("resource_to_add", ModelError, "is a resource handle"),
    ("out_of_order", ModelError, "before layer .* computes it"),
    ("while", UnsupportedOpError, "unsupported op WHILE"),
]


@pytest.mark.parametrize("case, error, match", BAD, ids=[c for c, _, _ in BAD])
def test_bad_variable_models_refused(case, error, match):
    buf = _model(case)
    with pytest.raises(error, match=match) as caught:
        generate(parse_tflite(buf))
    assert "\n" not in str(caught.value)


def test_good_base_model_compiles():
    """The model the bad cases spoil, unspoiled, is bit-exact (the cases fail
    for their one reason)."""
    buf = _model("good")
    x = np.random.default_rng(0).integers(-128, 128, (5, 1, 4)).astype(np.int8)
    assert_bit_exact(buf, x)


def test_cli_refuses_in_one_line(tmp_path):
    (tmp_path / "bad.tflite").write_bytes(_model("init_add"))
    result = tinycomp("build", tmp_path / "bad.tflite", "--board", "host", "--out", tmp_path / "o")
    assert_one_line_error(result, "ADD")


def test_names_end_at_nul_as_tflm_compares_them():
    """TFLM compares container and shared_name as C strings: 'v' and
    'v\\0junk' (a fuzzed file's string) name one variable."""
    b = ModelBuilder()
    init = b.subgraph()
    init.assign_variable(init.var_handle("v\0junk"),
                         init.const(np.arange(4).reshape(1, 4), np.int8, scales=0.1, zero_points=2))
    x = b.input((1, 4), 0.1, 2)
    b.call_once(1)
    h = b.var_handle("v")
    r = b.read_variable(h, (1, 4), 0.1, 2)
    b.assign_variable(h, x)
    b.output(b.add(x, r, 0.1, 2))
    buf = b.build()
    assert parse_tflite(buf).tensors[-1].init.tolist() == [[0, 1, 2, 3]]
    assert_bit_exact(buf, np.random.default_rng(0).integers(-128, 128, (4, 1, 4)).astype(np.int8))


def test_handle_of_several_elements_refused():
    """TFLM needs a resource handle of one element (found by fuzzing)."""
    b = ModelBuilder()
    x = b.input((1, 4), 0.1, 2)
    h = b.var_handle("v")
    b._tensor_ts[h].shape = [7]
    b.assign_variable(h, x)
    b.output(b.add(x, b.read_variable(h, (1, 4), 0.1, 2), 0.1, 2))
    with pytest.raises(ModelError, match="not a resource tensor of one element"):
        parse_tflite(b.build())
