"""Models with several inputs and outputs on the host, bit-exact with TFLM:
one buffer per input and per output in the C API, in the model's order;
`run` and `validate` with .npz files (arr_0, arr_1, ...)."""
import json

import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.errors import UnsupportedOpError
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact
from tests.support.cli import tinycomp as _tinycomp
from tests.support.tflite_builder import (ModelBuilder, random_activation_quant, random_bias, random_int8,
                                          random_weights)
from tests.support.tflm import run_tflm


def two_in_two_out_model(seed: int) -> bytes:
    """int8 image (1, 6, 5, 3) and float32 vector (1, 12) in; int8 (1, 4) and
    float32 (1, 3, 3, 3) out. Output 0 is also read by a later layer, output 1
    depends on both inputs, and the model lists its inputs and outputs in an
    order unlike the order the layers make them."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    vec = b.tensor((1, 12), dtype=np.float32, name="vector")
    img = b.tensor((1, 6, 5, 3), *random_activation_quant(rng), name="image")
    b.inputs += [img, vec]
    q = b.tensor((1, 12), *random_activation_quant(rng))
    b.op("QUANTIZE", [vec], [q])
    wq, ws = random_weights(rng, (3, 12))
    bq, bs = random_bias(rng, 3, b.info(q).scale, ws)
    h = b.fully_connected(q, b.const_int8(wq, scales=ws), b.const_int32(bq, scales=bs),
                          *random_activation_quant(rng, scale_range=(0.02, 0.5)))   # (1, 3)
    wq, ws = random_weights(rng, (4, 3))
    bq, bs = random_bias(rng, 4, b.info(h).scale, ws)
    out0 = b.fully_connected(h, b.const_int8(wq, scales=ws), b.const_int32(bq, scales=bs),
                             *random_activation_quant(rng, scale_range=(0.02, 0.5)))  # (1, 4)
    p = b.max_pool2d(img, 2, 2, "VALID")                                                 # (1, 3, 2, 3)
    p = b.pad(p, [[0, 0], [0, 0], [0, 1], [0, 0]])                                        # (1, 3, 3, 3)
    s = b.add(p, b.reshape(h, (1, 1, 1, 3)), *random_activation_quant(rng, scale_range=(0.02, 0.5)))
    m = b.mean(b.reshape(out0, (1, 1, 1, 4)), [3], scale=b.info(s).scale, zero_point=b.info(s).zero_point)
    s = b.add(s, m, *random_activation_quant(rng, scale_range=(0.02, 0.5)), activation="RELU")
    out1 = b.tensor((1, 3, 3, 3), dtype=np.float32, name="mixed")
    b.op("DEQUANTIZE", [s], [out1])
    b.output(out1, out0)
    return b.build()


def two_in_two_out_samples(seed: int, n: int = 24) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    img = random_int8(rng, (n, 1, 6, 5, 3))
    vec = (rng.normal(size=(n, 1, 12)) * 2).astype(np.float32)
    img[0].fill(-128)
    img[1].fill(127)
    return [img, vec]


@pytest.mark.parametrize("seed", range(4))
def test_two_inputs_two_outputs(seed):
    outs = assert_bit_exact(two_in_two_out_model(8000 + seed), two_in_two_out_samples(seed))
    assert [o.dtype for o in outs] == [np.float32, np.int8]


def test_c_api_takes_one_buffer_per_input_and_output():
    files = generate(parse_tflite(two_in_two_out_model(8000))).files
    header = files["tinycomp_model.h"]
    assert ("void tinycomp_invoke(const int8_t *input0, const float *input1, "
            "float *output0, int8_t *output1);") in header
    assert "int8_t *tinycomp_input0_buffer(void);" in header
    assert "float *tinycomp_input1_buffer(void);" in header
    for macro in ("TINYCOMP_INPUT1_SIZE 12", "TINYCOMP_INPUT1_BYTES 48", "TINYCOMP_OUTPUT0_BYTES 108",
                  "TINYCOMP_OUTPUT1_SIZE 4", "TINYCOMP_NUM_INPUTS 2", "TINYCOMP_INPUT_BYTES_TOTAL 138"):
        assert f"#define {macro}" in header
    assert "#define TINYCOMP_INPUT_SIZE" not in header  # only one-input models have plain names


def test_many_inputs_and_outputs():
    # five int8 inputs and four outputs, some of them computed from several inputs
    rng = np.random.default_rng(81)
    b = ModelBuilder()
    xs = [b.input((1, 2, 3, 4), *random_activation_quant(rng)) for _ in range(5)]
    outs = [b.add(xs[0], xs[1], *random_activation_quant(rng)), b.max_pool2d(xs[2], 2, 1, "SAME"),
            b.mul(xs[3], xs[4], *random_activation_quant(rng))]
    outs.append(b.add(outs[0], outs[2], *random_activation_quant(rng)))
    b.output(*outs)
    samples = [random_int8(rng, (16, 1, 2, 3, 4)) for _ in xs]
    got = assert_bit_exact(b.build(), samples)
    assert len(got) == 4


def test_output_that_is_an_input_is_refused():
    b = ModelBuilder()
    x = b.input((1, 4), 0.1, 0)
    y = b.relu(x)
    b.output(y, x)
    with pytest.raises(UnsupportedOpError, match="output 1.*passed through"):
        generate(parse_tflite(b.build()))


def _one_line(result, *fragments):
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_cli_build_run_validate_with_npz(tmp_path):
    model = two_in_two_out_model(8100)
    path = tmp_path / "two.tflite"
    path.write_bytes(model)
    out = tmp_path / "b"
    result = _tinycomp("build", path, "--board", "host", "--out", out)
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "tinycomp.json").read_text())
    assert [t["dtype"] for t in info["inputs"]] == ["int8", "float32"]
    assert [t["name"] for t in info["outputs"]] == ["mixed", info["outputs"][1]["name"]]
    assert "input" not in info and "output" not in info
    img, vec = two_in_two_out_samples(1, 10)
    np.savez(tmp_path / "x.npz", img[:, 0], vec[:, 0])
    result = _tinycomp("run", out, "--inputs", tmp_path / "x.npz", "--outputs", tmp_path / "y.npz")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "y.npz") as y:
        got = [y["arr_0"], y["arr_1"]]
    ref = run_tflm(model, [img, vec])
    assert got[0].shape == (10, 3, 3, 3) and got[0].dtype == np.float32 and got[1].shape == (10, 4)
    np.testing.assert_array_equal(got[0].view(np.int32), ref[0].reshape(10, 3, 3, 3).view(np.int32))
    np.testing.assert_array_equal(got[1], ref[1].reshape(10, 4))
    result = _tinycomp("validate", path, "--board", "host", "--data", tmp_path / "x.npz",
                       "--out", tmp_path / "v")
    assert result.returncode == 0, result.stderr
    assert "100.0% of samples" in result.stdout
    # bad inputs: one line each, nothing written
    _one_line(_tinycomp("run", out, "--inputs", tmp_path / "x.npz", "--outputs", tmp_path / "y.npy"),
              "2 outputs", ".npz")
    np.save(tmp_path / "one.npy", img[:, 0])
    _one_line(_tinycomp("run", out, "--inputs", tmp_path / "one.npy", "--outputs", tmp_path / "z.npz"),
              "1 input array(s)", "2 inputs")
    np.savez(tmp_path / "named.npz", image=img[:, 0], vector=vec[:, 0])
    _one_line(_tinycomp("run", out, "--inputs", tmp_path / "named.npz", "--outputs", tmp_path / "z.npz"),
              "image", "arr_0")
    np.savez(tmp_path / "short.npz", img[:, 0], vec[:5, 0])
    _one_line(_tinycomp("run", out, "--inputs", tmp_path / "short.npz", "--outputs", tmp_path / "z.npz"),
              "different numbers of samples")
    np.savez(tmp_path / "swapped.npz", vec[:, 0], img[:, 0])
    _one_line(_tinycomp("run", out, "--inputs", tmp_path / "swapped.npz", "--outputs", tmp_path / "z.npz"),
              "input 0")
    assert not (tmp_path / "z.npz").exists()
