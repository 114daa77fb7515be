"""UNIDIRECTIONAL_SEQUENCE_LSTM (int8 in and out, int16 cell state) on the
host, bit-exact with TFLM over whole sequences of invokes: the hidden and
cell states a run keeps between samples must evolve exactly as TFLM's
variable tensors do. Also the states' reset (C API and `run`), a small
keyword-spotting model through `tinycomp build` and `run`, and the models
refused in one line."""
from __future__ import annotations


import numpy as np
import pytest

from tests.support.cli import assert_one_line_error, tinycomp
from tests.support.harness import assert_bit_exact
from tests.support.lstm_models import add_lstm, lstm_keyword_model, lstm_model
from tests.support.stateful import check_c_api_reset, sequence
from tests.support.tflite_builder import ModelBuilder
from tests.support.tflm import make_interpreter, run_tflm
from tinycomp.codegen.generate import generate
from tinycomp.errors import ModelError, UnsupportedOpError
from tinycomp.frontends.tflite import parse_tflite

CASES, STEPS = 16, 6


@pytest.mark.parametrize("seed", range(3))
def test_lstm_sequences_bit_exact(seed):
    """16 random LSTM layers per build (batch 1-3, 1-5 time steps, depth 1-19,
    1-16 cells, time-major and batch-major, cell scales 2^-15 to 2^-8, cell
    clip, gates driven into saturation, input zero point -128), 6 invokes in
    a row each: every output compared, so the carried state is too."""
    buf = lstm_model(seed, CASES)
    ins = sequence(buf, seed, STEPS)
    ours = assert_bit_exact(buf, ins)
    # the state matters: one input's outputs are not all equal
    assert sum(len(np.unique(o.reshape(STEPS, -1), axis=0)) > 1 for o in ours) >= CASES // 2


def _one_lstm(seed=3, batch=2, steps=3, depth=5, cells=6, zp_out=9, **kwargs) -> ModelBuilder:
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    tm = kwargs.get("time_major", False)
    x = b.input((steps, batch, depth) if tm else (batch, steps, depth), 0.04, -3)
    b.output(add_lstm(b, rng, x, cells, 0.007, zp_out, **kwargs))
    return b


def test_edge_cases_exercised():
    """The random cases reach what they claim: with clip, the cell state
    sits at the clip; saturating gates reach the int8 limits."""
    b = _one_lstm(cell_clip=0.05, weight_range=8.0, bias_range=6.0)
    buf = b.build()
    ins = sequence(buf, 5, 8)
    out = assert_bit_exact(buf, ins)
    it = make_interpreter(buf, preserve_all=True)
    it.set_input(ins[0][2], 0)
    it.invoke()
    cell = np.array(it.GetTensor(b._operators[-1].inputs[19], 0)["tensor_data"])
    qclip = int(0.05 / 2.0 ** -11)
    assert cell.dtype == np.int16 and np.abs(cell).max() == qclip
    assert np.abs(out.astype(int) - 9).max() <= 8  # |h| <= tanh(0.05) / 0.007
    buf = _one_lstm(weight_range=8.0, bias_range=6.0).build()
    out = assert_bit_exact(buf, sequence(buf, 5, 8))
    assert out.min() == -128 and out.max() == 127


