"""Models with resource variables (VAR_HANDLE, READ_VARIABLE,
ASSIGN_VARIABLE, CALL_ONCE) for the variable tests.

* converted by the TFLite converter from a tf.Module with tf.Variable state
  (full-integer, variables quantized too), in a subprocess so that the test
  process never imports TensorFlow, cached under .cache/models/ by a hash of
  this file: `streaming_model("int8")`, `streaming_model("int16")`;
* built by hand with tests/support/tflite_builder.py for the edge cases:
  `edge_case_model(dtype)`, one multi-output model with many variables.

Run as `python -m tests.support.variable_models KIND OUT.tflite` to convert.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tests.support.models import converted_in_subprocess

FRAME = (1, 1, 10, 1)  # one frame of 10 features
RING = 8  # frames the streaming model keeps
CLASSES = 4


def _convert(kind: str) -> bytes:
    """The streaming model, converted (imports TensorFlow: runs in the subprocess).

    State: a ring of the last RING frames (zeros at start) and the previous
    inference's class scores (0.25 at start, a CALL_ONCE constant that is not
    the zero point). Per inference: shift the new frame into the ring, assign
    it back, CONV_2D 3x3 (ReLU) over the ring, MEAN over time, FC to the
    classes, and add the previous scores, then assign the new ones."""
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class Streaming(tf.Module):
        def __init__(self):
            super().__init__()
            self.ring = tf.Variable(np.zeros((1, RING, FRAME[2], 1), np.float32), trainable=False)
            self.scores = tf.Variable(np.full((1, CLASSES), 0.25, np.float32), trainable=False)
            self.filters = tf.constant(rng.normal(0, 0.4, (3, 3, 1, 6)).astype(np.float32))
            self.bias = tf.constant(rng.normal(0, 0.1, (6,)).astype(np.float32))
            self.dense = tf.constant(rng.normal(0, 0.3, (6 * FRAME[2], CLASSES)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec(FRAME, tf.float32)])
        def __call__(self, frame):
            ring = tf.concat([self.ring[:, 1:], frame], axis=1)
            self.ring.assign(ring)
            y = tf.nn.relu(tf.nn.conv2d(ring, self.filters, 1, "SAME") + self.bias)
            y = tf.reduce_mean(y, axis=1)
            y = tf.matmul(tf.reshape(y, (1, -1)), self.dense)
            out = y + self.scores
            self.scores.assign(y)
            return out

    module = Streaming()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.__call__.get_concrete_function()], module)
    converter.experimental_enable_resource_variables = True
    converter._experimental_variable_quantization = True  # int8 variables, not float ones
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    calib = np.random.default_rng(1).normal(0, 1, (64, *FRAME)).astype(np.float32)
    converter.representative_dataset = lambda: ([s] for s in calib)
    if kind == "int16":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int16
    elif kind == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    # "float-edges": the converter's default, float32 in and out around the int8 graph
    return bytes(converter.convert())


def streaming_model(kind: str = "int8") -> bytes:
    """The converted streaming model ("int8"; "int16": the 16x8 scheme;
    "float-edges": the converter's defaults, float32 in and out)."""
    return converted_in_subprocess("tests.support.variable_models", kind, f"streaming-{kind}",
                                   f"the {kind} streaming model")


def frames(model: bytes, n: int, seed: int) -> np.ndarray:
    """n input frames of the model's type, the first two at its extremes
    (float32 frames: normal, the first two far outside the calibrated range)."""
    from tinycomp.frontends.tflite import parse_tflite
    graph = parse_tflite(model)
    t = graph.tensor(graph.inputs[0])
    if t.dtype == "float32":
        x = np.random.default_rng(seed).normal(0, 1, (n, *t.shape)).astype(np.float32)
        x[0].fill(-40.0)
        x[1].fill(40.0)
        return x
    info = np.iinfo(t.dtype)
    x = np.random.default_rng(seed).integers(info.min, info.max + 1, (n, *t.shape)).astype(t.dtype)
    x[0].fill(info.min)
    x[1].fill(info.max)
    return x


def edge_case_model(dtype=np.int8, seed: int = 0, containers: bool = True) -> bytes:
    """One model, many variables, one output per value worth comparing
    (each READ_VARIABLE's, so what a READ saw is compared, not only what
    later layers made of it); input x (1, 6):

    - init: CALL_ONCE gives it random values; read, then assigned x;
    - ring: no initial value (TFLM's zero-point fill); a (1, 3, 6) ring the
      frame shifts into (STRIDED_SLICE, CONCATENATION), assigned back;
    - early: assigned x before it is read in the same inference;
    - twice: read, assigned x, read again (the first READ keeps the old value);
    - shared: assigned through one VAR_HANDLE, read through a second one
      of the same shared_name (one variable);
    - c1/c2 (containers): the same shared_name in two containers (two variables);
    - constant: read, then assigned a constant each inference;
    - fixed: CALL_ONCE's value only, never assigned in the main subgraph;
    - odd (int16): zero point 3, not initialised: TFLM's byte fill 0x0303.
    """
    from .tflite_builder import ModelBuilder

    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    scale, zp = (0.05, -3) if dtype == np.int8 else (0.002, 0)
    b = ModelBuilder("resource variable edge cases")
    init = b.subgraph()
    x = b.input((1, 6), scale, zp, dtype=dtype)
    outs = []

    def start(name, shape=(1, 6), container=""):
        h = init.var_handle(name, container)
        init.assign_variable(h, init.const(rng.integers(info.min, info.max + 1, shape), dtype,
                                           scales=scale, zero_points=zp))

    def read(h, shape=(1, 6), q=(scale, zp)):
        r = b.read_variable(h, shape, q[0], q[1], dtype)
        outs.append(r)
        return r

    for name in ("init", "fixed"):
        start(name)
    if containers:
        start("dup", container="c1")
    b.call_once(1)

    h = b.var_handle("init")
    read(h)
    b.assign_variable(h, x)

    h = b.var_handle("ring")
    ring = read(h, (1, 3, 6))
    old = b.tensor((1, 2, 6), scale, zp, dtype)
    b.op("STRIDED_SLICE", [ring, b.const_int32([0, 1, 0]), b.const_int32([1, 3, 6]),
                           b.const_int32([1, 1, 1])], [old])
    frame = b.reshape(x, (1, 1, 6))
    new = b.concatenation([old, frame], axis=1)
    b.assign_variable(h, new)

    h = b.var_handle("early")
    b.assign_variable(h, x)
    read(h)

    h = b.var_handle("twice")
    read(h)
    b.assign_variable(h, x)
    read(h)

    h1, h2 = b.var_handle("shared"), b.var_handle("shared")
    b.assign_variable(h1, x)
    read(h2)

    if containers:
        c1, c2 = b.var_handle("dup", "c1"), b.var_handle("dup", "c2")
        read(c1)
        read(c2)
        b.assign_variable(c2, x)

    h = b.var_handle("constant")
    read(h)
    b.assign_variable(h, b.const(rng.integers(info.min, info.max + 1, (1, 6)), dtype,
                                 scales=scale, zero_points=zp))

    read(b.var_handle("fixed"))

    if dtype == np.int16:
        h = b.var_handle("odd")
        read(h, q=(scale, 3))
        b.assign_variable(h, b.quantize(x, scale, 3))
    b.output(*outs)
    return b.build()


if __name__ == "__main__":
    from tinycomp.frontends.keras import quiet_tensorflow
    with quiet_tensorflow():
        Path(sys.argv[2]).write_bytes(_convert(sys.argv[1]))
