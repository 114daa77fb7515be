"""Mixed int8/int16 models (compress --int16, tinycomp/compress/int16.py): chosen
activation tensors kept in int16, their layers in TFLite's 16x8 scheme with
QUANTIZE to and from the int8 rest. Three architectures (the digits CNN, the
MLPerf Tiny DS-CNN and FC autoencoder), every candidate alone on the digits
CNN and all at once on each, bit-exact with TFLite Micro on the host (QEMU:
tests/qemu/test_int16_mixed_on_qemu.py). No TensorFlow."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support.harness import assert_bit_exact
from tests.support.models import digits_model, mlperf_inputs, mlperf_tflite
from tinycomp.compress import int16
from tinycomp.compress.analysis import int8_inputs
from tinycomp.errors import ModelError
from tinycomp.frontends.tflite import parse_tflite


def _quantized(tflite: bytes, x: np.ndarray) -> np.ndarray:
    return int8_inputs(parse_tflite(tflite), x)


def _models():
    d = digits_model()
    yield "digits", d.tflite, _quantized(d.tflite, d.x_test[:40])
    for name in ("kws", "ad"):
        tflite = mlperf_tflite(name)
        yield name, tflite, _quantized(tflite, mlperf_inputs(name, n=3))


MODELS = {name: (tflite, x) for name, tflite, x in _models()}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_candidate_at_once_is_bit_exact_on_the_host(name):
    tflite, x = MODELS[name]
    names = int16.candidates(tflite)
    assert len(names) >= 3
    mixed = int16.to_mixed(tflite, names)
    assert int16.int16_tensors(mixed)
    g = parse_tflite(mixed)
    assert g.tensor(g.inputs[0]).dtype == "int8" and g.tensor(g.outputs[0]).dtype == "int8"
    assert any(n.op.value == "QUANTIZE" for n in g.nodes)
    assert_bit_exact(mixed, x)


def test_a_model_made_with_the_converters_defaults():
    """Float32 in and out around the int8 graph, and a dynamic batch: the
    flatten's shape computed by SHAPE -> STRIDED_SLICE -> PACK. Candidates
    stop where SHAPE reads a tensor; a part that takes in the RESHAPE keeps
    its computed int32 shape as it is. Bit-exact either way."""
    from tests.support.models import digits_default_conversion

    tflite = digits_default_conversion()
    x = digits_model().x_test[:12].astype(np.float32).reshape(12, 1, 8, 8, 1)
    assert len(int16.candidates(tflite)) >= 2
    assert_bit_exact(int16.to_mixed(tflite, int16.candidates(tflite)), x)
    flatten = next(n for n in parse_tflite(tflite).nodes if n.op.value == "RESHAPE")
    mixed = int16.to_mixed(tflite, [parse_tflite(tflite).tensor(flatten.outputs[0]).name])
    shape_input = parse_tflite(mixed).tensor(next(n for n in parse_tflite(mixed).nodes
                                                  if n.op.value == "RESHAPE").inputs[1])
    assert shape_input.dtype == "int32"
    assert_bit_exact(mixed, x)


def test_each_digits_candidate_alone_is_bit_exact_on_the_host():
    tflite, x = MODELS["digits"]
    for name in int16.candidates(tflite):
        assert_bit_exact(int16.to_mixed(tflite, [name]), x)


def test_int16_brings_the_digits_outputs_closer_to_the_float_model():
    """Measured against the float CNN's own outputs: every tensor int16 lowers
    the error, and choose() keeps only tensors that lower it, best first."""
    d = digits_model()
    x = _quantized(d.tflite, d.x_test[:120])
    kept, rows = int16.choose(d.tflite, x, d.float_probs[:120], 2)
    base = rows[0]["int8_error"]
    assert {r["tensor"] for r in rows} == set(int16.candidates(d.tflite))
    errors = {r["tensor"]: r["error"] for r in rows}
    assert kept and all(errors[k] < base for k in kept) and errors[kept[0]] == min(errors.values())
    everything = int16.to_mixed(d.tflite, int16.candidates(d.tflite))
    from tinycomp.reference.tflm import run

    graph = parse_tflite(d.tflite)
    out = graph.tensor(graph.outputs[0])
    y, _ = run(everything, x)
    all16 = float(np.mean(((y.astype(np.float64) - out.zero_point) * out.scale - d.float_probs[:120]) ** 2))
    assert all16 < 0.75 * base, (all16, base)


def test_what_cannot_stay_int16_is_refused_by_name():
    tflite, _ = MODELS["digits"]
    g = parse_tflite(tflite)
    softmax_in = g.tensor(next(n for n in g.nodes if n.op.value == "SOFTMAX").inputs[0]).name
    with pytest.raises(ModelError, match="meets SOFTMAX"):
        int16.to_mixed(tflite, [softmax_in])
    with pytest.raises(ModelError, match="model input or output"):
        int16.to_mixed(tflite, [g.tensor(g.outputs[0]).name])
    with pytest.raises(ModelError, match="no tensor named 'nope'"):
        int16.to_mixed(tflite, ["nope"])