def test_state_buffers_in_the_file_are_ignored_as_tflm_does():
    """TFLM resets variable tensors at allocation whatever their buffers hold
    (zeros, the int8 hidden state its zero point); so does tinycomp."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils
    m = flatbuffer_utils.read_model_from_bytearray(bytearray(lstm_model(7, 3)))
    for t in m.subgraphs[0].tensors:
        if t.isVariable:
            dtype = np.int8 if t.type == fb.TensorType.INT8 else np.int16
            data = fb.BufferT()
            data.data = np.frombuffer(np.full(int(np.prod(t.shape)), 77, dtype).tobytes(), np.uint8)
            t.buffer = len(m.buffers)
            m.buffers.append(data)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    buf = bytes(b.Output())
    assert all(not t.is_const for t in parse_tflite(buf).tensors if t.variable)
    assert_bit_exact(buf, sequence(buf, 7, 4))


def test_reset_state_in_the_c_api(tmp_path):
    """The first inference after program start and after
    tinycomp_reset_state() sees TFLM's initial state (hidden state at its
    zero point, 9 here, cell state zeros): the N inferences after a reset
    repeat the first N, equal to TFLM's, and equal to TFLM's after its own
    reset; without a reset the state carries on (TFLM's outputs differ)."""
    n = 5
    buf = _one_lstm(batch=1, steps=2, depth=5, cells=6).build()
    first, xs = check_c_api_reset(buf, n, tmp_path, state_bytes=6 + 6 * 2)
    it = make_interpreter(buf)
    for x in xs:
        it.set_input(x, 0)
        it.invoke()
    it.reset()
    it.set_input(xs[0], 0)
    it.invoke()
    assert np.array_equal(it.get_output(0).reshape(-1), first[0])


def test_run_starts_each_run_from_the_initial_state(tmp_path):
    """`run` keeps the state across the samples of one run and starts every
    run from TFLM's initial state."""
    from tinycomp.pipeline import build_graph, run_all

    buf = lstm_model(11, 3)
    info = build_graph(parse_tflite(buf, name="lstm"), buf, tmp_path / "out", "host")
    assert info["state_bytes"] > 0
    ins = sequence(buf, 11, 5)
    one, _ = run_all(tmp_path / "out", ins)
    two, _ = run_all(tmp_path / "out", ins)
    for a, b_, r in zip(one, two, run_tflm(buf, ins)):
        assert np.array_equal(a.reshape(5, -1), r.reshape(5, -1))
        assert np.array_equal(a, b_)


def test_keyword_model_through_the_cli(tmp_path):
    """input (1, 12 frames, 10 features) -> LSTM (16 cells) -> RESHAPE ->
    FULLY_CONNECTED (4) -> SOFTMAX, built by `tinycomp build` and run by
    `tinycomp run` on 20 utterances in a row: equal to TFLM's, state
    carried across them."""
    buf = lstm_keyword_model()
    path = tmp_path / "kws.tflite"
    path.write_bytes(buf)
    out = tmp_path / "kws"
    result = tinycomp("build", path, "--board", "host", "--out", out)
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(4).integers(-128, 128, (20, 1, 12, 10)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    result = tinycomp("run", out, "--inputs", tmp_path / "x.npy", "--outputs", tmp_path / "y.npy")
    assert result.returncode == 0, result.stderr
    y = np.load(tmp_path / "y.npy")
    ref = run_tflm(buf, x).reshape(20, -1)
    assert np.array_equal(y.reshape(20, -1), ref)
    assert len(np.unique(ref, axis=0)) > 5
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in tinycomp("inspect", path).stdout


def _lstm_inputs(b: ModelBuilder) -> list[int]:
    return list(b._operators[-1].inputs)


def _set_input(b: ModelBuilder, i: int, t: int) -> None:
    b._operators[-1].inputs[i] = t


def _variant(kind: str) -> bytes:
    b = _one_lstm()
    ins = _lstm_inputs(b)
    op = b._operators[-1]
    cells, depth = 6, 5
    if kind == "cifg":
        for i in (1, 5, 12):
            _set_input(b, i, -1)
    elif kind == "peephole":
        _set_input(b, 10, b.const(np.ones(cells), np.int16, 0.01))
    elif kind == "projection":
        _set_input(b, 16, b.const_int8(np.ones((cells, cells)), 0.01))
    elif kind == "layer norm":
        _set_input(b, 21, b.const(np.ones(cells), np.int16, 0.01))
    elif kind == "relu":
        op.builtinOptions.fusedActivationFunction = 1
    elif kind == "negative clip":
        op.builtinOptions.cellClip = -1.0
    elif kind == "diagonal":
        op.builtinOptions.diagonalRecurrentTensors = True
    elif kind == "no options":
        op.builtinOptions, op.builtinOptionsType = None, 0
    elif kind == "23 inputs":
        op.inputs = ins[:23]
    elif kind == "missing weights":
        _set_input(b, 3, -1)
    elif kind == "weights shape":
        _set_input(b, 6, b.const_int8(np.ones((cells, cells + 1)), 0.01))
    elif kind == "computed weights":
        _set_input(b, 2, b.tensor((cells, depth), 0.01))
    elif kind == "int16 bias":
        _set_input(b, 13, b.const(np.ones(cells), np.int16, 0.01))
    elif kind == "state not variable":
        b._tensor_ts[ins[19]].isVariable = False
    elif kind == "state shape":
        _set_input(b, 18, b.variable((2, cells + 1), 0.007, 9, dtype=np.int8))
    elif kind == "int8 cell state":
        _set_input(b, 19, b.variable((2, cells), 2.0 ** -11, 0, dtype=np.int8))
    elif kind == "intermediate with bytes":
        op.intermediates = [b.tensor((4,), 2.0 ** -12, 0, dtype=np.int16)]
    elif kind == "output shape":
        b._tensor_ts[op.outputs[0]].shape = [2, 3, cells + 1]
    elif kind == "cell zero point":
        b._tensor_ts[ins[19]].quantization.zeroPoint = [2]
    elif kind == "cell scale":
        b._tensor_ts[ins[19]].quantization.scale = [0.0003]
    elif kind == "per-channel weights":
        _set_input(b, 3, b.const_int8(np.ones((cells, depth)), [0.01] * cells, axis=0))
    elif kind == "int16 input":
        b._tensor_ts[ins[0]].type = 7
    return b.build()


@pytest.mark.parametrize("kind, error, match", [
    ("cifg", UnsupportedOpError, "CIFG"),
    ("peephole", UnsupportedOpError, "peephole"),
    ("projection", UnsupportedOpError, "projection"),
    ("layer norm", UnsupportedOpError, "layer normalization"),
    ("relu", UnsupportedOpError, "cell activation RELU"),
    ("diagonal", UnsupportedOpError, "diagonal"),
    ("negative clip", ModelError, "cell_clip"),
    ("no options", ModelError, "UnidirectionalSequenceLSTMOptions"),
    ("23 inputs", ModelError, "has 23 inputs"),
    ("missing weights", ModelError, "input 3 is missing"),
    ("weights shape", ModelError, "must be int8 \\[6, 6\\]"),
    ("computed weights", ModelError, "which no layer computes"),
    ("int16 bias", ModelError, "must be int32"),
    ("state not variable", ModelError, "which no layer computes"),
    ("state shape", ModelError, "do not hold"),
    ("int8 cell state", ModelError, "must be a int16 variable"),
    ("intermediate with bytes", UnsupportedOpError, "only empty intermediates"),
    ("output shape", ModelError, "output shape"),
    ("cell zero point", UnsupportedOpError, "zero point 2"),
    ("cell scale", UnsupportedOpError, "not a power of two"),
    ("per-channel weights", UnsupportedOpError, "quantized per tensor"),
    ("int16 input", ModelError, "variable"),
])
def test_bad_lstm_refused(kind, error, match):
    """Every variant TFLM's integer kernel lacks, and every malformed LSTM,
    is refused in one line naming the op and the layer."""
    with pytest.raises(error, match=match) as info:
        generate(parse_tflite(_variant(kind)))
    message = str(info.value)
    assert "\n" not in message and "UNIDIRECTIONAL_SEQUENCE_LSTM" in message
    assert "layer 0" in message or "layer 1" in message


def test_refusal_on_the_command_line(tmp_path):
    path = tmp_path / "cifg.tflite"
    path.write_bytes(_variant("cifg"))
    assert_one_line_error(tinycomp("build", path, "--board", "host", "--out", tmp_path / "o"),
                          "UNIDIRECTIONAL_SEQUENCE_LSTM", "CIFG")


def test_tflm_refuses_what_tinycomp_refuses():
    """The refused variants are ones TFLM's integer kernel cannot run either
    (checked for CIFG and peephole; the others fail its Prepare the same way)."""
    for kind in ("cifg", "peephole", "intermediate with bytes"):
        with pytest.raises(Exception):
            make_interpreter(_variant(kind))


@pytest.mark.parametrize("float_edges", [False, True])
def test_keras_lstm_converted_by_tflite_bit_exact(float_edges):
    """A Keras (tf_keras) LSTM keyword spotter as the TFLite converter writes
    it (UNIDIRECTIONAL_SEQUENCE_LSTM, STRIDED_SLICE of the last step, FC,
    SOFTMAX; with the converter's defaults, float32 in and out around them),
    24 utterances in a row: equal to TFLM, state carried."""
    from tests.support.keras_lstm import keras_lstm_model, utterances

    buf = keras_lstm_model(float_edges)
    ops = [n.op.value for n in parse_tflite(buf).nodes]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops and (ops[0] == "QUANTIZE") == float_edges
    ours = assert_bit_exact(buf, utterances(24, 0, float_edges))
    assert len(np.unique(ours.reshape(24, -1), axis=0)) > 12


def test_intermediate_of_unknown_type_refused():
    """Found by the fuzz test's LSTM seed: an intermediate tensor (read by no
    op, so no other check saw its type) of a type TFLite does not define
    crashed the size check with a TypeError; now one line."""
    from tests.support.fuzz import mutate, seed_models

    with pytest.raises(ModelError, match=r"intermediate tensor .* unknown element type \(99\)"):
        parse_tflite(mutate(seed_models()[4], "field", 4294967295))
