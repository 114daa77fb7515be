"""Whole models on the host, bit-exact with TFLM: the four MLPerf Tiny
architectures and a CNN trained on scikit-learn's digits, plus an
AddressSanitizer/UndefinedBehaviorSanitizer run of a generated model."""
import numpy as np
import pytest

from tinycomp.frontends.tflite import parse_tflite
from tinycomp.pipeline import model_samples
from tests.support.harness import assert_bit_exact, compile_for_host
from tests.support.models import MLPERF_NAMES, digits_model, mlperf_inputs, mlperf_tflite
from tests.support.tflm import run_tflm


def _int8_inputs(tflite: bytes, samples: np.ndarray) -> np.ndarray:
    graph = parse_tflite(tflite)
    x = graph.tensor(graph.inputs[0])
    info = {"input": {"shape": list(x.shape), "scale": x.scale, "zero_point": x.zero_point}}
    return model_samples(samples, info).reshape((len(samples), *x.shape))


@pytest.mark.parametrize("name", MLPERF_NAMES)
def test_mlperf_model_bit_exact(name):
    tflite = mlperf_tflite(name)
    assert_bit_exact(tflite, _int8_inputs(tflite, mlperf_inputs(name, n=4)))


def test_digits_cnn_bit_exact_and_accurate():
    d = digits_model()
    x = _int8_inputs(d.tflite, d.x_test)
    ours = assert_bit_exact(d.tflite, x)
    accuracy = np.mean(np.argmax(ours, axis=-1) == d.y_test)
    assert accuracy >= d.float_accuracy - 0.02, (accuracy, d.float_accuracy)


@pytest.mark.parametrize("name", [*MLPERF_NAMES, "digits"])
def test_sanitizers_find_nothing_in_generated_models(name):
    """ASan/UBSan over every whole test model (conv, depthwise, pooling, FC,
    residual ADD, softmax): out-of-bounds reads at padded borders, writes past
    the arena or signed overflow would abort the run."""
    if name == "digits":
        tflite, samples = digits_model().tflite, digits_model().x_test[:2]
    else:
        tflite, samples = mlperf_tflite(name), mlperf_inputs(name, n=2)
    x = _int8_inputs(tflite, samples)
    runner = compile_for_host(tflite, extra_flags=("-O1", "-g", "-fsanitize=address,undefined",
                                                   "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"))
    assert np.array_equal(runner.infer(x), run_tflm(tflite, x).reshape(len(x), -1))
