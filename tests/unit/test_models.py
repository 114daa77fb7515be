"""The models everything is tested on: MLPerf Tiny architectures and the digits CNN."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from tflite_micro import runtime

from benchmarks import models
from tests.support.models import digits_model, mlperf_inputs, mlperf_tflite

# Keras 3 calls np.array(x, copy=False) on its variables under numpy 2: harmless noise.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# MACs of the models TFLM + CMSIS-NN were measured on (ANCHORS.md).
ANCHOR_MACS = {"kws": 2_656_768, "vww": 7_489_664, "ic": 12_501_632, "ad": 264_192}
ARENA = 1 << 20
OPS = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def parse(buf: bytes) -> schema.ModelT:
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))


def tflite_macs(buf: bytes) -> int:
    """MACs of a converted model, counted from its op and weight shapes."""
    model = parse(buf)
    graph = model.subgraphs[0]
    total = 0
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = OPS[max(code.builtinCode, code.deprecatedBuiltinCode)]
        out = int(np.prod(graph.tensors[op.outputs[0]].shape))
        w = graph.tensors[op.inputs[1]].shape if len(op.inputs) > 1 else None
        if name in ("CONV_2D", "FULLY_CONNECTED"):   # weights (out, ..., in)
            total += out * int(np.prod(w[1:]))
        elif name == "DEPTHWISE_CONV_2D":            # weights (1, kh, kw, out)
            total += out * int(w[1] * w[2])
    return total


def quantize(buf: bytes, x: np.ndarray) -> np.ndarray:
    graph = parse(buf).subgraphs[0]
    q = graph.tensors[graph.inputs[0]].quantization
    return np.clip(np.round(x / q.scale[0]) + q.zeroPoint[0], -128, 127).astype(np.int8)


def run_tflm(buf: bytes, x_int8: np.ndarray) -> np.ndarray:
    interpreter = runtime.Interpreter.from_bytes(buf, arena_size=ARENA)
    outputs = []
    for sample in x_int8:
        # TFLM's planner may reuse the input's memory: write it before every run.
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0), copy=True))
    return np.stack(outputs)


@pytest.mark.tf
@pytest.mark.parametrize("name", models.NAMES)
def test_keras_mac_count_matches_anchor(name):
    assert models.count_macs(models.build(name)) == ANCHOR_MACS[name]


@pytest.mark.tf
@pytest.mark.parametrize("name", models.NAMES)
def test_seeded_weights_are_reproducible(name):
    a, b = models.build(name, seed=3), models.build(name, seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_representative_data_shape_range_and_seed():
    for name in models.NAMES:
        x = models.representative_data(name, 5, seed=2)
        assert x.dtype == np.float32 and x.shape == (5, *models.SPECS[name][0])
        np.testing.assert_array_equal(x, models.representative_data(name, 5, seed=2))
        assert not np.array_equal(x, models.representative_data(name, 5, seed=3))
    images = models.representative_data("vww", 5)
    assert images.min() >= 0.0 and images.max() <= 1.0


@pytest.mark.tf  # converts when the cache is cold
@pytest.mark.parametrize("name", models.NAMES)
def test_converted_model_is_int8_batch_one_with_anchor_macs(name):
    buf = mlperf_tflite(name)
    graph = parse(buf).subgraphs[0]
    assert {t.type for t in graph.tensors} <= {schema.TensorType.INT8, schema.TensorType.INT32}
    shape, width, _ = models.SPECS[name]
    assert list(graph.tensors[graph.inputs[0]].shape) == [1, *shape]
    assert list(graph.tensors[graph.outputs[0]].shape) == [1, width]
    # Same MACs after conversion: BN folded, nothing added or dropped.
    assert tflite_macs(buf) == ANCHOR_MACS[name]


@pytest.mark.tf
@pytest.mark.parametrize("name", models.NAMES)
def test_tflm_runs_converted_model(name):
    buf = mlperf_tflite(name)
    out = run_tflm(buf, quantize(buf, mlperf_inputs(name, 3)))
    assert out.dtype == np.int8 and out.shape == (3, 1, models.SPECS[name][1])
    # Seeded weights still give input-dependent outputs (nothing saturates to a constant).
    assert len(np.unique(out.reshape(3, -1), axis=0)) > 1


@pytest.mark.tf
def test_cache_hit_does_not_import_tensorflow():
    mlperf_tflite("kws")  # make sure the cache is warm
    code = (
        "import sys; from benchmarks import models; models.tflite_bytes('kws'); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.tf
def test_digits_model_accuracy_float_and_int8():
    digits = digits_model()
    assert digits.float_accuracy > 0.95
    out = run_tflm(digits.tflite, quantize(digits.tflite, digits.x_test))
    int8_accuracy = np.mean(np.argmax(out.reshape(len(out), -1), axis=-1) == digits.y_test)
    assert int8_accuracy > 0.95


def test_digits_split_is_seeded_and_stratified():
    from tinycomp.datasets import load_digits

    a, b = load_digits(0), load_digits(0)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert a.x_train.shape[1:] == (8, 8, 1) and a.x_train.dtype == np.float32
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert len(a.x_train) + len(a.x_test) == 1797
    assert np.bincount(a.y_test).min() >= 40  # stratified: about 45 per class
