"""UNIDIRECTIONAL_SEQUENCE_LSTM in TFLite's integer 8x8->16 scheme, as TFLite
Micro's reference kernel (lstm_eval.h, EvalLstm<int8, int8, int16, int32>)
computes it. docs/arithmetic.md, section 18g, has the whole recipe.

Per batch row and time step, with h the int8 hidden state and c the int16
cell state (both variable tensors, updated in place):
1. each gate's pre-activation is two fully connected layers into int16 at
   scale 2^-12: the input's (x - zp_x) . w_in + bias and the hidden state's
   (h - zp_h) . w_rec, each requantized by its own multiplier (the float32
   product of the two scales over 2^-12) and clamped to int16, then added
   with int16 saturation;
2. forget, input and output gates go through TFLM's int16 sigmoid, the cell
   gate through its int16 tanh (input scale 2^-12), both to scale 2^-15;
3. c = sat16(MBQM(f * c, 2^-15) + MBQM(i * g, 2^-30 / s_c)) (each product
   requantized and clamped to int16 first), then clamped to +-cell_clip;
4. h = clamp8(MBQM(o * tanh(c), 2^-30 / s_h) + zp_h), tanh taking the cell
   scale 2^k through a multiplier of 3 and a shift; h is also the output.
The output gate is computed after the cell update, still from the old h.
"""
from __future__ import annotations

import numpy as np

from ...ir.shapes import LSTM_BIASES, LSTM_CELL, LSTM_HIDDEN, LSTM_INPUT_WEIGHTS, LSTM_RECURRENT_WEIGHTS
from ..fixedpoint import f32, quantize_multiplier
from ..layer import Layer
from .int16_act import SIGMOID_UINT16, checked_log2

# The gates' scales: Q3.12 into the sigmoid / tanh, Q0.15 out. Exact powers
# of two, measured: a float literal 0.00003051757 for 2^-15, which some TFLM
# sources write (2^-15 (1 - 2^-22) in float32), makes the cell and hidden
# multipliers differ from the pip tflite-micro's in about 1 output of 500.
GATE_IN, GATE_OUT = 2.0 ** -12, 2.0 ** -15
GATES = ("forget", "input", "cell", "output")  # TFLM's order; index into w, b below
_ORDER = {"input": 0, "forget": 1, "cell": 2, "output": 3}  # position in lstm_shared.h


def _wrap32(v: np.ndarray) -> np.ndarray:
    """int32 two's complement wrap: TFLM's int32 sums wrap on Cortex-M, and
    adding a folded term mod 2^32 gives the same sum."""
    return ((v.astype(np.int64) + (1 << 31)) % (1 << 32)) - (1 << 31)


def lstm(layer: Layer) -> dict:
    x = layer.input(0)
    hidden, cell = layer.input(LSTM_HIDDEN), layer.input(LSTM_CELL)
    if x.dtype != "int8":
        raise layer.refuse(f"{x.dtype} activations are not supported (the 8x8->16 scheme: int8)")
    for t in (x, hidden, cell):
        if t.quant is None or t.quant.per_channel:
            raise layer.refuse(f"tensor {t.name!r} must be quantized per tensor")
    if cell.zero_point != 0:
        raise layer.refuse(f"the int16 cell state has zero point {cell.zero_point}; it must be 0")
    is_pot, power = checked_log2(cell.scale)
    # TFLM takes the rounded log2 of any scale; tinycomp only compiles the
    # power-of-two scales converters write, within shifts C keeps defined
    if not is_pot or not -40 <= power <= 3:
        raise layer.refuse(f"cell state scale {cell.scale:g} is not a power of two in 2^-40..2^3")
    d0, d1, depth = x.shape
    time_major = bool(layer.options.get("time_major", False))
    batch, steps = (d1, d0) if time_major else (d0, d1)
    cells = hidden.shape[1]
    w_in, w_rec, bias_in, bias_rec, mults = [], [], [], [], []
    for g in GATES:
        wi = layer.input(LSTM_INPUT_WEIGHTS[_ORDER[g]])
        wr = layer.input(LSTM_RECURRENT_WEIGHTS[_ORDER[g]])
        b = layer.input(LSTM_BIASES[_ORDER[g]])
        for w in (wi, wr):
            if w.quant is None or w.quant.per_channel or w.zero_point != 0:
                raise layer.refuse(f"weights {w.name!r} must be symmetric and quantized per tensor")
        wi64, wr64 = wi.data.astype(np.int64), wr.data.astype(np.int64)
        w_in.append(wi64)
        w_rec.append(wr64)
        # sum (x - zp) w + b == sum x w + (b - zp sum w), mod 2^32 as TFLM's int32 sum
        bias_in.append(_wrap32(b.data.astype(np.int64) - x.zero_point * wi64.sum(axis=1)))
        bias_rec.append(_wrap32(-hidden.zero_point * wr64.sum(axis=1)))
        # CalculateOpDataFullyConnected: float32 product of the scales, then double
        mults.append((quantize_multiplier(f32(np.float32(x.scale) * np.float32(wi.scale)) / GATE_IN),
                      quantize_multiplier(f32(np.float32(hidden.scale) * np.float32(wr.scale)) / GATE_IN)))
    s_c = f32(cell.scale)
    # CreateInterGateMulParams: double products of the float scales
    m_fc = quantize_multiplier(GATE_OUT * s_c / s_c)
    m_ic = quantize_multiplier(GATE_OUT * GATE_OUT / s_c)
    m_h = quantize_multiplier(GATE_OUT * GATE_OUT / f32(hidden.scale))
    clip = f32(layer.options.get("cell_clip", 0.0))
    qclip = int(min(max(clip / s_c, -32768.0), 32767.0)) if clip > 0 else None  # static_cast truncates
    # tanh of the cell: TFLM's left shift (15 + power) - 3; a negative one
    # becomes a multiplier of 3 and a rounding right shift
    shift = 12 + power
    tanh_mult, tanh_right = (3 << shift, 0) if shift >= 0 else (3, -shift)
    return {
        "batch": batch, "steps": steps, "depth": depth, "cells": cells, "time_major": time_major,
        "w_in": layer.const("w_in", np.stack(w_in), "int8_t"),
        "w_rec": layer.const("w_rec", np.stack(w_rec), "int8_t"),
        "b_in": layer.const("b_in", np.stack(bias_in), "int32_t"),
        "b_rec": layer.const("b_rec", np.stack(bias_rec), "int32_t"),
        "mults": mults, "m_fc": m_fc, "m_ic": m_ic, "m_h": m_h, "zp_h": hidden.zero_point,
        "qclip": qclip, "tanh_mult": tanh_mult, "tanh_right": tanh_right,
        "tanh_round": (1 << (tanh_right - 1)) if tanh_right else 0,
        "table": layer.const("sigmoid", SIGMOID_UINT16, "uint16_t"),
        "scratch_bytes": 4 * cells * 2,
    }
