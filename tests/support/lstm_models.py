"""Seeded random integer LSTM test models (UNIDIRECTIONAL_SEQUENCE_LSTM in
the 8x8->16 scheme), quantized as the TFLite converter quantizes them: int8
input and hidden state (the hidden state shares the output's scale and zero
point), int8 symmetric per-tensor weights, int32 biases of scale input x
weight scale, an int16 cell state of scale 2^-k, and the five intermediate
tensors the converter adds (four int16 gate tensors, one int8 hidden; empty,
shape (0,): TFLM refuses intermediates that hold bytes). Many
independent layers in one model (one input and one output each), so one
compiled build compares many cases."""
from __future__ import annotations

import numpy as np

from .tflite_builder import ModelBuilder

GATES = ("i", "f", "c", "o")


def add_lstm(b: ModelBuilder, rng: np.random.Generator, x: int, cells: int, s_out: float, zp_out: int,
             cell_log2: int = -11, time_major: bool = False, cifg: bool = False, cell_clip: float = 0.0,
             weight_range: float = 1.0, bias_range: float = 0.5, state_init: bool = False) -> int:
    """An LSTM layer reading x; returns its output tensor. weight_range and
    bias_range (real values) control how far the gates are driven."""
    xs = b.info(x)
    d0, d1, depth = xs.shape
    batch = d1 if time_major else d0
    weights, biases = {}, {}
    for g in GATES:
        skip = cifg and g == "i"
        for kind, width, s_in in (("i", depth, xs.scale), ("r", cells, s_out)):
            if skip:
                weights[kind + g] = None
                continue
            s_w = float(rng.uniform(0.3, 1.0)) * weight_range / 127
            w = rng.integers(-127, 128, (cells, width))
            weights[kind + g] = b.const_int8(w, s_w)
            if kind == "i":
                s_b = float(np.float32(np.float32(s_in) * np.float32(s_w)))
                lim = max(1, int(bias_range / s_b))
                biases[g] = b.const_int32(rng.integers(-lim, lim + 1, cells), s_b)
        if skip:
            biases[g] = None
    hidden = b.variable((batch, cells), s_out, zp_out, dtype=np.int8)
    cell = b.variable((batch, cells), 2.0 ** cell_log2, 0, dtype=np.int16)
    inter = [b.tensor((0,), 2.0 ** -12, 0, dtype=np.int16) for _ in range(4)]
    inter += [b.tensor((0,), s_out, zp_out, dtype=np.int8)]
    return b.lstm(x, weights, biases, hidden, cell, s_out, zp_out, time_major=time_major,
                  cell_clip=cell_clip, intermediates=inter)


EDGES = ("", "", "clip", "saturate", "time_major", "zp_min", "cell_fine", "cell_coarse")


def _case(b: ModelBuilder, rng: np.random.Generator, edge: str) -> None:
    batch = int(rng.integers(1, 4))
    steps = int(rng.integers(1, 6))
    depth = int(rng.integers(1, 20))
    cells = int(rng.integers(1, 17))
    time_major = edge == "time_major" or bool(rng.integers(0, 2))
    zp_in = {"zp_min": -128}.get(edge, int(rng.integers(-30, 31)))
    shape = (steps, batch, depth) if time_major else (batch, steps, depth)
    x = b.input(shape, float(rng.uniform(0.01, 0.1)), zp_in)
    cell_log2 = {"cell_fine": -15, "cell_coarse": -8}.get(edge, int(rng.integers(-13, -9)))
    y = add_lstm(b, rng, x, cells, float(rng.uniform(0.004, 0.01)), int(rng.integers(-20, 21)),
                 cell_log2=cell_log2, time_major=time_major,
                 cell_clip=float(rng.uniform(0.3, 2.0)) if edge == "clip" else 0.0,
                 weight_range=8.0 if edge == "saturate" else float(rng.uniform(0.2, 2.0)),
                 bias_range=6.0 if edge == "saturate" else 0.5)
    b.output(y)


def lstm_model(seed: int, cases: int) -> bytes:
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    for k in range(cases):
        _case(b, rng, EDGES[k % len(EDGES)])
    return b.build()


def lstm_keyword_model(seed: int = 0, frames: int = 12, features: int = 10, cells: int = 16) -> bytes:
    """A small keyword spotter: (1, frames, features) -> LSTM (cells) ->
    RESHAPE -> FULLY_CONNECTED (4) -> SOFTMAX."""
    from .tflite_builder import random_bias, random_weights
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.input((1, frames, features), 0.05, -10, name="mfcc")
    s_h = 0.008
    h = add_lstm(b, rng, x, cells, s_h, -3, cell_log2=-11, weight_range=1.5)
    flat = b.reshape(h, (1, frames * cells))
    w, ws = random_weights(rng, (4, frames * cells))
    bq, bs = random_bias(rng, 4, s_h, ws)
    logits = b.fully_connected(flat, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), 0.05, 3)
    b.output(b.softmax(logits))
    return b.build()
