"""INT4 weights (TFLite's packed TensorType INT4) on the host, bit-exact with
TFLite Micro's int4 kernels, packed in flash, and refused where TFLM refuses
them or tinycomp has no kernel."""
import numpy as np
import pytest

from tests.support.harness import assert_bit_exact
from tests.support.int4_models import int4_inputs, int4_model
from tests.support.tflite_builder import ModelBuilder, pack_int4, random_int4_weights, random_weights
from tinycomp.codegen.generate import generate
from tinycomp.errors import ModelError, UnsupportedOpError
from tinycomp.frontends.tflite import parse_tflite


@pytest.mark.parametrize("seed", range(3))
def test_int4_layers_equal_tflm(seed):
    """17 layers per model (every INT4 kernel path, see tests/support/int4_models.py)."""
    model = int4_model(seed)
    assert_bit_exact(model, int4_inputs(seed, model, count=16))


def test_unpacked_as_tflm_reads_them():
    """Element 2i in the low nibble, 2i+1 in the high one, over the flattened
    tensor; an odd count leaves the last high nibble unused."""
    rng = np.random.default_rng(3)
    values = rng.integers(-8, 8, (3, 1, 1, 5)).astype(np.int8)  # 15 values: 8 bytes
    values.flat[:2] = (-8, 7)
    b = ModelBuilder()
    x = b.input((1, 2, 2, 5), 0.1, 0)
    w = b.const_int4(values, np.full(3, 0.01, np.float32), axis=0)
    b.output(b.conv2d(x, w, None, 0.2, 0))
    graph = parse_tflite(b.build())
    weights = graph.tensor(graph.nodes[0].inputs[1])
    assert weights.dtype == "int4" and weights.nbytes == 8
    assert np.array_equal(weights.data, values)
    assert pack_int4(values)[0] == 0x78  # -8 low, 7 high


def _big_model(int8: bool) -> bytes:
    """Weights dominate the constants: a 3x3x32 -> 32 conv, a 32-channel
    depthwise and a 512 -> 64 FC."""
    rng = np.random.default_rng(7)
    b = ModelBuilder()
    const = b.const_int8 if int8 else b.const_int4
    x = b.input((1, 4, 4, 32), 0.05, 3)
    wq, ws = random_int4_weights(rng, (32, 3, 3, 32))
    y = b.conv2d(x, const(wq, ws, axis=0), None, 0.1, 0)
    wq, ws = random_int4_weights(rng, (1, 3, 3, 32), axis=3)
    y = b.depthwise_conv2d(y, const(wq, ws, axis=3), None, 0.1, 0)
    wq, ws = random_int4_weights(rng, (64, 512), axis=None)
    b.output(b.fully_connected(y, const(wq, ws, axis=0), None, 0.2, 0))
    return b.build()


def test_int4_constants_take_half_the_bytes():
    m4, m8 = _big_model(False), _big_model(True)
    g4, g8 = generate(parse_tflite(m4)), generate(parse_tflite(m8))
    filters8 = 32 * 9 * 32 + 9 * 32 + 64 * 512
    assert g8.weights_bytes >= filters8
    # the packed filters plus the same requantization constants as int8
    assert g4.weights_bytes <= g8.weights_bytes - filters8 // 2 + 64
    assert 0.45 < g4.weights_bytes / g8.weights_bytes < 0.56
    x = np.random.default_rng(0).integers(-128, 128, (4, 1, 4, 4, 32), dtype=np.int8)
    assert_bit_exact(m4, x)


# ------------------------------------------------------------------ refusals


