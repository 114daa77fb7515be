"""The command line on the host board: build, run, inspect, and every bad input
a user can cause answered by one line and a non-zero exit."""
import json
import os

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb

from tests.support.tflite_builder import ModelBuilder, random_bias, random_int8, random_weights
from tests.support.cli import assert_one_line_error as _assert_one_line_error
from tests.support.cli import tinycomp as _tinycomp
from tests.support.tflm import run_tflm


def _model(seed=0) -> ModelBuilder:
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.input((1, 12), 0.05, 3)
    wq, ws = random_weights(rng, (5, 12))
    bq, bs = random_bias(rng, 5, 0.05, ws)
    y = b.fully_connected(x, b.const_int8(wq, scales=ws), b.const_int32(bq, scales=bs), 0.2, -4)
    b.output(y)
    return b


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "fc.tflite"
    path.write_bytes(_model().build())
    return path


@pytest.fixture(scope="module")
def host_build(model_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-build") / "fc"
    result = _tinycomp("build", model_file, "--board", "host", "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def test_build_writes_sources_manifest_and_runner(host_build):
    info = json.loads((host_build / "tinycomp.json").read_text())
    assert info["board"] == "host" and info["macs"] == 60
    assert info["layers"][0]["op"] == "FULLY_CONNECTED"
    assert info["weights_bytes"] > 60 and "arena_bytes" in info
    for name in ("tinycomp_model.h", "tinycomp_model.c", "tinycomp_weights.c"):
        assert (host_build / "src" / name).exists()
    assert not [p for p in host_build.parent.iterdir() if p.name.startswith(".")]


def test_run_int8_and_float_inputs_match_tflm(host_build, model_file, tmp_path):
    rng = np.random.default_rng(1)
    x = random_int8(rng, (20, 12))
    np.save(tmp_path / "x.npy", x)
    result = _tinycomp("run", host_build, "--inputs", tmp_path / "x.npy", "--outputs", tmp_path / "y.npy")
    assert result.returncode == 0, result.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int8 and y.shape == (20, 5)
    assert np.array_equal(y, run_tflm(model_file.read_bytes(), x[:, None, :]).reshape(20, 5))
    # float samples are quantized with the input scale (0.05) and zero point (3)
    np.save(tmp_path / "xf.npy", ((x.astype(np.float32) - 3) * 0.05))
    result = _tinycomp("run", host_build, "--inputs", tmp_path / "xf.npy", "--outputs", tmp_path / "yf.npy")
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.load(tmp_path / "yf.npy"), y)


def test_inspect_lists_layers_and_plan(model_file):
    result = _tinycomp("inspect", model_file)
    assert result.returncode == 0, result.stderr
    assert "FULLY_CONNECTED" in result.stdout and "arena" in result.stdout and "60" in result.stdout


@pytest.mark.parametrize("cut", [0, 7, 100, -40])
def test_corrupt_or_truncated_tflite(model_file, tmp_path, cut):
    data = model_file.read_bytes()
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(data[:cut] if cut > 0 else (b"" if cut == 0 else data[:cut]))
    _assert_one_line_error(_tinycomp("build", bad, "--board", "host", "--out", tmp_path / "o"), "bad")
    assert not (tmp_path / "o").exists()


def test_garbage_tflite(tmp_path):
    bad = tmp_path / "junk.tflite"
    bad.write_bytes(b"\x10\x00\x00\x00TFL3" + os.urandom(200))
    _assert_one_line_error(_tinycomp("build", bad, "--board", "host", "--out", tmp_path / "o"), "junk")


def test_float_tflite_suggests_keras_with_calibration(tmp_path):
    # float edges (QUANTIZE first) compile; a float op inside does not
    b = ModelBuilder()
    x = b.tensor((1, 4), dtype=np.float32)
    b.inputs.append(x)
    f = b.tensor((1, 4), dtype=np.float32)
    b.op("ADD", [x, x], [f])
    y = b.tensor((1, 4), 0.1, 0)
    b.op("QUANTIZE", [f], [y])
    b.output(y)
    path = tmp_path / "float.tflite"
    path.write_bytes(b.build())
    _assert_one_line_error(_tinycomp("build", path, "--board", "host", "--out", tmp_path / "o"),
                           "float32", "--calibration")


def test_unsupported_op_is_named_with_its_layer(tmp_path):
    model = _model().model_object()
    model.operatorCodes[0].builtinCode = fb.BuiltinOperator.SQRT
    model.operatorCodes[0].deprecatedBuiltinCode = fb.BuiltinOperator.SQRT
    import flatbuffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "sqrt.tflite"
    path.write_bytes(bytes(builder.Output()))
    _assert_one_line_error(_tinycomp("build", path, "--board", "host", "--out", tmp_path / "o"),
                           "SQRT", "layer 0")


def test_ethos_u_custom_op_says_vela(tmp_path):
    model = _model().model_object()
    model.operatorCodes[0].builtinCode = fb.BuiltinOperator.CUSTOM
    model.operatorCodes[0].deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
    model.operatorCodes[0].customCode = "ethos-u"
    model.subgraphs[0].operators[0].builtinOptionsType = 0
    model.subgraphs[0].operators[0].builtinOptions = None
    import flatbuffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "vela.tflite"
    path.write_bytes(bytes(builder.Output()))
    _assert_one_line_error(_tinycomp("build", path, "--board", "host", "--out", tmp_path / "o"),
                           "Ethos-U", "Vela", "before Vela", "layer 0")


def test_wrong_input_shape_and_dtype(host_build, tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((3, 13), np.int8))
    _assert_one_line_error(_tinycomp("run", host_build, "--inputs", tmp_path / "wrong.npy",
                                     "--outputs", tmp_path / "y.npy"), "(3, 13)", "12")
    np.save(tmp_path / "wrongtype.npy", np.zeros((3, 12), np.int64))
    _assert_one_line_error(_tinycomp("run", host_build, "--inputs", tmp_path / "wrongtype.npy",
                                     "--outputs", tmp_path / "y.npy"), "int64")
    (tmp_path / "notnpy.npy").write_text("hello")
    _assert_one_line_error(_tinycomp("run", host_build, "--inputs", tmp_path / "notnpy.npy",
                                     "--outputs", tmp_path / "y.npy"), "notnpy.npy")
    assert not (tmp_path / "y.npy").exists()


def test_unwritable_output_folder(model_file, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a file as parent instead
            blocker = tmp_path / "file"
            blocker.write_text("x")
            target = blocker / "out"
        else:
            target = locked / "out"
        _assert_one_line_error(_tinycomp("build", model_file, "--board", "host", "--out", target),
                               "cannot write")
    finally:
        locked.chmod(0o700)


def test_out_folder_with_user_files_is_not_overwritten(model_file, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    _assert_one_line_error(_tinycomp("build", model_file, "--board", "host", "--out", out),
                           "not a tinycomp build")
    assert (out / "notes.txt").read_text() == "keep me"


def test_missing_model_and_unknown_board(model_file, tmp_path):
    _assert_one_line_error(_tinycomp("build", tmp_path / "nope.tflite", "--out", tmp_path / "o"),
                           "no such file")
    _assert_one_line_error(_tinycomp("build", model_file, "--board", "nosuch", "--out", tmp_path / "o"),
                           "unknown board")
    _assert_one_line_error(_tinycomp("run", tmp_path, "--inputs", "x.npy", "--outputs", "y.npy"),
                           "not a tinycomp build")


@pytest.mark.tf
def test_keras_model_needs_calibration_and_then_builds(tmp_path):
    from tests.support.models import digits_model
    d = digits_model()
    _assert_one_line_error(_tinycomp("build", d.keras_path, "--board", "host", "--out", tmp_path / "o"),
                           "--calibration")
    assert not (tmp_path / "o").exists()
    np.save(tmp_path / "cal.npy", d.x_calibration[:50])
    result = _tinycomp("build", d.keras_path, "--board", "host", "--out", tmp_path / "o",
                       "--calibration", tmp_path / "cal.npy")
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "o" / "tinycomp.json").read_text())
    assert [l["op"] for l in info["layers"]][-1] == "SOFTMAX"


def test_float_edges_model_runs_float_in_float_out(tmp_path):
    from tests.host.test_quantize_edges import float_edges_model, float_samples
    model, scale, zp = float_edges_model(11)
    path = tmp_path / "fe.tflite"
    path.write_bytes(model)
    out = tmp_path / "fe"
    result = _tinycomp("build", path, "--board", "host", "--out", out)
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "tinycomp.json").read_text())
    assert info["input"]["dtype"] == "float32" and info["input"]["scale"] is None
    header = (out / "src" / "tinycomp_model.h").read_text()
    assert "void tinycomp_invoke(const float *input, float *output);" in header
    x = float_samples(np.random.default_rng(2), scale, zp, 9, 24).reshape(9, 24)
    np.save(tmp_path / "x.npy", x)
    result = _tinycomp("run", out, "--inputs", tmp_path / "x.npy", "--outputs", tmp_path / "y.npy")
    assert result.returncode == 0, result.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32 and y.shape == (9, 10)
    np.testing.assert_array_equal(y.view(np.int32), run_tflm(model, x[:, None]).reshape(9, 10).view(np.int32))
    np.save(tmp_path / "xi.npy", x.astype(np.int8))  # int8 samples for a float input: refused
    _assert_one_line_error(_tinycomp("run", out, "--inputs", tmp_path / "xi.npy", "--outputs",
                                     tmp_path / "yi.npy"), "float32")
