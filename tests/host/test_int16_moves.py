"""int16 values moved without arithmetic, bit-exact with TFLM: CONCATENATION,
PAD, TRANSPOSE, STRIDED_SLICE, SLICE, SPLIT, SPLIT_V, GATHER, PACK,
DEPTH_TO_SPACE, SPACE_TO_DEPTH, RESIZE_NEAREST_NEIGHBOR, RESHAPE: the same
kernels as int8 with two bytes per element (memcpy lengths, PAD's fill)."""
import numpy as np
import pytest

from tests.support.harness import assert_bit_exact
from tests.support.int16_cases import int16_samples
from tests.support.tflite_builder import ModelBuilder

I16 = np.int16


def _shape(rng, rank, lo=1, hi=6):
    return (1,) + tuple(int(v) for v in rng.integers(lo, hi + 1, size=rank - 1))


def _i32(b, values):
    return b.const_int32(np.asarray(values, np.int32))


def _model(op: str, seed: int):
    rng = np.random.default_rng(18000 + 50 * OPS.index(op) + seed)
    shape = _shape(rng, 4, 1, 5)
    s = float(np.float32(rng.uniform(1e-4, 1e-2)))
    b = ModelBuilder()
    x = b.input(shape, s, 0, dtype=I16)

    def t(sh):
        return b.tensor(tuple(sh), s, 0, dtype=I16)

    e = np.empty(shape)
    if op == "CONCATENATION":
        axis = int(rng.integers(0, 4))
        y = t(np.concatenate([e, e, e], axis).shape)
        b.op(op, [x, x, x], [y], axis=axis)
    elif op == "PAD":
        pads = rng.integers(0, 3, size=(4, 2))
        pads[0] = 0
        y = t(np.pad(e, pads).shape)
        b.op(op, [x, _i32(b, pads)], [y])
    elif op == "TRANSPOSE":
        perm = [0] + (1 + rng.permutation(3)).tolist()
        y = t(e.transpose(perm).shape)
        b.op(op, [x, _i32(b, perm)], [y])
    elif op == "STRIDED_SLICE":
        begin = [0] + [int(rng.integers(0, d)) for d in shape[1:]]
        strides = [1] + [int(rng.integers(1, 3)) for _ in shape[1:]]
        y = t(e[tuple(slice(bg, None, st) for bg, st in zip(begin, strides))].shape)
        b.op(op, [x, _i32(b, begin), _i32(b, list(shape)), _i32(b, strides)], [y])
    elif op == "SLICE":
        begin = [int(rng.integers(0, d)) for d in shape]
        size = [int(rng.integers(1, d - bg + 1)) for d, bg in zip(shape, begin)]
        y = t(size)
        b.op(op, [x, _i32(b, begin), _i32(b, size)], [y])
    elif op in ("SPLIT", "SPLIT_V"):
        xx = t(np.concatenate([e, e], 3).shape)
        b.op("CONCATENATION", [x, x], [xx], axis=3)
        c = 2 * shape[3]
        if op == "SPLIT":
            ys = [t(shape[:3] + (shape[3],)) for _ in range(2)]
            b.op(op, [_i32(b, [3]), xx], ys, num_splits=2)
        else:
            first = int(rng.integers(1, c)) if c > 1 else 1
            sizes = [first, c - first] if c - first else [first]
            ys = [t(shape[:3] + (n,)) for n in sizes]
            b.op(op, [xx, _i32(b, sizes), _i32(b, [3])], ys, num_splits=len(ys))
        b.output(*ys)
        return b.build(), int16_samples(rng, shape, 12)
    elif op == "GATHER":
        axis = int(rng.integers(1, 4))
        idx = rng.integers(0, shape[axis], size=(3,)).astype(np.int32)
        y = t(np.take(e, idx, axis=axis).shape)
        b.op(op, [x, b.const_int32(idx)], [y], axis=axis)
    elif op == "PACK":
        y = t(np.stack([e, e], 1).shape)
        b.op(op, [x, x], [y], axis=1, values_count=2)
    elif op == "DEPTH_TO_SPACE":
        bs = 2
        b = ModelBuilder()
        shape = (1, 2, 3, 8)
        x = b.input(shape, s, 0, dtype=I16)
        d = t((1, 4, 6, 2))
        b.op(op, [x], [d], block_size=bs)
        z = t(shape)
        b.op("SPACE_TO_DEPTH", [d], [z], block_size=bs)
        b.output(z, d)
        return b.build(), int16_samples(rng, shape, 12)
    elif op == "RESIZE_NEAREST_NEIGHBOR":
        oh, ow = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        y = t((1, oh, ow, shape[3]))
        b.op(op, [x, _i32(b, [oh, ow])], [y], align_corners=bool(seed % 2),
             half_pixel_centers=not seed % 2)
    elif op == "RESHAPE":
        r = b.reshape(x, (1, int(np.prod(shape))))
        y = t((1, int(np.prod(shape))))
        b.op("QUANTIZE", [r], [y])  # a kernel after the alias
    b.output(y)
    return b.build(), int16_samples(rng, shape, 12)


OPS = ["CONCATENATION", "PAD", "TRANSPOSE", "STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V",
       "PACK", "RESIZE_NEAREST_NEIGHBOR", "RESHAPE", "GATHER", "DEPTH_TO_SPACE"]
REFUSED = ["GATHER", "DEPTH_TO_SPACE"]  # TFLM has no int16 kernel: tinycomp refuses by name


@pytest.mark.parametrize("op", [op for op in OPS if op not in REFUSED])
@pytest.mark.parametrize("seed", range(3))
def test_int16_moves(op, seed):
    assert_bit_exact(*_model(op, seed))


@pytest.mark.parametrize("op", REFUSED)
def test_int16_moves_tflm_lacks_are_refused(op):
    from tinycomp.errors import UnsupportedOpError
    from tinycomp.frontends.tflite import parse_tflite
    with pytest.raises(UnsupportedOpError, match=rf"layer 0 \({op}.*int16 activation"):
        parse_tflite(_model(op, 0)[0])
