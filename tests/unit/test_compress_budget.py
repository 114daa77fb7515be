"""Compression on a model tinycomp was not tuned on: a digits CNN with
BatchNorm, a depthwise and a 1x1 conv, global average pooling and two dense
layers (the shape of the one a user tried). `--prune 0.8` with defaults
used to leave 19-54% accuracy; it must stay within the 1-point budget, and
a result over the budget must be refused with its report written."""
import numpy as np
import pytest

from tests.support.cli import assert_one_line_error, tinycomp

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    from benchmarks.unseen import unseen_model
    from tinycomp.datasets import load_digits

    s = load_digits(1)
    model = unseen_model(s)  # the benchmark's model: the test checks what it measures
    root = tmp_path_factory.mktemp("unseen")
    model.save(root / "bn.keras")
    np.savez(root / "d.npz", x_train=s.x_train, y_train=s.y_train, x_test=s.x_test, y_test=s.y_test)
    accuracy = float(model.evaluate(s.x_test, s.y_test, verbose=0)[1])
    return root, accuracy, s


def test_prune_08_with_defaults_holds_accuracy(unseen):
    from tests.support.harness import assert_bit_exact
    from tinycomp.frontends.tflite import parse_tflite
    from tinycomp.pipeline import model_samples

    root, float_accuracy, s = unseen
    result = tinycomp("compress", root / "bn.keras", "--data", root / "d.npz", "--prune", "0.8",
                      "--out", root / "small.keras", "--report", root / "r.md")
    assert result.returncode == 0, result.stderr
    tflite = (root / "small.tflite").read_bytes()
    graph = parse_tflite(tflite)
    x = graph.tensor(graph.inputs[0])
    info = {"input": {"shape": list(x.shape), "scale": x.scale, "zero_point": x.zero_point, "dtype": "int8"}}
    samples = model_samples(s.x_test, info).reshape((len(s.x_test), *x.shape))
    ours = assert_bit_exact(tflite, samples)  # what the device computes, equal to TFLM
    accuracy = float(np.mean(np.argmax(ours, axis=-1) == s.y_test))
    assert accuracy >= float_accuracy - 0.01, (accuracy, float_accuracy)
    zeros = [n for n in graph.tensors if n.is_const and n.dtype == "int8" and n.size > 100]
    stored = sum(int(np.count_nonzero(t.data == 0)) for t in zeros)
    assert stored >= 0.75 * sum(t.size for t in zeros)  # 80% of the weights overall, BN folded first
    assert "conv2d" in (root / "r.md").read_text()


def test_over_budget_writes_the_report_and_no_model(unseen):
    root, _, _ = unseen
    out = root / "over.keras"
    result = tinycomp("compress", root / "bn.keras", "--data", root / "d.npz", "--prune", "0.97",
                      "--epochs", "0", "--max-drop", "0.1", "--out", out, "--report", root / "over.md")
    assert_one_line_error(result, "over --max-drop 0.1", "prune less")
    assert "Over the accuracy budget" in (root / "over.md").read_text()
    assert not out.exists() and not out.with_suffix(".tflite").exists()
