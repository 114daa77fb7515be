"""Seeded random SVDF test models: many independent SVDF layers in one model
(one input and one output each), so one compiled build compares many cases."""
from __future__ import annotations

import numpy as np

from .tflite_builder import ModelBuilder


def _case(b: ModelBuilder, rng: np.random.Generator, edge: str, state=np.int16) -> None:
    """One SVDF layer; `state` the state's type (int16 with int16 time
    weights, or int8 with int8 ones: the pairs TFLite Micro runs)."""
    wide = state == np.int16
    batch = int(rng.integers(1, 3))
    depth = int(rng.integers(1, 24))
    rank = int(rng.integers(1, 4))
    units = int(rng.integers(1, 7))
    memory = int(rng.integers(1, 11))
    filters = rank * units
    zp_in = {"zp_min": -128, "zp_max": 127}.get(edge, int(rng.integers(-20, 21)))
    s_x = float(rng.uniform(0.005, 0.1))
    x = b.input((batch, depth), s_x, zp_in)
    wf = rng.integers(-127, 128, (filters, depth))
    s_wf = float(rng.uniform(0.002, 0.05))
    # feature dots spread about 128 * 70 * sqrt(depth); the state keeps them
    # within its type unless the case is about saturating it
    spread = 128 * 70 * np.sqrt(depth)
    typical = rng.uniform(200, 3000) if wide else rng.uniform(15, 100)
    ratio = spread / ((3e5 if wide else 3000) if edge == "state_saturates" else typical)
    s_st = s_x * s_wf * ratio
    wt_max = int(rng.integers(100, 32768) if wide else rng.integers(10, 128))
    wt = rng.integers(-wt_max, wt_max + 1, (filters, memory))
    s_wt = float(rng.uniform(1e-5, 1e-3) if wide else rng.uniform(1e-3, 1e-1))
    time_spread = wt_max / 2 * (8000 if wide else 60) * np.sqrt(memory * rank)
    s_out = s_st * s_wt * time_spread / (400 if edge == "out_saturates" else rng.uniform(30, 90))
    bias_scale = float(np.float32(np.float32(s_st) * np.float32(s_wt)))
    bias = rng.integers(-int(time_spread), int(time_spread) + 1, units)
    st = b.variable((batch, memory * filters), s_st, 0, state)
    y = b.svdf(x, b.const_int8(wf, s_wf), b.const(wt, state, s_wt),
               b.const_int32(bias, bias_scale), st, rank, s_out, int(rng.integers(-30, 31)),
               activation=str(rng.choice(["NONE", "RELU"])))
    b.output(y)


EDGES = ("", "", "", "zp_min", "zp_max", "state_saturates", "out_saturates")


def svdf_model(seed: int, cases: int, state=np.int16) -> bytes:
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    for k in range(cases):
        _case(b, rng, EDGES[k % len(EDGES)], state)
    return b.build()


def svdf_keyword_model(seed: int = 0) -> bytes:
    """A small streaming keyword spotter in the shape of TFLite Micro's SVDF
    examples: 40 features a frame -> SVDF (32 filters, rank 1, memory 10) ->
    SVDF (32 filters, rank 2, memory 6, 16 units) -> FULLY_CONNECTED (4) ->
    SOFTMAX; one frame per inference, the state carrying the past frames."""
    from .tflite_builder import random_bias, random_weights
    rng = np.random.default_rng(seed)
    b = ModelBuilder()
    x = b.input((1, 40), 0.05, -10, name="frame")
    h, s_h = x, 0.05
    for filters, rank, memory, s_st, s_out in ((32, 1, 10, 0.02, 0.04), (32, 2, 6, 0.015, 0.03)):
        depth = b.info(h).shape[1]
        wf = rng.integers(-127, 128, (filters, depth))
        s_wf = 4.0 / (127 * np.sqrt(depth))
        wt = rng.integers(-20000, 20001, (filters, memory))
        s_wt = 1.0 / (20000 * memory)
        bias_scale = float(np.float32(np.float32(s_st) * np.float32(s_wt)))
        units = filters // rank
        bias = rng.integers(-int(0.2 / bias_scale), int(0.2 / bias_scale), units)
        st = b.variable((1, memory * filters), s_st)
        h = b.svdf(h, b.const_int8(wf, s_wf), b.const(wt, np.int16, s_wt), b.const_int32(bias, bias_scale),
                   st, rank, s_out, -5, activation="RELU")
        s_h = s_out
    w, ws = random_weights(rng, (4, 16))
    bq, bs = random_bias(rng, 4, s_h, ws)
    logits = b.fully_connected(h, b.const_int8(w, ws, axis=0), b.const_int32(bq, bs), 0.05, 3)
    b.output(b.softmax(logits))
    return b.build()
