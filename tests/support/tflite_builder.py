"""Build small full-integer INT8 .tflite models directly, without TensorFlow.

Two levels:

* low level: ``input`` / ``tensor`` / ``const_*`` create tensors, ``op`` adds an
  operator with snake_case builtin options, ``output`` marks graph outputs;
* high level: one method per op (``conv2d``, ``add``, ``softmax`` ...) that
  computes the output shape, creates the output tensor with the quantization
  the TFLite converter would give it (or the one you pass) and returns its id.

Tensor ids are plain ints (indices into the subgraph's tensor list), so they
are also the indices ``run_tflm_all`` / ``GetTensor`` use.

    b = ModelBuilder()
    x = b.input((1, 8, 8, 3), scale=0.05, zero_point=-3)
    w = b.const_int8(wq, scales=ws, axis=0)
    bias = b.const_int32(bq, scales=0.05 * ws)
    y = b.conv2d(x, w, bias, scale=0.1, zero_point=7, stride=2,
                 padding="SAME", activation="RELU")
    b.output(y)
    buf = b.build()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

_DTYPES = {
    np.dtype(np.int8): fb.TensorType.INT8,
    np.dtype(np.int16): fb.TensorType.INT16,
    np.dtype(np.int32): fb.TensorType.INT32,
    np.dtype(np.int64): fb.TensorType.INT64,
    np.dtype(np.float32): fb.TensorType.FLOAT32,
    np.dtype(np.uint8): fb.TensorType.UINT8,
}

# op name -> (opcode version, options class name or None, BuiltinOptions member)
# Versions are the ones the converter writes for int8 models; TFLM does not
# check them, LiteRT does.
_OPS = {
    "CONV_2D": (3, "Conv2DOptions"),
    "DEPTHWISE_CONV_2D": (3, "DepthwiseConv2DOptions"),
    "FULLY_CONNECTED": (4, "FullyConnectedOptions"),
    "ADD": (2, "AddOptions"),
    "MUL": (2, "MulOptions"),
    "AVERAGE_POOL_2D": (2, "Pool2DOptions"),
    "MAX_POOL_2D": (2, "Pool2DOptions"),
    "MEAN": (2, "ReducerOptions"),
    "RESHAPE": (1, "ReshapeOptions"),
    "SQUEEZE": (1, "SqueezeOptions"),
    "EXPAND_DIMS": (1, "ExpandDimsOptions"),
    "CONCATENATION": (2, "ConcatenationOptions"),
    "PAD": (2, "PadOptions"),
    "TRANSPOSE": (2, "TransposeOptions"),
    "SOFTMAX": (2, "SoftmaxOptions"),
    "LOGISTIC": (2, None),
    "TANH": (2, None),
    "RELU": (2, None),
    "RELU6": (2, None),
    "HARD_SWISH": (1, "HardSwishOptions"),
    "QUANTIZE": (2, "QuantizeOptions"),
    "DEQUANTIZE": (2, "DequantizeOptions"),
    "SUB": (3, "SubOptions"),
    "MINIMUM": (2, "MaximumMinimumOptions"),
    "MAXIMUM": (2, "MaximumMinimumOptions"),
    "LEAKY_RELU": (2, "LeakyReluOptions"),
    "PRELU": (1, None),
    "STRIDED_SLICE": (2, "StridedSliceOptions"),
    "SLICE": (2, "SliceOptions"),
    "SPLIT": (2, "SplitOptions"),
    "SPLIT_V": (2, "SplitVOptions"),
    "GATHER": (2, "GatherOptions"),
    "PACK": (2, "PackOptions"),
    "SHAPE": (1, "ShapeOptions"),
    "DEPTH_TO_SPACE": (2, "DepthToSpaceOptions"),
    "SPACE_TO_DEPTH": (2, "SpaceToDepthOptions"),
    "RESIZE_NEAREST_NEIGHBOR": (3, "ResizeNearestNeighborOptions"),
    "SVDF": (3, "SVDFOptions"),
    "TRANSPOSE_CONV": (3, "TransposeConvOptions"),
    "BATCH_MATMUL": (4, "BatchMatMulOptions"),
    # resource variables and the ops that run other subgraphs
    "VAR_HANDLE": (1, "VarHandleOptions"),
    "READ_VARIABLE": (1, None),
    "ASSIGN_VARIABLE": (1, None),
    "CALL_ONCE": (1, "CallOnceOptions"),
    "WHILE": (1, "WhileOptions"),
    "IF": (1, "IfOptions"),
    "CALL": (1, "CallOptions"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (4, "UnidirectionalSequenceLSTMOptions"),
}

_PADDING = {"SAME": fb.Padding.SAME, "VALID": fb.Padding.VALID}
_ACTIVATION = {
    None: fb.ActivationFunctionType.NONE,
    "NONE": fb.ActivationFunctionType.NONE,
    "RELU": fb.ActivationFunctionType.RELU,
    "RELU_N1_TO_1": fb.ActivationFunctionType.RELU_N1_TO_1,
    "RELU6": fb.ActivationFunctionType.RELU6,
    "TANH": fb.ActivationFunctionType.TANH,
}

# Output quantization TFLM's kernels require (the converter fixes them too).
FIXED_OUTPUT_QUANT = {
    "LOGISTIC": (1.0 / 256, -128),
    "SOFTMAX": (1.0 / 256, -128),
    "TANH": (1.0 / 128, 0),
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


# --------------------------------------------------------------------------
# shape helpers


def conv_output_size(in_size: int, filter_size: int, stride: int,
                     padding: str, dilation: int = 1) -> int:
    """Output length along one spatial axis (TFLite's ComputeOutSize)."""
    eff = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    if padding == "VALID":
        return (in_size - eff + stride) // stride
    raise ValueError(f"padding must be SAME or VALID, not {padding!r}")


def same_padding(in_size: int, filter_size: int, stride: int,
                 dilation: int = 1) -> tuple[int, int]:
    """(before, after) zero padding for SAME, as TFLite computes it.

    The kernels only use ``before`` (the offset); ``after`` is what is left.
    """
    out = conv_output_size(in_size, filter_size, stride, "SAME", dilation)
    eff = (filter_size - 1) * dilation + 1
    total = max((out - 1) * stride + eff - in_size, 0)
    return total // 2, total - total // 2


def conv2d_output_shape(in_shape, filter_hw, out_channels, stride=(1, 1),
                        padding="SAME", dilation=(1, 1)) -> tuple[int, ...]:
    n, h, w, _ = in_shape
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    fh, fw = filter_hw
    return (n, conv_output_size(h, fh, sh, padding, dh),
            conv_output_size(w, fw, sw, padding, dw), out_channels)


def pool2d_output_shape(in_shape, filter_hw, stride=(1, 1), padding="VALID"):
    n, h, w, c = in_shape
    return conv2d_output_shape(in_shape, filter_hw, c, stride, padding)


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


# --------------------------------------------------------------------------
# quantization helpers (all take a seeded numpy Generator)


def quant_params_for_range(lo: float, hi: float) -> tuple[float, int]:
    """int8 (scale, zero_point) covering [lo, hi] (range widened to hold 0),
    the way the converter nudges calibration ranges."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-9:
        hi = lo + 1e-3
    scale = (hi - lo) / 255.0
    zp = int(round(-128 - lo / scale))
    return scale, int(np.clip(zp, -128, 127))


def random_activation_quant(rng: np.random.Generator, scale_range=(1e-3, 0.5),
                            zero_point_range=(-128, 127)) -> tuple[float, int]:
    """Log-uniform scale, uniform zero point."""
    lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
    scale = float(np.exp(rng.uniform(lo, hi)))
    zp = int(rng.integers(zero_point_range[0], zero_point_range[1] + 1))
    return scale, zp


def random_int8(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def random_weights(rng: np.random.Generator, shape, axis: int | None = 0,
                   scale_range=(1e-3, 0.05)) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights in [-127, 127] and float32 scales.

    ``axis`` is the per-channel dimension (0 for CONV_2D / FULLY_CONNECTED,
    3 for DEPTHWISE_CONV_2D); ``axis=None`` gives one per-tensor scale.
    Each channel has its own magnitude so a few channels are small.
    """
    shape = tuple(shape)
    n = 1 if axis is None else shape[axis]
    lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
    scales = np.exp(rng.uniform(lo, hi, size=n)).astype(np.float32)
    q = rng.integers(-127, 128, size=shape).astype(np.int8)
    if axis is not None:
        # shrink some channels so their max |q| is below 127
        amp = rng.uniform(0.2, 1.0, size=n)
        bshape = [1] * len(shape)
        bshape[axis] = n
        q = np.round(q * amp.reshape(bshape)).astype(np.int8)
    return q, scales


def bias_scales(input_scale: float, weight_scales) -> np.ndarray:
    """Bias scale = input scale * weight scale (per channel), as the converter
    writes it (float32 product)."""
    return (np.float32(input_scale) * np.asarray(weight_scales, np.float32)).astype(np.float32)


def random_bias(rng: np.random.Generator, n: int, input_scale: float,
                weight_scales, magnitude: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """int32 biases in [-magnitude, magnitude] and their scales."""
    ws = np.broadcast_to(np.asarray(weight_scales, np.float32), (n,))
    q = rng.integers(-magnitude, magnitude + 1, size=n).astype(np.int32)
    return q, bias_scales(input_scale, ws)


def pack_int4(values: np.ndarray) -> np.ndarray:
    """TFLite's packed INT4 buffer bytes (uint8) of int values in [-8, 7]."""
    v = np.asarray(values, np.int64).reshape(-1) & 0xF
    if v.size % 2:
        v = np.append(v, 0)
    return (v[0::2] | (v[1::2] << 4)).astype(np.uint8)


def random_int4_weights(rng: np.random.Generator, shape, axis: int | None = 0,
                        scale_range=(1e-3, 0.05)) -> tuple[np.ndarray, np.ndarray]:
    """int4 weights in [-8, 7] (the extremes included, as a 16-level quantizer
    gives them) and float32 scales, one per channel along axis (None: one)."""
    shape = tuple(shape)
    n = 1 if axis is None else shape[axis]
    lo, hi = np.log(scale_range[0]), np.log(scale_range[1])
    scales = np.exp(rng.uniform(lo, hi, size=n)).astype(np.float32)
    return rng.integers(-8, 8, size=shape).astype(np.int8), scales


# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: np.dtype
    scales: tuple[float, ...] | None
    zero_points: tuple[int, ...] | None
    axis: int
    data: np.ndarray | None  # constants only

    @property
    def scale(self) -> float:
        assert self.scales is not None and len(self.scales) == 1
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        assert self.zero_points is not None and len(self.zero_points) == 1
        return self.zero_points[0]


class ModelBuilder:
    """Accumulates one subgraph (the main one, 0); ``subgraph()`` adds
    others (an init subgraph for CALL_ONCE), ``build()`` serializes all."""

    def __init__(self, description: str = "tinycomp test model", parent: "ModelBuilder | None" = None):
        self.description = description
        self.tensors: list[TensorInfo] = []
        self._tensor_ts: list = []
        # the subgraphs of one model share its buffers and operator codes
        self._buffers: list = parent._buffers if parent else [fb.BufferT()]  # buffer 0: the empty sentinel
        self._opcodes: list[str] = parent._opcodes if parent else []
        self._subgraphs: list[ModelBuilder] = []
        self._operators: list = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.op_names: list[str] = []

    # ---------------------------------------------------------------- tensors

    def _add_tensor(self, shape, dtype, scales, zero_points, axis, data,
                    name, int4=False) -> int:
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype(dtype)
        t = fb.TensorT()
        t.shape = list(shape)
        t.type = fb.TensorType.INT4 if int4 else _DTYPES[dtype]
        idx = len(self.tensors)
        t.name = name or f"t{idx}"
        if scales is not None:
            scales = tuple(float(s) for s in np.atleast_1d(scales))
            if zero_points is None:
                zero_points = [0] * len(scales)
            zero_points = tuple(int(z) for z in np.atleast_1d(zero_points))
            if len(zero_points) == 1 and len(scales) > 1:
                zero_points = zero_points * len(scales)
            q = fb.QuantizationParametersT()
            q.scale = list(scales)
            q.zeroPoint = list(zero_points)
            q.quantizedDimension = int(axis)
            t.quantization = q
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=dtype).reshape(shape))
            buf = fb.BufferT()
            buf.data = pack_int4(arr) if int4 else np.frombuffer(arr.tobytes(), dtype=np.uint8)
            t.buffer = len(self._buffers)
            self._buffers.append(buf)
            data = arr
        else:
            t.buffer = 0
        self._tensor_ts.append(t)
        self.tensors.append(TensorInfo(shape, dtype, scales, zero_points,
                                       int(axis), data))
        return idx

    def tensor(self, shape, scale=None, zero_point=0, dtype=np.int8,
               name=None) -> int:
        """An activation (non-constant) tensor."""
        return self._add_tensor(shape, dtype, scale, zero_point if scale is not None else None,
                                0, None, name)

    def variable(self, shape, scale, zero_point=0, dtype=np.int16, name=None) -> int:
        """A variable tensor (isVariable): state an op keeps between invokes,
        zeros at the start as TFLM initialises it."""
        idx = self.tensor(shape, scale, zero_point, dtype, name)
        self._tensor_ts[idx].isVariable = True
        return idx

    def input(self, shape, scale, zero_point=0, dtype=np.int8, name=None) -> int:
        idx = self.tensor(shape, scale, zero_point, dtype, name)
        self.inputs.append(idx)
        return idx

    def output(self, *ids: int) -> None:
        self.outputs.extend(int(i) for i in ids)

    def const_int8(self, values, scales, zero_points=None, axis=0, name=None) -> int:
        """Constant int8 tensor (weights): per-tensor if one scale, else
        per-channel along ``axis``."""
        values = np.asarray(values)
        return self._add_tensor(values.shape, np.int8, scales, zero_points, axis,
                                values, name)

    def const_int4(self, values, scales, axis=0, name=None) -> int:
        """Constant INT4 tensor (weights in [-8, 7]) stored as TFLM reads it:
        packed two per byte over the flattened tensor (element 2i in the low
        nibble, 2i+1 in the high one), the last high nibble 0 for an odd count.
        info(t).data keeps the unpacked values (int8)."""
        values = np.asarray(values)
        assert values.min(initial=0) >= -8 and values.max(initial=0) <= 7, "int4 values are in [-8, 7]"
        return self._add_tensor(values.shape, np.int8, scales, None, axis, values, name, int4=True)

    def const_int32(self, values, scales=None, zero_points=None, axis=0,
                    name=None) -> int:
        """Constant int32 tensor: biases (with scales) or shape/axis operands
        (without)."""
        values = np.asarray(values)
        return self._add_tensor(values.shape, np.int32, scales, zero_points, axis,
                                values, name)

    def const(self, values, dtype, scales=None, zero_points=None, axis=0,
              name=None) -> int:
        values = np.asarray(values)
        return self._add_tensor(values.shape, dtype, scales, zero_points, axis,
                                values, name)

    # ---------------------------------------------------------------- ops

    def op(self, name: str, inputs: Sequence[int], outputs: Sequence[int],
           intermediates: Sequence[int] = (), **options) -> None:
        """Add a builtin operator. Options are snake_case versions of the
        schema's fields (stride_w, dilation_h_factor, depth_multiplier,
        keep_num_dims, filter_width, keep_dims, axis, beta, new_shape,
        squeeze_dims ...); ``padding`` takes "SAME"/"VALID" and
        ``fused_activation`` takes None/"RELU"/"RELU6"/"RELU_N1_TO_1"."""
        if name not in _OPS:
            raise ValueError(f"unsupported op {name}")
        version, opt_name = _OPS[name]
        if name not in self._opcodes:
            self._opcodes.append(name)
        o = fb.OperatorT()
        o.opcodeIndex = self._opcodes.index(name)
        o.inputs = [int(i) for i in inputs]
        o.outputs = [int(i) for i in outputs]
        if intermediates:
            o.intermediates = [int(i) for i in intermediates]
        if opt_name is not None:
            opts = getattr(fb, opt_name + "T")()
            for key, value in options.items():
                if key == "fused_activation":
                    attr, value = "fusedActivationFunction", _ACTIVATION[value]
                elif key == "padding":
                    attr, value = "padding", _PADDING[value]
                else:
                    attr = _camel(key)
                if not hasattr(opts, attr):
                    raise TypeError(f"{name} has no option {key!r}")
                if isinstance(value, (tuple, np.ndarray)):
                    value = [int(v) for v in value]
                elif isinstance(value, str):
                    value = value.encode()
                setattr(opts, attr, value)
            o.builtinOptionsType = getattr(fb.BuiltinOptions, opt_name)
            o.builtinOptions = opts
        elif options:
            raise TypeError(f"{name} takes no options, got {sorted(options)}")
        self._operators.append(o)
        self.op_names.append(name)

    # ---------------------------------------------------------------- subgraphs, variables

    def subgraph(self) -> "ModelBuilder":
        """A new subgraph of this model (index 1, 2, ... in creation order)."""
        sub = ModelBuilder(self.description, parent=self)
        self._subgraphs.append(sub)
        return sub

    def resource(self, name=None) -> int:
        """A resource tensor (a variable's handle, made by VAR_HANDLE)."""
        t = fb.TensorT()
        t.shape, t.type, t.buffer = [], fb.TensorType.RESOURCE, 0
        idx = len(self.tensors)
        t.name = name or f"t{idx}"
        self._tensor_ts.append(t)
        self.tensors.append(TensorInfo((), np.dtype(np.int32), None, None, 0, None))
        return idx

    def var_handle(self, shared_name: str, container: str = "") -> int:
        h = self.resource(f"handle_{shared_name}")
        self.op("VAR_HANDLE", [], [h], shared_name=shared_name, container=container)
        return h

    def read_variable(self, handle, shape, scale, zero_point=0, dtype=np.int8) -> int:
        y = self.tensor(shape, scale, zero_point, dtype)
        self.op("READ_VARIABLE", [handle], [y])
        return y

    def assign_variable(self, handle, value) -> None:
        self.op("ASSIGN_VARIABLE", [handle, value], [])

    def call_once(self, init_index: int) -> None:
        self.op("CALL_ONCE", [], [], init_subgraph_index=init_index)

    def _subgraph_object(self, name: str):
        sg = fb.SubGraphT()
        sg.tensors = self._tensor_ts
        sg.inputs = list(self.inputs)
        sg.outputs = list(self.outputs)
        sg.operators = self._operators
        sg.name = name
        return sg

    # ---------------------------------------------------------------- build

    def model_object(self):
        m = fb.ModelT()
        m.version = 3
        m.description = self.description
        m.subgraphs = [self._subgraph_object("main")] + [
            sub._subgraph_object(f"init{k + 1}") for k, sub in enumerate(self._subgraphs)]
        m.buffers = self._buffers
        codes = []
        for name in self._opcodes:
            c = fb.OperatorCodeT()
            code = getattr(fb.BuiltinOperator, name)
            c.builtinCode = code
            c.deprecatedBuiltinCode = min(code, 127)
            c.version = _OPS[name][0]
            codes.append(c)
        m.operatorCodes = codes
        return m

    def build(self) -> bytes:
        if not self.inputs or not self.outputs:
            raise ValueError("model needs at least one input and one output")
        builder = flatbuffers.Builder(1024)
        builder.Finish(self.model_object().Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    # ---------------------------------------------------------------- high level
    # Each returns the new output tensor id. scale/zero_point default to the
    # input's where the converter makes them equal.

    def info(self, t: int) -> TensorInfo:
        return self.tensors[t]

    def _out(self, shape, scale, zero_point, like: int | None = None) -> int:
        if scale is None:
            if like is None:
                raise ValueError("output scale required")
            scale = self.tensors[like].scale
            zero_point = self.tensors[like].zero_point if zero_point is None else zero_point
        dtype = self.tensors[like].dtype if like is not None else np.int8  # int16 stays int16
        return self.tensor(shape, scale, 0 if zero_point is None else zero_point, dtype)

    def conv2d(self, x, w, bias, scale, zero_point, stride=1, padding="SAME",
               activation=None, dilation=1) -> int:
        sh, sw = _pair(stride)
        dh, dw = _pair(dilation)
        wshape = self.tensors[w].shape  # (O, H, W, I)
        shape = conv2d_output_shape(self.tensors[x].shape, wshape[1:3], wshape[0],
                                    (sh, sw), padding, (dh, dw))
        y = self._out(shape, scale, zero_point)
        ins = [x, w] + ([bias] if bias is not None else [-1])
        self.op("CONV_2D", ins, [y], stride_w=sw, stride_h=sh, padding=padding,
                fused_activation=activation, dilation_w_factor=dw,
                dilation_h_factor=dh)
        return y

    def depthwise_conv2d(self, x, w, bias, scale, zero_point, stride=1,
                         padding="SAME", activation=None, dilation=1,
                         depth_multiplier=1) -> int:
        sh, sw = _pair(stride)
        dh, dw = _pair(dilation)
        wshape = self.tensors[w].shape  # (1, H, W, I*M)
        shape = conv2d_output_shape(self.tensors[x].shape, wshape[1:3], wshape[3],
                                    (sh, sw), padding, (dh, dw))
        y = self._out(shape, scale, zero_point)
        # No -1 placeholder for a missing bias: TFLM's depthwise kernel crashes on it.
        ins = [x, w] + ([bias] if bias is not None else [])
        self.op("DEPTHWISE_CONV_2D", ins, [y], stride_w=sw, stride_h=sh,
                padding=padding, fused_activation=activation,
                dilation_w_factor=dw, dilation_h_factor=dh,
                depth_multiplier=depth_multiplier)
        return y

    def fully_connected(self, x, w, bias, scale, zero_point, activation=None,
                        keep_num_dims=False) -> int:
        xs = self.tensors[x].shape
        units, depth = self.tensors[w].shape
        if keep_num_dims:
            shape = xs[:-1] + (units,)
        else:
            shape = (int(np.prod(xs)) // depth, units)
        y = self._out(shape, scale, zero_point)
        ins = [x, w] + ([bias] if bias is not None else [-1])
        self.op("FULLY_CONNECTED", ins, [y], fused_activation=activation,
                keep_num_dims=keep_num_dims)
        return y

    def svdf(self, x, weights_feature, weights_time, bias, state, rank, scale,
             zero_point, activation=None) -> int:
        """SVDF: weights_feature (filters, input), weights_time (filters,
        memory), bias (filters / rank), state a variable tensor (batch,
        memory * filters)."""
        batch = self.tensors[x].shape[0]
        units = self.tensors[weights_feature].shape[0] // rank
        y = self._out((batch, units), scale, zero_point)
        ins = [x, weights_feature, weights_time, -1 if bias is None else bias, state]
        self.op("SVDF", ins, [y], rank=rank, fused_activation=activation)
        return y

    def lstm(self, x, weights, biases, hidden, cell, scale, zero_point, time_major=False,
             cell_clip=0.0, intermediates=(), activation="TANH", **more) -> int:
        """UNIDIRECTIONAL_SEQUENCE_LSTM without peephole, projection or layer
        norm: weights {"ii", "if", "ic", "io", "ri", "rf", "rc", "ro"} (input_to_*
        (cells, depth), recurrent_to_* (cells, cells); "ii"/"ri" None for
        CIFG), biases {"i", "f", "c", "o"}, hidden and cell the variable
        state tensors. x is (batch, time, depth), or (time, batch, depth)
        when time_major; the output has x's first two dimensions."""
        d0, d1, _ = self.tensors[x].shape
        cells = self.tensors[weights["if"]].shape[0]
        y = self._out((d0, d1, cells), scale, zero_point)
        opt = lambda v: -1 if v is None else v  # noqa: E731
        ins = [x, *(opt(weights[k]) for k in ("ii", "if", "ic", "io", "ri", "rf", "rc", "ro")),
               -1, -1, -1, *(opt(biases[k]) for k in ("i", "f", "c", "o")), -1, -1, hidden, cell,
               -1, -1, -1, -1]
        self.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], intermediates=intermediates,
                fused_activation=activation, cell_clip=float(cell_clip), time_major=bool(time_major), **more)
        return y

    def transpose_conv(self, x, w, bias, out_shape, scale, zero_point, stride=1, padding="SAME",
                       activation=None) -> int:
        """TRANSPOSE_CONV: w (out_c, kh, kw, in_c); out_shape the NHWC output."""
        sh, sw = _pair(stride)
        shape_t = self.const_int32(np.asarray(out_shape, np.int32))
        y = self._out(tuple(out_shape), scale, zero_point)
        ins = [shape_t, w, x] + ([bias] if bias is not None else [])
        self.op("TRANSPOSE_CONV", ins, [y], padding=padding, stride_h=sh, stride_w=sw,
                fused_activation=activation)
        return y

    def _binary(self, name, a, b, scale, zero_point, activation):
        shape = tuple(np.broadcast_shapes(self.tensors[a].shape, self.tensors[b].shape))
        y = self._out(shape, scale, zero_point)
        self.op(name, [a, b], [y], fused_activation=activation)
        return y

    def add(self, a, b, scale, zero_point, activation=None) -> int:
        return self._binary("ADD", a, b, scale, zero_point, activation)

    def mul(self, a, b, scale, zero_point, activation=None) -> int:
        return self._binary("MUL", a, b, scale, zero_point, activation)

    def sub(self, a, b, scale, zero_point, activation=None) -> int:
        return self._binary("SUB", a, b, scale, zero_point, activation)

    def _minmax(self, name, a, b, scale, zero_point) -> int:
        shape = tuple(np.broadcast_shapes(self.tensors[a].shape, self.tensors[b].shape))
        y = self._out(shape, scale, zero_point, like=a)
        self.op(name, [a, b], [y])
        return y

    def minimum(self, a, b, scale=None, zero_point=None) -> int:
        """Raw codes compared; the converter gives all three one quantization."""
        return self._minmax("MINIMUM", a, b, scale, zero_point)

    def maximum(self, a, b, scale=None, zero_point=None) -> int:
        return self._minmax("MAXIMUM", a, b, scale, zero_point)

    def leaky_relu(self, x, alpha, scale=None, zero_point=None) -> int:
        y = self._out(self.tensors[x].shape, scale, zero_point, like=x)
        self.op("LEAKY_RELU", [x], [y], alpha=float(alpha))
        return y

    def prelu(self, x, alpha, scale, zero_point) -> int:
        shape = tuple(np.broadcast_shapes(self.tensors[x].shape, self.tensors[alpha].shape))
        y = self._out(shape, scale, zero_point)
        self.op("PRELU", [x, alpha], [y])
        return y

    def _pool(self, name, x, filter_size, stride, padding, activation, scale,
              zero_point):
        fh, fw = _pair(filter_size)
        sh, sw = _pair(stride)
        shape = pool2d_output_shape(self.tensors[x].shape, (fh, fw), (sh, sw), padding)
        y = self._out(shape, scale, zero_point, like=x)
        self.op(name, [x], [y], padding=padding, stride_w=sw, stride_h=sh,
                filter_width=fw, filter_height=fh, fused_activation=activation)
        return y

    def average_pool2d(self, x, filter_size, stride=None, padding="VALID",
                       activation=None, scale=None, zero_point=None) -> int:
        return self._pool("AVERAGE_POOL_2D", x, filter_size,
                          filter_size if stride is None else stride, padding,
                          activation, scale, zero_point)

    def max_pool2d(self, x, filter_size, stride=None, padding="VALID",
                   activation=None, scale=None, zero_point=None) -> int:
        return self._pool("MAX_POOL_2D", x, filter_size,
                          filter_size if stride is None else stride, padding,
                          activation, scale, zero_point)

    def mean(self, x, axis, keep_dims=True, scale=None, zero_point=None) -> int:
        xs = self.tensors[x].shape
        axes = sorted({int(a) % len(xs) for a in np.atleast_1d(axis)})
        if keep_dims:
            shape = tuple(1 if i in axes else d for i, d in enumerate(xs))
        else:
            shape = tuple(d for i, d in enumerate(xs) if i not in axes)
        a = self.const_int32(np.asarray(np.atleast_1d(axis), np.int32))
        y = self._out(shape, scale, zero_point, like=x)
        self.op("MEAN", [x, a], [y], keep_dims=keep_dims)
        return y

    def reshape(self, x, shape) -> int:
        shape = tuple(int(s) for s in shape)
        s = self.const_int32(np.asarray(shape, np.int32))
        y = self._out(shape, None, None, like=x)
        self.op("RESHAPE", [x, s], [y], new_shape=list(shape))
        return y

    def squeeze(self, x, axes=None) -> int:
        xs = self.tensors[x].shape
        if axes is None:
            axes = [i for i, d in enumerate(xs) if d == 1]
        axes = [int(a) % len(xs) for a in axes]
        shape = tuple(d for i, d in enumerate(xs) if i not in axes)
        y = self._out(shape, None, None, like=x)
        self.op("SQUEEZE", [x], [y], squeeze_dims=list(axes))
        return y

    def expand_dims(self, x, axis: int) -> int:
        xs = list(self.tensors[x].shape)
        pos = axis if axis >= 0 else len(xs) + 1 + axis
        xs.insert(pos, 1)
        a = self.const_int32(np.asarray([axis], np.int32))
        y = self._out(tuple(xs), None, None, like=x)
        self.op("EXPAND_DIMS", [x, a], [y])
        return y

    def concatenation(self, xs: Sequence[int], axis: int, scale=None,
                      zero_point=None, activation=None) -> int:
        shapes = [self.tensors[t].shape for t in xs]
        ax = axis % len(shapes[0])
        shape = list(shapes[0])
        shape[ax] = sum(s[ax] for s in shapes)
        y = self._out(tuple(shape), scale, zero_point, like=xs[0])
        self.op("CONCATENATION", list(xs), [y], axis=axis,
                fused_activation=activation)
        return y

    def pad(self, x, paddings) -> int:
        paddings = np.asarray(paddings, np.int32).reshape(-1, 2)
        xs = self.tensors[x].shape
        shape = tuple(int(d + p[0] + p[1]) for d, p in zip(xs, paddings))
        p = self.const_int32(paddings)
        y = self._out(shape, None, None, like=x)
        self.op("PAD", [x, p], [y])
        return y

    def transpose(self, x, perm) -> int:
        xs = self.tensors[x].shape
        perm = [int(p) for p in perm]
        p = self.const_int32(np.asarray(perm, np.int32))
        y = self._out(tuple(xs[d] for d in perm), None, None, like=x)
        self.op("TRANSPOSE", [x, p], [y])
        return y

    def _unary(self, name, x, scale, zero_point, **opts) -> int:
        if scale is None and name in FIXED_OUTPUT_QUANT:
            scale, zero_point = FIXED_OUTPUT_QUANT[name]
        y = self._out(self.tensors[x].shape, scale, zero_point, like=x)
        self.op(name, [x], [y], **opts)
        return y

    def softmax(self, x, beta=1.0, scale=None, zero_point=None) -> int:
        return self._unary("SOFTMAX", x, scale, zero_point, beta=float(beta))

    def logistic(self, x, scale=None, zero_point=None) -> int:
        return self._unary("LOGISTIC", x, scale, zero_point)

    def tanh(self, x, scale=None, zero_point=None) -> int:
        return self._unary("TANH", x, scale, zero_point)

    def relu(self, x, scale=None, zero_point=None) -> int:
        return self._unary("RELU", x, scale, zero_point)

    def relu6(self, x, scale=None, zero_point=None) -> int:
        return self._unary("RELU6", x, scale, zero_point)

    def hard_swish(self, x, scale=None, zero_point=None) -> int:
        return self._unary("HARD_SWISH", x, scale, zero_point)

    def quantize(self, x, scale, zero_point) -> int:
        """int8 -> int8 requantization."""
        return self._unary("QUANTIZE", x, scale, zero_point)


def single_op_model(fn, in_shape, scale, zero_point, *args, **kwargs) -> bytes:
    """Shortcut: a one-input model ``y = fn(builder, x, *args, **kwargs)``."""
    b = ModelBuilder()
    x = b.input(in_shape, scale, zero_point)
    y = fn(b, x, *args, **kwargs)
    b.output(y)
    return b.build()


__all__ = [
    "ModelBuilder", "TensorInfo", "FIXED_OUTPUT_QUANT", "conv_output_size",
    "same_padding", "conv2d_output_shape", "pool2d_output_shape",
    "quant_params_for_range", "random_activation_quant", "random_int8",
    "random_weights", "bias_scales", "random_bias", "single_op_model",
]
