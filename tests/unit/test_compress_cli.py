"""`tinycomp compress` end to end, and one clear error per bad input."""
import numpy as np
import pytest
from click.testing import CliRunner

from tinycomp.cli_compress import compress


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


def test_bad_sparsity_fails_before_tensorflow(tmp_path, data):
    r = _run("m.keras", "--data", data, "--prune", "1.5", "--out", tmp_path / "o.keras")
    _bad(r.exception, "strictly between 0 and 1")


def test_missing_arrays(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((4, 8, 8, 1), np.float32))
    r = _run("m.keras", "--data", path, "--out", tmp_path / "o.keras")
    _bad(r.exception, "lacks y_train")


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
             "--qat", "--epochs", "1", "--out", out, "--report", report)
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert out.exists() and out.with_suffix(".tflite").exists()
    text = report.read_text()
    for needed in ("magnitude pruning S=0.5", "channel pruning", "QAT", "SNR", "entropy", "KL divergence"):
        assert needed in text
