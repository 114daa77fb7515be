"""A model file is untrusted input: names cannot put code into the generated C,
and a model the IR cannot trust is refused in one line before any C exists."""
from __future__ import annotations

import subprocess

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb

from tests.support.harness import assert_bit_exact, compile_for_host
from tests.support.tflite_builder import ModelBuilder, random_bias, random_weights
from tinycomp.codegen.generate import generate
from tinycomp.codegen.render import c_comment, c_ident
from tinycomp.errors import ModelError
from tinycomp.frontends.tflite import parse_tflite

INJECTED = "tinycomp_injected_symbol"
# Each ends a /* */ comment once the preprocessor splices lines or replaces
# trigraphs, then declares a symbol: if it reaches C raw, the symbol is linked.
PAYLOADS = [
    f"a*\\\n/ int {INJECTED} = 1; /*",
    f"a*\\\r\n/ int {INJECTED} = 1; /*",
    f"a*??/\n/ int {INJECTED} = 1; /*",
    f"x */ int {INJECTED} = 1; /* y",
    f"\u202e bidi \u2066 */ int {INJECTED} = 1; /*",
    f"q\"; int {INJECTED} = 1; char *s = \"",
]


def small_model(names=None, seed=0) -> ModelBuilder:
    """CONV_2D -> RESHAPE -> FULLY_CONNECTED with a bias: the ops whose
    names reach comments, tables and calls in the generated C."""
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.input((1, 6, 6, 2), 0.05, 3)
    w, ws = random_weights(rng, (3, 3, 3, 2), axis=0)
    bq, bs = random_bias(rng, 3, 0.05, ws)
    y = b.conv2d(x, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), 0.1, -2, activation="RELU")
    y = b.reshape(y, (1, 108))
    w, ws = random_weights(rng, (5, 108), axis=0)
    bq, bs = random_bias(rng, 5, 0.1, ws)
    y = b.fully_connected(y, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), 0.2, 4)
    b.output(y)
    if names is not None:
        for t in b._tensor_ts:
            t.name = names
    return b


def pack(model) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def mutated(edit) -> bytes:
    """The small model's flatbuffer after edit(model, subgraph) changed it."""
    model = small_model().model_object()
    edit(model, model.subgraphs[0])
    return pack(model)


def inputs(n=6, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, (n, 1, 6, 6, 2), dtype=np.int8)


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_names_cannot_put_code_into_the_build(payload):
    tflite = small_model(names=payload).build()
    assert_bit_exact(tflite, inputs())  # builds, runs, equals TFLM
    exe = compile_for_host(tflite).exe
    symbols = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout
    assert INJECTED not in symbols


def test_non_utf8_names_are_read_and_escaped():
    model = small_model().model_object()
    for t in model.subgraphs[0].tensors:
        t.name = b"\xff\xfe*/\x00"
    files = generate(parse_tflite(pack(model))).files
    assert all(text.isascii() for text in files.values())


@pytest.mark.parametrize("text", PAYLOADS + ["", "9lives", "x" * 500, "??=??/??'", "\\", "*/"])
def test_escaped_names_keep_to_a_fixed_alphabet(text):
    comment, ident = c_comment(text), c_ident(text)
    assert set(comment) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_ .,:;()[]+=#@<>-")
    assert "*" not in comment and "/" not in comment and "?" not in comment and len(comment) <= 64
    assert ident and not ident[0].isdigit() and ident.replace("_", "a").isalnum() and ident.isascii()


def _fc(sg):
    return sg.operators[-1]


def _retype_bias(m, sg, tensor_type, dtype):
    bias = sg.tensors[_fc(sg).inputs[2]]
    bias.type = tensor_type
    m.buffers[bias.buffer].data = np.ones(5, dtype).view(np.uint8)


def _set_scale(index, value):
    def edit(m, sg):
        sg.tensors[index].quantization.scale = [value]
    return edit


