"""`tinycomp compress` end to end, and one clear error per bad input, checked
through the real command line in a subprocess."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinycomp.cli_compress import compress

ROOT = Path(__file__).resolve().parents[2]


def _run(*args):
    return CliRunner().invoke(compress, [str(a) for a in args])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from tinycomp import datasets

    s = datasets.load_digits(0)
    path = tmp_path_factory.mktemp("d") / "d.npz"
    np.savez(path, x_train=s.x_train[:400], y_train=s.y_train[:400], x_test=s.x_test[:150], y_test=s.y_test[:150])
    return path


def _bad(exc, text):
    assert exc is not None and text in str(exc), exc


def _cli(tmp_path, *args):
    """`python -m tinycomp.cli compress ARGS --out tmp/o.keras --report tmp/r.md` in a
    fresh process, as a user runs it: what reaches the terminal is what is checked."""
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "tinycomp.cli", "compress", *map(str, args),
                        "--out", out / "o.keras", "--report", out / "r.md"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    return r, out


def _one_clear_line(r, out, text):
    """Non-zero exit, exactly one line on stderr naming the problem, no traceback,
    and nothing written: not the model, its .tflite, the report or a temporary."""
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


@pytest.mark.parametrize("sparsity", ["1.5", "0", "1", "-0.2"])
def test_sparsity_outside_open_interval(tmp_path, data, sparsity):
    r, out = _cli(tmp_path, "m.keras", "--data", data, "--prune", sparsity)
    _one_clear_line(r, out, "sparsity must be strictly between 0 and 1")


@pytest.mark.parametrize("args, text", [
    (("--rounding", "stochastic"), "--rounding chooses QAT's weight rounding: add --qat"),
    (("--distill", "--temperature", "0"), "--temperature must be > 0"),
    (("--int16", "-1"), "--int16 is how many activation tensors to keep in int16, >= 0; got -1"),
    (("--int4", "conv2d", "--weight-bits", "4"), "--weight-bits 4 makes every layer INT4; drop --int4"),
    (("--int4", " , "), "--int4 takes comma-separated layer names, got none"),
    (("--int4", "conv2d", "--qat", "--rounding", "both"), "--rounding stochastic is for 8-bit weights"),
])
def test_training_options_checked_before_loading(tmp_path, data, args, text):
    r, out = _cli(tmp_path, "m.keras", "--data", data, *args)
    _one_clear_line(r, out, text)


def test_data_without_needed_arrays(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((4, 8, 8, 1), np.float32))
    r, out = _cli(tmp_path, "m.keras", "--data", path)
    _one_clear_line(r, out, "lacks y_train")
    np.savez(path, x_train=np.zeros((4, 8, 8, 1), np.float32), y_train=np.zeros(4, np.int64),
             x_test=np.zeros((2, 8, 8, 1), np.float32))
    _one_clear_line(*_cli(tmp_path, "m.keras", "--data", path), "only one of x_test / y_test")


@pytest.mark.tf
@pytest.mark.parametrize("labels, text", [
    ({"y_train": np.array([0, 1, 2, 12])}, "holds labels 0..12 but the model has 10 outputs"),
    ({"y_train": np.eye(4)[[0, 1, 2, 3]]}, "one-hot (N, 10), got shape (4, 4)"),
    ({"y_train": np.zeros(4, np.int64), "x_test": np.zeros((2, 8, 8, 1), np.float32),
      "y_test": np.array([3, 10])}, "y_test holds labels 3..10 but the model has 10 outputs"),
], ids=["out-of-range", "one-hot-width", "test-labels"])
def test_labels_not_matching_the_output(tmp_path, labels, text):
    from tests.support.models import digits_model

    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((4, 8, 8, 1), np.float32), **labels)
    r, out = _cli(tmp_path, digits_model().keras_path, "--data", path, "--prune", "0.5")
    _one_clear_line(r, out, text)


@pytest.mark.tf
def test_model_without_prunable_layer(tmp_path):
    from tinycomp.frontends.keras import quiet_tensorflow

    with quiet_tensorflow():
        import keras

        m = keras.Sequential([keras.Input((4,)), keras.layers.Softmax()])
        m.save(tmp_path / "nolayers.keras")
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((4, 4), np.float32), y_train=np.array([0, 1, 2, 3]))
    r, out = _cli(tmp_path, tmp_path / "nolayers.keras", "--data", path, "--prune", "0.5", "--sensitivity")
    _one_clear_line(r, out, "model has no prunable layer")


@pytest.mark.tf
def test_unreadable_model(tmp_path, data):
    bad = tmp_path / "m.keras"
    bad.write_bytes(b"not a zip")
    _bad(_run(bad, "--data", data, "--out", tmp_path / "o.keras").exception, "not a valid .keras file")


@pytest.mark.tf
def test_labels_and_prunable_layers(tmp_path):
    from tests.support.models import digits_model
    from tinycomp.frontends.keras import quiet_tensorflow

    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((4, 8, 8, 1), np.float32), y_train=np.array([0, 1, 2, 12]))
    r = _run(digits_model().keras_path, "--data", path, "--out", tmp_path / "o.keras")
    _bad(r.exception, "model has 10 outputs")
    with quiet_tensorflow():
        import keras

        m = keras.Sequential([keras.Input((4,)), keras.layers.Softmax()])
        m.save(tmp_path / "nolayers.keras")
    np.savez(path, x_train=np.zeros((4, 4), np.float32), y_train=np.array([0, 1, 2, 3]))
    r = _run(tmp_path / "nolayers.keras", "--data", path, "--out", tmp_path / "o.keras")
    _bad(r.exception, "no prunable layer")


@pytest.mark.tf
def test_compress_end_to_end(tmp_path, data):
    from tests.support.models import digits_model

    out, report = tmp_path / "c.keras", tmp_path / "r.md"
    r = _run(digits_model().keras_path, "--data", data, "--prune", "0.5", "--channels", "0.25",
             "--qat", "--rounding", "both", "--epochs", "1", "--max-drop", "100", "--sensitivity", "--distill",
             "--out", out, "--report", report)
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert out.exists() and out.with_suffix(".tflite").exists()
    text = report.read_text()
    for needed in ("magnitude pruning S=0.5", "channel pruning", "QAT", "SNR", "entropy", "KL divergence",
                   "## Activations", "| conv2d | CONV_2D |", "| dense_10_softmax | SOFTMAX |",
                   "## Sensitivity", "pruned S=0.5", "| all layers at once |", "Most sensitive:",
                   "## Predicted against measured", "| accuracy drop, float to INT8 |",
                   "distilled from the input model", "T = 4",
                   "QAT, nearest rounding", "QAT, stochastic rounding", "; kept",
                   "| layer | Fisher trace | INT8: predicted Δloss |"):
        assert needed in text, needed
    # The sensitivity rows are the input model's layers, one each.
    sens, fisher = text.split("## Sensitivity")[1].split("## Size")[0].split("Second-order prediction")
    assert sum(sens.count(f"| {n} |") for n in ("conv2d", "depthwise_conv2d", "conv2d_1", "dense_10")) == 4
    assert sum(fisher.count(f"| {n} |") for n in ("conv2d", "depthwise_conv2d", "conv2d_1", "dense_10")) == 4


@pytest.mark.tf
def test_default_run_skips_sensitivity(tmp_path, data):
    from tests.support.models import digits_model

    report = tmp_path / "r.md"
    r = _run(digits_model().keras_path, "--data", data, "--prune", "0.5", "--epochs", "0",
             "--out", tmp_path / "c.keras", "--report", report)
    assert r.exit_code == 0, r.output + repr(r.exception)
    text = report.read_text()
    assert "## Activations" in text and "Not computed: run `tinycomp compress` with `--sensitivity`" in text


@pytest.mark.tf
def test_compress_int4_weights(tmp_path, data):
    """--qat --weight-bits 4: kernels trained on 16 levels, written as packed
    INT4 in the .tflite (every value on the grid, none rounded), and that
    .tflite builds and equals TFLite Micro."""
    from tests.support.harness import assert_bit_exact
    from tests.support.models import digits_model
    from tinycomp.frontends.tflite import parse_tflite

    out, report = tmp_path / "c.keras", tmp_path / "r.md"
    r = _run(digits_model().keras_path, "--data", data, "--qat", "--weight-bits", "4", "--epochs", "1",
             "--max-drop", "100", "--out", out, "--report", report)
    assert r.exit_code == 0, r.output + repr(r.exception)
    buf = out.with_suffix(".tflite").read_bytes()
    graph = parse_tflite(buf)
    weighted = [n for n in graph.nodes if n.op.value in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert weighted and all(graph.tensor(n.inputs[1]).dtype == "int4" for n in weighted)
    text = report.read_text()
    assert f"INT4 weights (TFLite's packed INT4, int8 activations) in {len(weighted)} layers" in text
    assert "rounded" not in text and "INT8 activations, INT4 weights (converted) test accuracy" in text
    x = graph.tensor(graph.inputs[0])
    assert_bit_exact(buf, np.random.default_rng(0).integers(-128, 128, (20, *x.shape), dtype=np.int8))


@pytest.mark.tf
@pytest.mark.parametrize("args, chosen, exact", [
    (("--qat", "--int4", "conv2d_1,dense_10", "--epochs", "1"), ("conv2d_1", "dense_10"), True),
    (("--int4", "depthwise_conv2d", "--epochs", "0"), ("depthwise_conv2d",), False),
], ids=["qat", "rounded"])
def test_compress_int4_in_chosen_layers(tmp_path, data, args, chosen, exact):
    """--int4 LAYERS: INT4 filters in exactly those layers (with --qat trained
    on 16 levels, so every value is exact; without, rounded from int8), the
    others int8; the report names them; the .tflite builds and equals TFLite Micro."""
    from tests.support.harness import assert_bit_exact
    from tests.support.models import digits_model
    from tinycomp.frontends.tflite import parse_tflite

    out, report = tmp_path / "c.keras", tmp_path / "r.md"
    r = _run(digits_model().keras_path, "--data", data, *args, "--max-drop", "100", "--out", out, "--report", report)
    assert r.exit_code == 0, r.output + repr(r.exception)
    buf = out.with_suffix(".tflite").read_bytes()
    graph = parse_tflite(buf)
    weighted = [n for n in graph.nodes if n.op.value in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    layers = ("conv2d", "depthwise_conv2d", "conv2d_1", "dense_10")  # the model's, in order
    assert [graph.tensor(n.inputs[1]).dtype for n in weighted] == \
        ["int4" if name in chosen else "int8" for name in layers]
    text = report.read_text()
    rounded = "" if exact else " (rounded from int8)"
    assert (f"INT4 weights (TFLite's packed INT4, int8 activations) in {len(chosen)} layers: "
            + ", ".join(f"`{n}`{rounded}" for n in chosen)) in text
    x = graph.tensor(graph.inputs[0])
    assert_bit_exact(buf, np.random.default_rng(2).integers(-128, 128, (20, *x.shape), dtype=np.int8))


@pytest.mark.tf
def test_int4_unknown_layer(tmp_path, data):
    from tests.support.models import digits_model

    r = _run(digits_model().keras_path, "--data", data, "--int4", "conv2d,nope", "--out", tmp_path / "o.keras")
    _bad(r.exception, "--int4: no conv/dense layer named 'nope'; the model's are conv2d, depthwise_conv2d, "
                      "conv2d_1, dense_10")
    assert not (tmp_path / "o.keras").exists()


@pytest.mark.tf
def test_compress_int4_weights_without_qat(tmp_path, data):
    """--weight-bits 4 without QAT: the converter's int8 filters rounded to
    16 levels (compress/int4.py), said so in the report; TFLM-exact build."""
    from tests.support.harness import assert_bit_exact
    from tests.support.models import digits_model
    from tinycomp.frontends.tflite import parse_tflite

    out, report = tmp_path / "c.keras", tmp_path / "r.md"
    r = _run(digits_model().keras_path, "--data", data, "--weight-bits", "4", "--epochs", "0",
             "--max-drop", "100", "--out", out, "--report", report)
    assert r.exit_code == 0, r.output + repr(r.exception)
    buf = out.with_suffix(".tflite").read_bytes()
    graph = parse_tflite(buf)
    assert sum(graph.tensor(n.inputs[1]).dtype == "int4" for n in graph.nodes if len(n.inputs) > 1) == 4
    assert "(rounded from int8)" in report.read_text()
    x = graph.tensor(graph.inputs[0])
    assert_bit_exact(buf, np.random.default_rng(1).integers(-128, 128, (20, *x.shape), dtype=np.int8))


@pytest.mark.tf
def test_int16_keeps_the_measured_best_tensor_and_builds_bit_exact(tmp_path, data):
    """`--int16 2` alone: the digits CNN converted to INT8, the activation
    tensors whose int16 brings the outputs closest to the float model's kept
    int16 (a mixed 8/16-bit model TFLite Micro runs), reported, bit-exact."""
    from tests.support.harness import assert_bit_exact
    from tests.support.models import digits_model
    from tinycomp.compress.analysis import int8_inputs
    from tinycomp.compress.int16 import int16_tensors
    from tinycomp.frontends.tflite import parse_tflite

    r, out = _cli(tmp_path, digits_model().keras_path, "--data", data, "--int16", "2")
    assert r.returncode == 0, r.stderr
    tflite = (out / "o.tflite").read_bytes()
    kept = int16_tensors(tflite)
    report = (out / "r.md").read_text()
    assert kept and "## int16 activations" in report and "int16 where kept" in report
    rows = [line for line in report.splitlines() if line.startswith("| `") and line.endswith("| yes |")]
    assert rows and all(any(f"`{name.split(';')[0]}`" in line for name in kept) for line in rows)  # kept rows name int16 tensors
    assert_bit_exact(tflite, int8_inputs(parse_tflite(tflite), np.load(data)["x_test"][:30]))
