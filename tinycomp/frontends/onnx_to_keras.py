"""A float ONNX graph (as torch.onnx writes it) -> an equivalent float Keras
model at batch 1, which the Keras front end then quantizes to INT8 .tflite.

Why our own builder and not onnx2tf or litert-torch: the layer set of small
MCU models is short, the NCHW -> NHWC weight transposes are fixed rules, and
the result is a plain Keras functional model that the converter we already
trust turns into per-channel INT8 (see README, "PyTorch and ONNX models").

Layout. ONNX tensors of rank 3 and 4 are channels-first (N, C, L) and
(N, C, H, W); Keras layers work channels-last. Inside the builder every such
activation is held channels-last and its ONNX axes are mapped when a node
names one (Concat, ReduceMean, Flatten). The model's input keeps the ONNX
layout: with one channel NCHW and NHWC are the same bytes, so a RESHAPE (no
code) does; with more, one TRANSPOSE at the head. A flatten of a channels-last
tensor that feeds only Gemm/MatMul costs nothing either: the dense weights
are reordered instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ModelError, TinycompError, UnsupportedOpError

SUPPORTED = ("Conv (groups 1 or depthwise), BatchNormalization, Relu, Clip (0..6), HardSwish, "
             "Sigmoid, Tanh, Softmax, Gemm, MatMul, MaxPool, AveragePool, GlobalAveragePool, "
             "ReduceMean (spatial), Flatten, Reshape (flatten), Add, Mul, Concat, Identity, Dropout, Constant")


@dataclass
class Value:
    """A Keras tensor standing for an ONNX activation. channels_last: the
    Keras tensor holds an ONNX channels-first tensor transposed (rank 3/4)."""
    tensor: object
    onnx_shape: tuple[int, ...]
    channels_last: bool


def _attrs(node) -> dict:
    import onnx
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _label(node) -> str:
    return f"{node.op_type} node {node.name or (node.output[0] if node.output else '?')!r}"


def _refuse(node, what: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"{_label(node)}: {what}")


def _tf_same(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) for one spatial axis."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


class Builder:
    def __init__(self, model):
        import onnx
        from onnx import numpy_helper

        self.onnx = onnx
        self.graph = model.graph
        self.consts: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.values: dict[str, Value] = {}
        self.consumers: dict[str, list] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.flat_order: dict[str, np.ndarray] = {}  # flattened values whose features are reordered
        self.folded: set[int] = set()  # Add nodes already folded into a MatMul as its bias
        self._fix_batch(model)
        self.shapes = self._shapes(model)
        _, self.input_shape, self.input_layout = self._input()

    # ------------------------------------------------------------ helpers

    def _fix_batch(self, model) -> None:
        """A dynamic batch dimension is fixed to 1 (the microcontroller runs one
        sample at a time) before shape inference, so every shape is static."""
        for inp in model.graph.input:
            dims = inp.type.tensor_type.shape.dim
            if inp.name not in self.consts and len(dims) and not dims[0].HasField("dim_value"):
                dims[0].dim_value = 1
        for out in model.graph.output:
            dims = out.type.tensor_type.shape.dim
            if len(dims) and not dims[0].HasField("dim_value"):
                dims[0].dim_value = 1

    def _shapes(self, model) -> dict[str, tuple]:
        """Static shapes of every value, at batch 1, from ONNX shape inference."""
        onnx = self.onnx
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
        except Exception:
            inferred = model
        shapes = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            dims = vi.type.tensor_type.shape.dim
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
        return shapes

    def static_shape(self, node) -> tuple | None:
        """The inferred shape of the node's output, if every non-batch dimension is known."""
        shape = self.shapes.get(node.output[0])
        return shape if shape and all(isinstance(d, int) and d > 0 for d in shape[1:]) else None

    def const(self, node, index: int, what: str) -> np.ndarray:
        name = node.input[index] if index < len(node.input) else ""
        if name not in self.consts:
            raise _refuse(node, f"{what} must be a constant (an initializer)")
        return self.consts[name]

    def value(self, node, index: int = 0) -> Value:
        name = node.input[index]
        if name not in self.values:
            if name in self.consts:
                raise _refuse(node, f"constant input {name!r} where an activation is expected")
            raise ModelError(f"{_label(node)} reads {name!r}, which no earlier node computes")
        return self.values[name]

    def put(self, node, tensor, onnx_shape, channels_last: bool) -> None:
        shape = (1,) + tuple(onnx_shape)[1:]  # batch 1 throughout
        self.values[node.output[0]] = Value(tensor, shape, channels_last)

    def keras_axis(self, v: Value, axis: int) -> int:
        rank = len(v.onnx_shape)
        axis = axis % rank
        if not v.channels_last:
            return axis
        return rank - 1 if axis == 1 else (axis - 1 if axis >= 2 else 0)

    # ------------------------------------------------------------ build

    def _input(self):
        """The one float input, its batch fixed to 1: (value info, dims, layout
        name). Known before Keras loads, so calibration data can be checked
        against it first."""
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1 or len(self.graph.output) != 1:
            raise ModelError(f"the ONNX model has {len(inputs)} inputs and {len(self.graph.output)} "
                             "outputs; tinycomp supports exactly one of each")
        inp = inputs[0]
        elem = inp.type.tensor_type.elem_type
        if elem != self.onnx.TensorProto.FLOAT:
            raise ModelError(f"the model input {inp.name!r} is "
                             f"{self.onnx.TensorProto.DataType.Name(elem).lower()}; "
                             "tinycomp takes float32 models (it quantizes them itself)")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
        if not dims:
            raise ModelError(f"the model input {inp.name!r} has no shape")
        # A dynamic batch dimension is fixed to 1, as the microcontroller runs one sample.
        dims[0] = 1
        if any(d is None or d <= 0 for d in dims[1:]):
            raise ModelError(f"the model input {inp.name!r} has unknown dimensions "
                             f"{['N' if d is None else d for d in dims]}; export it with a fixed sample shape")
        if len(dims) not in (2, 3, 4):
            raise ModelError(f"the model input {inp.name!r} has rank {len(dims)}; tinycomp takes "
                             "(N, features), (N, C, L) or (N, C, H, W)")
        return inp, tuple(dims), {2: "(N, features)", 3: "NCL", 4: "NCHW"}[len(dims)]

    def build(self):
        import keras
        from keras import layers

        inp, dims, _ = self._input()
        self.shapes[inp.name] = dims
        x = keras.Input(tuple(dims[1:]), batch_size=1, name="input")
        rank = len(dims)
        if rank in (3, 4):
            c = dims[1]
            inner = tuple(dims[2:]) + (c,)
            # One channel, or no spatial extent: channels-first and
            # channels-last are the same bytes, and a RESHAPE costs no code.
            same_bytes = c == 1 or all(d == 1 for d in dims[2:])
            t = layers.Reshape(inner)(x) if same_bytes else layers.Permute(tuple(range(2, rank)) + (1,))(x)
            self.values[inp.name] = Value(t, tuple(dims), True)
        else:
            self.values[inp.name] = Value(x, tuple(dims), False)

        for node in self.graph.node:
            handler = getattr(self, "op_" + node.op_type, None)
            if node.domain not in ("", "ai.onnx") or handler is None:
                raise UnsupportedOpError(
                    f"unsupported op {node.op_type} at node {node.name or node.output[0]!r}; "
                    f"tinycomp converts {SUPPORTED}")
            try:
                handler(node)
            except TinycompError:
                raise
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                # Keras refusing a shape or weight: a model outside what the
                # handlers check, named rather than shown as a traceback.
                raise ModelError(f"{_label(node)}: cannot convert: {' '.join(str(exc).split())[:200]}") from None

        out = self.values.get(self.graph.output[0].name)
        if out is None:
            raise ModelError(f"the model output {self.graph.output[0].name!r} is not computed by any node")
        y = out.tensor
        if (out.channels_last and len(out.onnx_shape) > 2 and out.onnx_shape[1] > 1
                and any(d > 1 for d in out.onnx_shape[2:])):
            rank = len(out.onnx_shape)
            y = layers.Permute((rank - 1,) + tuple(range(1, rank - 1)))(y)
        elif out.channels_last:
            y = layers.Reshape(tuple(out.onnx_shape[1:]))(y)
        if self.graph.output[0].name in self.flat_order:
            raise ModelError("the model output is a flattened feature map; end the model with a Linear layer")
        return keras.Model(x, y, name="onnx_model")

    # ------------------------------------------------------------ ops

    def _layer(self, node, layer, v: Value, onnx_shape, channels_last=None):
        y = layer(v.tensor)
        self.put(node, y, onnx_shape, v.channels_last if channels_last is None else channels_last)
        return layer

    def _spatial_pads(self, node, v: Value, kernel, strides, dilations, a) -> tuple[str, list]:
        """('same' | 'valid', explicit (before, after) per spatial axis or [])."""
        spatial = v.onnx_shape[2:]
        n = len(spatial)
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        same = [_tf_same(s, k, st, d) for s, k, st, d in zip(spatial, kernel, strides, dilations)]
        if auto == "VALID":
            return "valid", []
        if auto in ("SAME_UPPER",):
            return "same", []
        if auto not in ("NOTSET", ""):
            raise _refuse(node, f"auto_pad {auto} is not supported")
        pads = list(a.get("pads", [0] * (2 * n)))
        pairs = [(int(pads[i]), int(pads[i + n])) for i in range(n)]
        if all(p == (0, 0) for p in pairs):
            return "valid", []
        if pairs == same:
            return "same", []
        return "valid", pairs

    def _conv_geometry(self, node, v, kernel_rank):
        a = _attrs(node)
        kernel = list(a.get("kernel_shape", []))
        strides = list(a.get("strides", [1] * kernel_rank))
        dilations = list(a.get("dilations", [1] * kernel_rank))
        return a, kernel, strides, dilations

    def op_Conv(self, node):
        from keras import layers
        v = self.value(node)
        w = self.const(node, 1, "the weight")
        b = self.const(node, 2, "the bias") if len(node.input) > 2 and node.input[2] else None
        rank = len(v.onnx_shape)
        if rank not in (3, 4) or w.ndim != rank:
            raise _refuse(node, f"only 1-D and 2-D convolutions are supported (input rank {rank})")
        a, _, strides, dilations = self._conv_geometry(node, v, rank - 2)
        kernel = list(w.shape[2:])
        group = int(a.get("group", 1))
        cin, cout = v.onnx_shape[1], w.shape[0]
        if any(s > 1 for s in strides) and any(d > 1 for d in dilations):
            raise _refuse(node, "strides and dilations above 1 together are not supported")
        padding, pads = self._spatial_pads(node, v, kernel, strides, dilations, a)
        t = v.tensor
        if pads:
            t = (layers.ZeroPadding2D(tuple(pads)) if rank == 4 else layers.ZeroPadding1D(pads[0]))(t)
        two_d = rank == 4
        common = dict(strides=tuple(strides), padding=padding, dilation_rate=tuple(dilations),
                      use_bias=b is not None, name=None)
        if group == 1:
            layer = (layers.Conv2D if two_d else layers.Conv1D)(cout, tuple(kernel), **common)
            # ONNX (O, I, kh, kw) -> Keras (kh, kw, I, O)
            kernel_w = np.transpose(w, tuple(range(2, rank)) + (1, 0))
        elif group == cin and cout % cin == 0:
            mult = cout // cin
            layer = (layers.DepthwiseConv2D if two_d else layers.DepthwiseConv1D)(
                tuple(kernel), depth_multiplier=mult, **common)
            # ONNX (C*m, 1, k...) -> Keras (k..., C, m); output channel c*m + j is (c, j) in both.
            kernel_w = np.transpose(w.reshape((cin, mult) + tuple(kernel)),
                                    tuple(range(2, rank)) + (0, 1))
        else:
            raise _refuse(node, f"grouped convolution with {group} groups of {cin} channels is not "
                          "supported (groups 1 or depthwise only)")
        y = layer(t)
        layer.set_weights([kernel_w.astype(np.float32)] + ([b.astype(np.float32)] if b is not None else []))
        self.put(node, y, self.static_shape(node) or self._conv_out(v, cout, kernel, strides,
                                                                   dilations, padding, pads), True)

    def _conv_out(self, v, cout, kernel, strides, dilations, padding, pads):
        spatial = []
        for i, (s, k, st, d) in enumerate(zip(v.onnx_shape[2:], kernel, strides, dilations)):
            if pads:
                s += sum(pads[i])
            eff = (k - 1) * d + 1
            spatial.append(-(-s // st) if padding == "same" else (s - eff) // st + 1)
        return (1, cout, *spatial)

    def op_BatchNormalization(self, node):
        from keras import layers
        v = self.value(node)
        a = _attrs(node)
        if len(node.output) > 1 and any(node.output[1:]):
            raise _refuse(node, "training-mode batch normalization; export the model in eval() mode")
        gamma, beta, mean, var = (self.const(node, i, n).astype(np.float32)
                                  for i, n in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
        layer = layers.BatchNormalization(axis=-1 if v.channels_last else 1,
                                          epsilon=float(a.get("epsilon", 1e-5)))
        self._layer(node, layer, v, v.onnx_shape)
        layer.set_weights([gamma, beta, mean, var])

    def _unary(self, node, layer):
        v = self.value(node)
        if node.input[0] in self.flat_order:
            self.flat_order[node.output[0]] = self.flat_order[node.input[0]]
        self._layer(node, layer, v, v.onnx_shape)

    def op_Relu(self, node):
        from keras import layers
        self._unary(node, layers.ReLU())

    def op_Clip(self, node):
        from keras import layers
        a = _attrs(node)
        lo = a.get("min", None)
        hi = a.get("max", None)
        if len(node.input) > 1 and node.input[1]:
            lo = float(self.const(node, 1, "min"))
        if len(node.input) > 2 and node.input[2]:
            hi = float(self.const(node, 2, "max"))
        if lo == 0 and hi == 6:
            return self._unary(node, layers.ReLU(max_value=6.0))
        if lo == 0 and hi is None:
            return self._unary(node, layers.ReLU())
        raise _refuse(node, f"Clip({lo}, {hi}) is not supported (ReLU6 = Clip(0, 6) is)")

    def op_HardSwish(self, node):
        from keras import layers
        self._unary(node, layers.Activation("hard_silu"))

    def op_Sigmoid(self, node):
        from keras import layers
        self._unary(node, layers.Activation("sigmoid"))

    def op_Tanh(self, node):
        from keras import layers
        self._unary(node, layers.Activation("tanh"))

    def op_Softmax(self, node):
        from keras import layers
        v = self.value(node)
        axis = int(_attrs(node).get("axis", -1))
        if len(v.onnx_shape) != 2 or axis % 2 != 1:
            raise _refuse(node, "softmax is supported over the features of an (N, features) tensor")
        self._layer(node, layers.Softmax(axis=-1), v, v.onnx_shape)

    def op_Constant(self, node):
        """Constants as nodes (the TorchScript exporter writes Clip's bounds so)."""
        from onnx import numpy_helper
        a = _attrs(node)
        if "value" in a:
            value = numpy_helper.to_array(a["value"])
        else:
            keys = [k for k in ("value_float", "value_floats", "value_int", "value_ints") if k in a]
            if not keys:
                raise _refuse(node, f"constant of kind {sorted(a)} is not supported")
            value = np.asarray(a[keys[0]], np.float32 if "float" in keys[0] else np.int64)
        self.consts[node.output[0]] = value

    def op_Identity(self, node):
        self.values[node.output[0]] = self.value(node)
        if node.input[0] in self.flat_order:
            self.flat_order[node.output[0]] = self.flat_order[node.input[0]]

    op_Dropout = op_Identity

    def _dense(self, node, v: Value, kernel: np.ndarray, bias):
        from keras import layers
        if len(v.onnx_shape) != 2:
            raise _refuse(node, f"a fully connected layer on a rank-{len(v.onnx_shape)} input is not supported")
        order = self.flat_order.get(node.input[0])
        if order is not None:  # the Keras features are the ONNX ones permuted
            kernel = kernel[order]
        layer = layers.Dense(kernel.shape[1], use_bias=bias is not None)
        self._layer(node, layer, v, (1, kernel.shape[1]), channels_last=False)
        layer.set_weights([kernel.astype(np.float32)] + ([np.asarray(bias, np.float32)] if bias is not None else []))

    def op_Gemm(self, node):
        v = self.value(node)
        a = _attrs(node)
        if a.get("transA", 0):
            raise _refuse(node, "transA is not supported")
        w = self.const(node, 1, "the weight").astype(np.float64) * float(a.get("alpha", 1.0))
        kernel = w.T if a.get("transB", 0) else w
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = np.broadcast_to(self.const(node, 2, "the bias") * float(a.get("beta", 1.0)),
                                   (kernel.shape[1],))
        self._dense(node, v, kernel, bias)

    def op_MatMul(self, node):
        v = self.value(node)
        w = self.const(node, 1, "the second operand")
        if w.ndim != 2:
            raise _refuse(node, "only (N, features) x constant matrix products are supported")
        # A bias added right after becomes the Dense layer's bias.
        users = self.consumers.get(node.output[0], [])
        bias = None
        if len(users) == 1 and users[0].op_type == "Add":
            other = [n for n in users[0].input if n != node.output[0]]
            if len(other) == 1 and other[0] in self.consts and self.consts[other[0]].size == w.shape[1]:
                bias = self.consts[other[0]].reshape(-1)
        self._dense(node, v, w, bias)
        if bias is not None:
            self.values[users[0].output[0]] = self.values[node.output[0]]
            self.folded.add(id(users[0]))

    def _binary(self, node, layer_cls):
        if id(node) in self.folded:
            return  # a bias already folded into the MatMul before it
        if len(node.input) != 2 or any(n in self.consts for n in node.input):
            raise _refuse(node, "only two computed tensors are supported (no constant operand)")
        a, b = self.value(node, 0), self.value(node, 1)
        if a.onnx_shape != b.onnx_shape or a.channels_last != b.channels_last:
            raise _refuse(node, f"operands of shapes {list(a.onnx_shape)} and {list(b.onnx_shape)} "
                          "(broadcasting is not supported)")
        if self.flat_order.get(node.input[0]) is not None or self.flat_order.get(node.input[1]) is not None:
            raise _refuse(node, "operands are flattened feature maps")
        self.put(node, layer_cls()([a.tensor, b.tensor]), a.onnx_shape, a.channels_last)

    def op_Add(self, node):
        from keras import layers
        self._binary(node, layers.Add)

    def op_Mul(self, node):
        from keras import layers
        self._binary(node, layers.Multiply)

    def op_Concat(self, node):
        from keras import layers
        vs = [self.value(node, i) for i in range(len(node.input))]
        if any(n in self.consts for n in node.input):
            raise _refuse(node, "constant operands are not supported")
        if len({v.channels_last for v in vs}) != 1 or len({len(v.onnx_shape) for v in vs}) != 1:
            raise _refuse(node, "operands of different ranks")
        axis = int(_attrs(node).get("axis", 1))
        rank = len(vs[0].onnx_shape)
        if axis % rank == 0:
            raise _refuse(node, "concatenation along the batch axis")
        shape = list(vs[0].onnx_shape)
        shape[axis % rank] = sum(v.onnx_shape[axis % rank] for v in vs)
        y = layers.Concatenate(axis=self.keras_axis(vs[0], axis))([v.tensor for v in vs])
        self.put(node, y, shape, vs[0].channels_last)

    def _pool(self, node, kind: str):
        from keras import layers
        v = self.value(node)
        rank = len(v.onnx_shape)
        if rank not in (3, 4):
            raise _refuse(node, f"pooling a rank-{rank} tensor")
        a = _attrs(node)
        kernel = list(a["kernel_shape"])
        strides = list(a.get("strides", [1] * len(kernel)))
        if any(d != 1 for d in a.get("dilations", [1] * len(kernel))):
            raise _refuse(node, "dilated pooling is not supported")
        if a.get("ceil_mode", 0):
            raise _refuse(node, "ceil_mode=True is not supported")
        padding, pads = self._spatial_pads(node, v, kernel, strides, [1] * len(kernel), a)
        if pads:
            raise _refuse(node, f"padding {pads} is not supported (none, or TensorFlow's SAME)")
        if kind == "avg" and padding == "same" and a.get("count_include_pad", 0):
            # TFLite averages over the valid taps only.
            raise _refuse(node, "count_include_pad=True with padding is not supported")
        cls = {("max", 4): layers.MaxPooling2D, ("max", 3): layers.MaxPooling1D,
               ("avg", 4): layers.AveragePooling2D, ("avg", 3): layers.AveragePooling1D}[(kind, rank)]
        layer = cls(pool_size=tuple(kernel), strides=tuple(strides), padding=padding)
        out = self.static_shape(node) or self._conv_out(v, v.onnx_shape[1], kernel, strides,
                                                                [1] * len(kernel), padding, [])
        self._layer(node, layer, v, out)

    def op_MaxPool(self, node):
        if len(node.output) > 1 and any(node.output[1:]):
            raise _refuse(node, "pooling indices are not supported")
        self._pool(node, "max")

    def op_AveragePool(self, node):
        self._pool(node, "avg")

    def _global_mean(self, node, keepdims: bool):
        from keras import layers
        v = self.value(node)
        rank = len(v.onnx_shape)
        cls = layers.GlobalAveragePooling2D if rank == 4 else layers.GlobalAveragePooling1D
        if rank not in (3, 4):
            raise _refuse(node, f"a global mean of a rank-{rank} tensor")
        c = v.onnx_shape[1]
        if keepdims:
            self._layer(node, cls(keepdims=True), v, (1, c) + (1,) * (rank - 2))
        else:
            self._layer(node, cls(), v, (1, c), channels_last=False)

    def op_GlobalAveragePool(self, node):
        self._global_mean(node, True)

    def op_ReduceMean(self, node):
        v = self.value(node)
        a = _attrs(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.const(node, 1, "axes").reshape(-1).tolist()
        rank = len(v.onnx_shape)
        if axes is None or sorted(int(x) % rank for x in axes) != list(range(2, rank)):
            raise _refuse(node, f"mean over axes {axes} (the spatial axes only are supported)")
        self._global_mean(node, bool(a.get("keepdims", 1)))

    def _flatten(self, node):
        from keras import layers
        v = self.value(node)
        shape = v.onnx_shape
        features = int(np.prod(shape[1:]))
        if not v.channels_last or all(d == 1 for d in shape[2:]) or shape[1] == 1:
            # Same order of the features in both layouts: a reshape, no code.
            self._layer(node, layers.Reshape((features,)), v, (1, features), channels_last=False)
            return
        users = self.consumers.get(node.output[0], [])
        if users and all(u.op_type in ("Gemm", "MatMul") and u.input[0] == node.output[0] for u in users):
            # Keras flattens (H, W, C); ONNX flattens (C, H, W). The dense
            # layer reads ONNX feature order[i] at Keras position i.
            order = np.arange(features).reshape(shape[1:])
            order = np.transpose(order, tuple(range(1, len(shape) - 1)) + (0,)).reshape(-1)
            self.flat_order[node.output[0]] = order
            self._layer(node, layers.Reshape((features,)), v, (1, features), channels_last=False)
            return
        rank = len(shape)
        t = layers.Permute((rank - 1,) + tuple(range(1, rank - 1)))(v.tensor)  # back to channels-first
        self.put(node, layers.Reshape((features,))(t), (1, features), False)

    def op_Flatten(self, node):
        v = self.value(node)
        if int(_attrs(node).get("axis", 1)) % max(len(v.onnx_shape), 1) != 1:
            raise _refuse(node, "flatten from an axis other than 1")
        self._flatten(node)

    def op_Reshape(self, node):
        v = self.value(node)
        target = [int(d) for d in self.const(node, 1, "the target shape").reshape(-1)]
        features = int(np.prod(v.onnx_shape[1:]))
        if len(target) == 2 and target[0] in (1, -1, 0) and target[1] in (-1, features):
            return self._flatten(node)
        if len(target) == 2 and target[1] == features and target[0] in (1, -1, 0):
            return self._flatten(node)
        raise _refuse(node, f"reshape of {list(v.onnx_shape)} to {target} (only flattening to "
                      "(N, features) is supported)")