# (id, edit, a fragment of the one-line refusal)
REFUSED = [
    ("fc-output-hides-rows", lambda m, sg: setattr(sg.tensors[_fc(sg).outputs[0]], "shape", [129, 5]),
     "does not follow"),
    ("output-is-input", lambda m, sg: setattr(sg, "outputs", list(sg.inputs)), "passed through"),
    ("output-is-constant", lambda m, sg: setattr(sg, "outputs", [_fc(sg).inputs[1]]), "constant"),
    ("zero-point-128", lambda m, sg: setattr(sg.tensors[sg.inputs[0]].quantization, "zeroPoint", [128]),
     "zero point 128"),
    ("reads-own-output", lambda m, sg: setattr(_fc(sg), "inputs", [_fc(sg).outputs[0], *_fc(sg).inputs[1:]]),
     "reads its own output"),
    ("cycle", lambda m, sg: setattr(sg.operators[0], "inputs", [_fc(sg).outputs[0], *sg.operators[0].inputs[1:]]),
     "out of order, or a cycle"),
    ("zero-size-dimension", lambda m, sg: setattr(sg.tensors[sg.inputs[0]], "shape", [1, 0, 6, 2]),
     "at least 1"),
    ("shuffled-fc-weights", lambda m, sg: setattr(_fc(sg).builtinOptions, "weightsFormat", 1), "shuffled"),
    ("bias-type-unknown", lambda m, sg: _retype_bias(m, sg, fb.TensorType.INT16, np.int16), "bias"),
    ("bias-float", lambda m, sg: _retype_bias(m, sg, fb.TensorType.FLOAT32, np.float32), "bias"),
    ("empty-zero-points", lambda m, sg: setattr(sg.tensors[sg.inputs[0]].quantization, "zeroPoint", []),
     "zero points"),
    ("scale-huge", _set_scale(0, 3e38), "too large"),
    ("scale-nan", _set_scale(0, float("nan")), "scale"),
    ("scale-inf", _set_scale(0, float("inf")), "scale"),
    ("scale-zero", _set_scale(0, 0.0), "scale"),
    ("scale-negative", _set_scale(0, -0.5), "scale"),
    ("scale-denormal", _set_scale(0, 1e-45), "scale"),
    ("input-index-out-of-range", lambda m, sg: setattr(_fc(sg), "inputs", [999, *_fc(sg).inputs[1:]]),
     "does not exist"),
    ("input-index-negative", lambda m, sg: setattr(_fc(sg), "inputs", [-5, *_fc(sg).inputs[1:]]),
     "does not exist"),
    ("opcode-deleted", lambda m, sg: setattr(_fc(sg), "opcodeIndex", 7), "corrupt"),
    ("missing-quantization", lambda m, sg: setattr(sg.tensors[sg.operators[0].outputs[0]], "quantization", None),
     "no quantization"),
    ("per-channel-count", lambda m, sg: setattr(sg.tensors[sg.operators[0].inputs[1]].quantization, "scale",
                                                [0.01, 0.02]), "zero points"),
    ("dilation-huge", lambda m, sg: setattr(sg.operators[0].builtinOptions, "dilationHFactor", 2**31 - 1),
     "dilation_h_factor"),
    ("batch-huge", lambda m, sg: setattr(sg.tensors[sg.inputs[0]], "shape", [1 << 26, 6, 6, 2]), "elements"),
    ("unknown-type", lambda m, sg: setattr(sg.tensors[sg.operators[0].outputs[0]], "type", 99), "unknown"),
    ("written-twice", lambda m, sg: setattr(_fc(sg), "outputs", [sg.operators[0].outputs[0]]), "written by both"),
    ("no-operators", lambda m, sg: setattr(sg, "operators", []), "no layers"),
]


@pytest.mark.parametrize("edit,fragment", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_invalid_models_are_refused_in_one_line(edit, fragment):
    with pytest.raises(ModelError) as err:
        generate(parse_tflite(mutated(edit)))
    message = str(err.value)
    assert fragment in message and "\n" not in message


def test_bias_at_int32_limits_is_refused():
    def edit(m, sg):
        bias = sg.tensors[_fc(sg).inputs[2]]
        m.buffers[bias.buffer].data = np.full(5, 2**31 - 1, np.int32).view(np.uint8)
    with pytest.raises(ModelError, match="exceed int32"):
        generate(parse_tflite(mutated(edit)))


def test_pad_zero_point_outside_int8_is_refused():
    b = ModelBuilder()
    x = b.input((1, 4, 4, 1), 0.1, 0)
    y = b.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    b.output(y)
    model = b.model_object()
    model.subgraphs[0].tensors[y].quantization.zeroPoint = [-1000]
    with pytest.raises(ModelError, match="zero point -1000"):
        parse_tflite(pack(model))


def test_layers_out_of_order_are_refused():
    # TFLite Micro runs layers in file order: reversed, the first one would read garbage
    model = small_model().model_object()
    model.subgraphs[0].operators.reverse()
    with pytest.raises(ModelError, match="before layer 1 .*computes it"):
        parse_tflite(pack(model))