def _with_int4(op: str, per_channel: bool = True, int16_input: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    if op == "FULLY_CONNECTED":
        x = b.input((1, 12), 0.05, 0, dtype=np.int16 if int16_input else np.int8)
        wq, ws = random_int4_weights(rng, (3, 12), axis=0 if per_channel else None)
        b.output(b.fully_connected(x, b.const_int4(wq, ws, axis=0), None, 0.1, 0))
    elif op == "CONV_2D":
        x = b.input((1, 4, 4, 3), 0.05, 0, dtype=np.int16 if int16_input else np.int8)
        wq, ws = random_int4_weights(rng, (2, 3, 3, 3))
        y = b.conv2d(x, b.const_int4(wq, ws, axis=0), None, 0.1, 0)
        if int16_input:
            b._tensor_ts[y].type = 7  # INT16, as the input
        b.output(y)
    elif op == "ADD":
        x = b.input((1, 4), 0.05, 0)
        c = b.const_int4(np.array([[1, -2, 3, -8]]), np.float32(0.05))
        b.output(b.add(x, c, 0.1, 0))
    elif op == "TRANSPOSE_CONV":
        x = b.input((1, 3, 3, 2), 0.05, 0)
        wq, ws = random_int4_weights(rng, (4, 3, 3, 2))
        b.output(b.transpose_conv(x, b.const_int4(wq, ws, axis=0), None, (1, 3, 3, 4), 0.1, 0))
    return b.build()


@pytest.mark.parametrize("op, kwargs, fragment", [
    ("FULLY_CONNECTED", {"per_channel": True}, "per-channel INT4"),
    ("CONV_2D", {"int16_input": True}, "input type int16"),
    ("ADD", {}, "INT4 tensor"),
    ("TRANSPOSE_CONV", {}, "INT4 tensor"),
])
def test_int4_refused_where_tflm_or_tinycomp_has_no_kernel(op, kwargs, fragment):
    with pytest.raises(UnsupportedOpError) as err:
        parse_tflite(_with_int4(op, **kwargs))
    message = str(err.value)
    assert "\n" not in message and fragment in message and op in message and "layer 0" in message


def test_int4_activation_refused():
    b = ModelBuilder()
    x = b.input((1, 4, 4, 3), 0.05, 0)
    wq, ws = random_weights(np.random.default_rng(0), (2, 1, 1, 3))
    y = b.conv2d(x, b.const_int8(wq, ws, axis=0), None, 0.1, 0)
    b._tensor_ts[y].type = 17  # an INT4 activation
    b.output(y)
    with pytest.raises(UnsupportedOpError, match=r"layer 0 \(CONV_2D.*INT4 tensor .* as its output"):
        parse_tflite(b.build())


@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_packed_length_refused(delta):
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.input((1, 3, 3, 3), 0.05, 0)
    wq, ws = random_int4_weights(rng, (3, 3, 3, 3))  # 81 values: 41 bytes
    w = b.const_int4(wq, ws, axis=0)
    buf = b._buffers[b._tensor_ts[w].buffer]
    buf.data = np.resize(buf.data, buf.data.size + delta)
    b.output(b.conv2d(x, w, None, 0.1, 0))
    with pytest.raises(ModelError, match=r"INT4 tensor .* holds (40|42) bytes; its shape \(3, 3, 3, 3\) packs into 41"):
        parse_tflite(b.build())


def test_int4_bias_refused():
    """Biases are int32 (or int64): an INT4 bias is malformed."""
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.input((1, 8), 0.05, 0)
    wq, ws = random_int4_weights(rng, (4, 8), axis=None)
    bias = b.const_int4(np.array([1, 2, 3, 4]), ws)
    b.output(b.fully_connected(x, b.const_int4(wq, ws, axis=0), bias, 0.1, 0))
    with pytest.raises(UnsupportedOpError, match="INT4 tensor .* as its input 2"):
        parse_tflite(b.build())


def test_int4_weights_with_a_zero_point_refused():
    rng = np.random.default_rng(0)
    b = ModelBuilder()
    x = b.input((1, 8), 0.05, 0)
    wq, ws = random_int4_weights(rng, (4, 8), axis=None)
    w = b.const_int4(wq, ws, axis=0)
    b._tensor_ts[w].quantization.zeroPoint = [3]
    b.output(b.fully_connected(x, w, None, 0.1, 0))
    with pytest.raises(UnsupportedOpError, match="symmetric"):
        parse_tflite(b.build())


@pytest.fixture
def sparse_wherever_smaller(monkeypatch):
    """The cost model's dense INT4 kernels made infinitely slow: every layer
    whose sparse stream is smaller takes the sparse kernel."""
    from tinycomp.codegen.ops import sparse
    monkeypatch.setitem(sparse.COST, "int4_dense_mac", {"CONV_2D": 1e9, "FULLY_CONNECTED": 1e9})


def test_sparse_int4_equal_tflm_and_packed(sparse_wherever_smaller):
    """Pruned INT4 layers stored offset-sparse with their values packed two per
    byte: equal to TFLM, and each stream is the packed size."""
    from tinycomp.codegen.ops.sparse import compression_summary
    model = int4_model(5, sparsity=0.85)
    graph = parse_tflite(model)
    summary = compression_summary(graph)
    sparse_layers = [l for l in summary["layers"] if l["format"] == "offset-sparse"]
    assert len(sparse_layers) >= 8 and all(l["bits"] == 4 for l in summary["layers"])
    for layer in sparse_layers:
        assert layer["stored_bytes"] < layer["dense_bytes"] == (layer["weights"] + 1) // 2
    files = generate(graph).files
    assert files["tinycomp_weights.c"].count("_values[") == len(sparse_layers)
    assert_bit_exact(model, int4_inputs(5, model, count=16))
