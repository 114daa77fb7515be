"""SVDF (int8 in and out, int16 state) on the host, bit-exact with TFLM over
whole sequences: the state a run keeps between samples must evolve exactly as
TFLM's variable tensor does across invokes. Also the state's C API
(tinycomp_reset_state), `run` starting each run from zeros, and the models
refused in one line."""
from __future__ import annotations


import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.tools import flatbuffer_utils

from tests.support.harness import assert_bit_exact
from tests.support.stateful import check_c_api_reset, sequence
from tests.support.svdf_models import svdf_model
from tests.support.tflite_builder import ModelBuilder
from tests.support.tflm import run_tflm
from tinycomp.codegen.generate import generate
from tinycomp.errors import ModelError, UnsupportedOpError
from tinycomp.frontends.tflite import parse_tflite

CASES, STEPS = 14, 16


@pytest.mark.parametrize("seed", range(4))
def test_svdf_sequences_bit_exact(seed):
    """14 random SVDF layers (batch 1-2, depth 1-23, rank 1-3, memory 1-10,
    input zero points at both ends, state and output saturating) in one
    build, 16 consecutive samples each, every output compared."""
    buf = svdf_model(seed, CASES)
    ins = sequence(buf, seed, STEPS)
    ours = assert_bit_exact(buf, ins)
    # the state matters: the outputs of one input are not all equal
    assert any(len(np.unique(o.reshape(STEPS, -1), axis=0)) > 1 for o in ours)


@pytest.mark.parametrize("seed", range(2))
def test_int8_state_svdf_sequences_bit_exact(seed):
    """The same with an int8 state and int8 time weights (TFLite Micro's other
    integer SVDF), the state saturating at int8's bounds in some layers."""
    buf = svdf_model(100 + seed, CASES, np.int8)
    ours = assert_bit_exact(buf, sequence(buf, seed, STEPS))
    assert any(len(np.unique(o.reshape(STEPS, -1), axis=0)) > 1 for o in ours)


def _with_state_buffer(buf: bytes, value: int) -> bytes:
    m = flatbuffer_utils.read_model_from_bytearray(bytearray(buf))
    for t in m.subgraphs[0].tensors:
        if t.isVariable:
            data = fb.BufferT()
            data.data = np.frombuffer(np.full(int(np.prod(t.shape)), value, np.int16).tobytes(), np.uint8)
            t.buffer = len(m.buffers)
            m.buffers.append(data)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_state_buffer_in_the_file_is_ignored_as_tflm_does():
    """TFLM zeroes a variable tensor at allocation whatever its buffer holds."""
    buf = _with_state_buffer(svdf_model(7, 3), 3000)
    assert all(not t.is_const for t in parse_tflite(buf).tensors if t.variable)
    assert_bit_exact(buf, sequence(buf, 7, 6))


def test_reset_state_in_the_c_api(tmp_path):
    """tinycomp_reset_state() makes the next inferences repeat the first ones;
    without it they differ (the state carried on); both equal TFLM's."""
    n = 6
    b = ModelBuilder()
    rng = np.random.default_rng(3)
    x = b.input((1, 5), 0.02, -4)
    st = b.variable((1, 4 * 3), 0.004)
    y = b.svdf(x, b.const_int8(rng.integers(-127, 128, (4, 5)), 0.01),
               b.const(rng.integers(-9000, 9000, (4, 3)), np.int16, 2e-4),
               b.const_int32(rng.integers(-2000, 2000, (2,)), float(np.float32(0.004 * np.float32(2e-4)))),
               st, 2, 0.002, 5)
    b.output(y)
    buf = b.build()
    check_c_api_reset(buf, n, tmp_path, state_bytes=4 * 3 * 2)


def test_run_starts_each_run_from_zero_state(tmp_path):
    """`run` (pipeline.run_all) keeps the state across the samples of one run
    and starts every run from zeros: two runs of one sequence agree, and
    equal TFLM on that sequence from a fresh interpreter. reset_state() in
    the middle of a run starts a new sequence."""
    from tinycomp.pipeline import build_graph, run_all
    from tinycomp.targets import get_runner

    buf = svdf_model(11, 4)
    graph = parse_tflite(buf, name="svdf")
    info = build_graph(graph, buf, tmp_path / "out", "host")
    assert info["state_bytes"] > 0
    ins = sequence(buf, 11, 8)
    one, _ = run_all(tmp_path / "out", ins)
    two, _ = run_all(tmp_path / "out", ins)
    ref = run_tflm(buf, ins)
    for a, b_, r in zip(one, two, ref):
        assert np.array_equal(a.reshape(8, -1), r.reshape(8, -1))
        assert np.array_equal(a, b_)
    sample = b"".join(np.ascontiguousarray(a[0]).tobytes() for a in ins)
    with get_runner("host", tmp_path / "out" / "build") as runner:
        first = runner.infer(sample).output
        runner.infer(sample)
        runner.reset_state()
        assert runner.infer(sample).output == first


def _one_svdf(state_dtype=np.int16, state_zp=0, variable=True, bias=True, bias_scale=None, rank=2,
              state_shape=None, wt_dtype=np.int16):
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.input((1, 5), 0.02, 0)
    shape = state_shape or (1, 4 * 3)
    st = (b.variable(shape, 0.004, state_zp, dtype=state_dtype) if variable
          else b.input(shape, 0.004, state_zp, dtype=state_dtype))
    bs = float(np.float32(0.004 * np.float32(2e-4))) if bias_scale is None else bias_scale
    y = b.svdf(x, b.const_int8(rng.integers(-127, 128, (4, 5)), 0.01),
               b.const(rng.integers(-99, 99, (4, 3)), wt_dtype, 2e-4),
               b.const_int32(rng.integers(-99, 99, (4 // rank,)), bs) if bias else None, st, rank, 0.002, 0)
    b.output(y)
    return b


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(state_dtype=np.int8, wt_dtype=np.int16), UnsupportedOpError,
     "int16 time weights with an int8 state are not supported"),
    (dict(state_dtype=np.int16, wt_dtype=np.int8), UnsupportedOpError,
     "int8 time weights with an int16 state are not supported"),
    (dict(state_dtype=np.int8, wt_dtype=np.int8, state_zp=2), UnsupportedOpError, "int8 state has zero point 2"),
    (dict(state_zp=3), UnsupportedOpError, "zero point 3; it must be 0"),
    (dict(bias=False), UnsupportedOpError, "needs a bias"),
    (dict(bias_scale=0.5), UnsupportedOpError, "bias scale"),
    (dict(rank=3), ModelError, "rank 3 must"),
    (dict(state_shape=(1, 11)), ModelError, "state shape"),
])
def test_bad_svdf_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        generate(parse_tflite(_one_svdf(**kwargs).build()))


def test_state_that_is_not_a_variable_is_refused():
    b = _one_svdf(variable=False)
    with pytest.raises(ModelError, match="must be a variable tensor"):
        parse_tflite(b.build())


def test_variable_read_by_another_op_is_refused():
    b = ModelBuilder()
    x = b.input((1, 4), 0.1, 0)
    v = b.variable((1, 4), 0.1, 0, dtype=np.int8)
    b.output(b.add(x, v, 0.2, 0))
    with pytest.raises(UnsupportedOpError, match="reads the variable tensor"):
        parse_tflite(b.build())


def test_svdf_keyword_model_streams_bit_exact():
    """The whole streaming model (SVDF, SVDF, FULLY_CONNECTED, SOFTMAX), 40
    frames in a row: every frame's class scores equal TFLM's."""
    from tests.support.svdf_models import svdf_keyword_model
    buf = svdf_keyword_model()
    frames = np.random.default_rng(1).integers(-128, 128, (40, 1, 40)).astype(np.int8)
    out = assert_bit_exact(buf, frames)
    assert len(np.unique(out, axis=0)) > 5


def _state_misuse(kind: str) -> bytes:
    b = _one_svdf()
    state = next(i for i, t in enumerate(b._tensor_ts) if t.isVariable)
    if kind == "output":
        b.output(state)
    elif kind == "written":
        x2 = b.input((1, 12), 0.004, 0, dtype=np.int16)
        b.op("QUANTIZE", [x2], [state])
    elif kind == "two readers":
        y2 = b.tensor((1, 2), 0.002, 0)
        ins = list(b._operators[0].inputs)
        b.op("SVDF", ins, [y2], rank=2)
        b.output(y2)
    return b.build()


@pytest.mark.parametrize("kind, match", [
    ("output", "is a model input or output"),
    ("written", "writes the variable tensor"),
    ("two readers", "read by layer 0"),
])
def test_state_misuse_refused(kind, match):
    """State lives in place in its one layer: anything else is refused in
    one line before code exists."""
    with pytest.raises(UnsupportedOpError, match=match):
        parse_tflite(_state_misuse(kind))
