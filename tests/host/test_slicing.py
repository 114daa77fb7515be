"""STRIDED_SLICE, SLICE, SPLIT, SPLIT_V, GATHER, PACK, DEPTH_TO_SPACE,
SPACE_TO_DEPTH and RESIZE_NEAREST_NEIGHBOR on the host, bit-exact with
TFLM, and SHAPE (with the shape arithmetic after it) folded at build time.
Output shapes in the tests come from numpy's own slicing, not from
tinycomp."""
import numpy as np
import pytest

from tinycomp.codegen.generate import generate
from tinycomp.errors import ModelError, UnsupportedOpError
from tinycomp.frontends.tflite import parse_tflite
from tests.support.harness import assert_bit_exact
from tests.support.tflite_builder import ModelBuilder, random_activation_quant, random_int8

N = 40


def _io(rng, shape):
    b = ModelBuilder()
    return b, b.input(shape, *random_activation_quant(rng))


def _check(b, rng, shape):
    assert_bit_exact(b.build(), random_int8(rng, (N, *shape)))


def _shape(rng, rank, lo=1, hi=6):
    return tuple(int(v) for v in rng.integers(lo, hi + 1, size=rank))


def _i32(b, values):
    return b.const_int32(np.asarray(values, np.int32))


def _strided_slice_params(rng, shape):
    """begin, end, strides, masks and numpy's slices for them (empty results redrawn)."""
    while True:
        begin, end, strides, slices = [], [], [], []
        bm = em = sm = 0
        for d, size in enumerate(shape):
            step = int(rng.choice([1, 1, 2, 3, -1, -2]))
            b0, e0 = int(rng.integers(-size - 2, size + 2)), int(rng.integers(-size - 2, size + 2))
            if step < 0 and rng.random() < 0.5:
                b0, e0 = max(b0, e0), min(b0, e0)
            elif step > 0 and rng.random() < 0.5:
                b0, e0 = min(b0, e0), max(b0, e0)
            mb, me = rng.random() < 0.25, rng.random() < 0.25
            shrink = d > 0 and rng.random() < 0.15
            bm |= mb << d
            em |= me << d
            if shrink:
                b0, step = int(rng.integers(-size, size)), 1
                sm |= 1 << d
                slices.append(b0)
            else:
                slices.append(slice(None if mb else b0, None if me else e0, step))
            begin.append(b0)
            end.append(e0)
            strides.append(step)
        expected = np.empty(shape)[tuple(slices)].shape
        if 0 not in expected:
            return begin, end, strides, bm, em, sm, expected


@pytest.mark.parametrize("seed", range(16))
def test_strided_slice_random(seed):
    rng = np.random.default_rng(10000 + seed)
    rank = [4, 3, 2, 1][seed % 4]
    shape = (1,) + _shape(rng, rank - 1, 2, 7) if rank > 1 else _shape(rng, 1, 2, 9)
    begin, end, strides, bm, em, sm, expected = _strided_slice_params(rng, shape)
    b, x = _io(rng, shape)
    y = b.tensor(expected, b.info(x).scale, b.info(x).zero_point)
    b.op("STRIDED_SLICE", [x, _i32(b, begin), _i32(b, end), _i32(b, strides)], [y],
         begin_mask=bm, end_mask=em, shrink_axis_mask=sm)
    b.output(y)
    _check(b, rng, shape)


@pytest.mark.parametrize("seed", range(8))
def test_slice_random(seed):
    rng = np.random.default_rng(10100 + seed)
    shape = (1,) + _shape(rng, 3, 1, 7)
    begin = [int(rng.integers(0, d)) for d in shape]
    size = [int(rng.integers(1, d - bg + 1)) if rng.random() < 0.7 else -1 for d, bg in zip(shape, begin)]
    expected = np.empty(shape)[tuple(slice(bg, None if s == -1 else bg + s) for bg, s in zip(begin, size))].shape
    b, x = _io(rng, shape)
    y = b.tensor(expected, b.info(x).scale, b.info(x).zero_point)
    b.op("SLICE", [x, _i32(b, begin), _i32(b, size)], [y])
    b.output(y)
    _check(b, rng, shape)


@pytest.mark.parametrize("seed", range(8))
def test_split_and_split_v(seed):
    rng = np.random.default_rng(10200 + seed)
    shape = (1,) + _shape(rng, 3, 1, 4)
    axis = int(rng.integers(-4, 4))
    ax = axis % 4
    b, x = _io(rng, shape)
    q = b.info(x)
    if seed % 2 == 0:  # SPLIT: equal parts
        n = int(rng.choice([k for k in (1, 2, 3, 4) if shape[ax] * 2 % k == 0]))
        x = b.concatenation([x, x], ax)  # double the axis so it divides more often
        full = list(shape)
        full[ax] *= 2
        if full[ax] % n:
            n = 1
        parts = [tuple(full[:ax] + [full[ax] // n] + full[ax + 1:])] * n
        ys = [b.tensor(p, q.scale, q.zero_point) for p in parts]
        b.op("SPLIT", [_i32(b, [axis]), x], ys, num_splits=n)
    else:  # SPLIT_V with a -1 size
        total = shape[ax] + 3
        x = b.pad(x, [[0, 3 if d == ax else 0] for d in range(4)])
        cut = sorted(rng.choice(np.arange(1, total), size=min(2, total - 1), replace=False).tolist())
        sizes = np.diff([0] + cut + [total]).tolist()
        given = list(sizes)
        given[int(rng.integers(len(given)))] = -1
        ys = [b.tensor(tuple(shape[:ax]) + (s,) + tuple(shape[ax + 1:]), q.scale, q.zero_point) for s in sizes]
        b.op("SPLIT_V", [x, _i32(b, given), _i32(b, [axis])], ys, num_splits=len(ys))
    b.output(*ys)
    _check(b, rng, shape)


@pytest.mark.parametrize("seed", range(8))
def test_gather_random(seed):
    rng = np.random.default_rng(10300 + seed)
    shape = (1,) + _shape(rng, 3, 1, 6) if seed % 3 else _shape(rng, 2, 2, 9)
    axis = int(rng.integers(-len(shape), len(shape)))
    ishape = [(), (3,), (2, 3), (5,)][seed % 4]
    indices = rng.integers(0, shape[axis], size=ishape).astype(np.int32)  # repeats allowed
    expected = np.take(np.empty(shape), indices, axis=axis).shape
    b, x = _io(rng, shape)
    y = b.tensor(expected, b.info(x).scale, b.info(x).zero_point)
    b.op("GATHER", [x, b.const_int32(indices)], [y], axis=axis)
    b.output(y)
    _check(b, rng, shape)


@pytest.mark.parametrize("seed", range(6))
def test_pack_random(seed):
    rng = np.random.default_rng(10400 + seed)
    shape = (1,) + _shape(rng, 2, 1, 5) if seed % 2 else _shape(rng, 3, 1, 4)
    b, x = _io(rng, shape)
    q = b.info(x)
    count = int(rng.integers(2, 5))
    ins = [x]
    for k in range(1, count):
        if k % 2:
            ins.append(b.const_int8(random_int8(rng, shape), scales=q.scale, zero_points=q.zero_point))
        else:
            ins.append(b.relu(x))
    axis = int(rng.integers(-len(shape) - 1, len(shape) + 1))
    expected = np.stack([np.empty(shape)] * count, axis=axis).shape
    y = b.tensor(expected, q.scale, q.zero_point)
    b.op("PACK", ins, [y], axis=axis, values_count=count)
    b.output(y)
    _check(b, rng, shape)


@pytest.mark.parametrize("block,seed", [(2, 0), (3, 1), (2, 2), (1, 3), (4, 4)])
def test_depth_to_space_and_back(block, seed):
    rng = np.random.default_rng(10500 + seed)
    h, w, c = int(rng.integers(1, 4)), int(rng.integers(1, 4)), block * block * int(rng.integers(1, 4))
    b, x = _io(rng, (1, h, w, c))
    q = b.info(x)
    d = b.tensor((1, h * block, w * block, c // (block * block)), q.scale, q.zero_point)
    b.op("DEPTH_TO_SPACE", [x], [d], block_size=block)
    e = b.tensor((1, h, w, c), q.scale, q.zero_point)
    b.op("SPACE_TO_DEPTH", [b.relu(d)], [e], block_size=block)
    b.output(e, d)
    _check(b, rng, (1, h, w, c))


RESIZES = [((3, 4), (6, 8), False, False), ((3, 4), (7, 5), False, False), ((5, 6), (2, 3), False, False),
           ((3, 4), (6, 9), True, False), ((3, 4), (5, 7), False, True), ((4, 4), (3, 9), True, True),
           ((1, 1), (4, 3), False, False), ((6, 5), (6, 5), False, True), ((2, 7), (1, 1), True, False),
           ((4, 3), (11, 7), False, True)]


@pytest.mark.parametrize("case", RESIZES, ids=lambda c: f"{c[0]}to{c[1]}-a{int(c[2])}h{int(c[3])}")
def test_resize_nearest_neighbor(case):
    (h, w), (oh, ow), align, half = case
    rng = np.random.default_rng(10600 + h * 10 + oh)
    c = 3
    b, x = _io(rng, (1, h, w, c))
    q = b.info(x)
    y = b.tensor((1, oh, ow, c), q.scale, q.zero_point)
    b.op("RESIZE_NEAREST_NEIGHBOR", [x, _i32(b, [oh, ow])], [y], align_corners=align, half_pixel_centers=half)
    b.output(y)
    _check(b, rng, (1, h, w, c))


def _dynamic_batch_reshape(b, x, tail):
    """What the converter writes for a reshape with a dynamic batch: SHAPE ->
    STRIDED_SLICE (the batch) -> PACK with the other dims -> RESHAPE."""
    rank = len(b.info(x).shape)
    shp = b.tensor((rank,), dtype=np.int32)
    b.op("SHAPE", [x], [shp], out_type=2)
    batch = b.tensor((), dtype=np.int32)
    b.op("STRIDED_SLICE", [shp, _i32(b, [0]), _i32(b, [1]), _i32(b, [1])], [batch], shrink_axis_mask=1)
    new = b.tensor((1 + len(tail),), dtype=np.int32)
    b.op("PACK", [batch] + [b.const_int32(np.array(t, np.int32)) for t in tail], [new],
         axis=0, values_count=1 + len(tail))
    q = b.info(x)
    y = b.tensor((1, *tail), q.scale, q.zero_point)
    b.op("RESHAPE", [x, new], [y])
    return y


def test_shape_strided_slice_pack_fold_at_build_time():
    rng = np.random.default_rng(10700)
    b, x = _io(rng, (1, 4, 3, 2))
    r = _dynamic_batch_reshape(b, b.relu(x), (24,))
    b.output(b.relu(r))
    model = b.build()
    graph = parse_tflite(model)
    assert [n.op.value for n in graph.nodes] == ["RELU", "RESHAPE", "RELU"]
    _check(b, rng, (1, 4, 3, 2))


def test_slicing_chain_under_ubsan():
    # every kernel of this family in one model, built with UBSan
    from tests.support.harness import compile_for_host
    from tests.support.tflm import run_tflm
    rng = np.random.default_rng(10800)
    b, x = _io(rng, (1, 6, 6, 4))
    q = b.info(x)
    s = b.tensor((1, 3, 2, 4), q.scale, q.zero_point)
    b.op("STRIDED_SLICE", [x, _i32(b, [0, 5, 1, 0]), _i32(b, [1, 0, 6, 4]), _i32(b, [1, -2, 3, 1])], [s])
    g = b.tensor((1, 3, 2, 3), q.scale, q.zero_point)
    b.op("GATHER", [s, b.const_int32(np.array([3, 0, 3], np.int32))], [g], axis=3)
    r = b.tensor((1, 5, 4, 3), q.scale, q.zero_point)
    b.op("RESIZE_NEAREST_NEIGHBOR", [g, _i32(b, [5, 4])], [r], half_pixel_centers=True)
    a, c = b.tensor((1, 2, 4, 3), q.scale, q.zero_point), b.tensor((1, 3, 4, 3), q.scale, q.zero_point)
    b.op("SPLIT_V", [r, _i32(b, [2, -1]), _i32(b, [1])], [a, c], num_splits=2)
    p = b.tensor((2, 1, 2, 4, 3), q.scale, q.zero_point)
    sl = b.tensor((1, 2, 4, 3), q.scale, q.zero_point)
    b.op("SLICE", [c, _i32(b, [0, 1, 0, 0]), _i32(b, [-1, 2, -1, -1])], [sl])
    b.op("PACK", [a, sl], [p], axis=0, values_count=2)
    b.output(p)
    model = b.build()
    inputs = random_int8(rng, (N, 1, 6, 6, 4))
    runner = compile_for_host(model, extra_flags=("-fsanitize=undefined", "-fno-sanitize-recover=all"))
    np.testing.assert_array_equal(runner.infer(inputs), run_tflm(model, inputs).reshape(N, -1))


# refusals and disagreements the validator should know about

def _refused(b, error, *fragments):
    with pytest.raises(error) as info:
        generate(parse_tflite(b.build()))
    for f in fragments:
        assert f in str(info.value), str(info.value)


def test_declared_shape_disagreeing_is_a_model_error():
    b, x = _io(np.random.default_rng(1), (1, 4, 4, 2))
    y = b.tensor((1, 2, 2, 2), 0.1, 0)
    b.op("SLICE", [x, _i32(b, [0, 1, 1, 0]), _i32(b, [1, 3, 2, 2])], [y])
    b.output(y)
    _refused(b, ModelError, "SLICE at layer 0", "[1, 2, 2, 2]", "[1, 3, 2, 2]")


def test_gather_index_out_of_range_is_a_model_error():
    b, x = _io(np.random.default_rng(2), (1, 5))
    y = b.tensor((1, 2), 0.1, 0)
    b.op("GATHER", [x, b.const_int32(np.array([1, 5], np.int32))], [y], axis=1)
    b.output(y)
    _refused(b, ModelError, "GATHER", "indices outside [0, 5)")


def test_strided_slice_ellipsis_is_refused():
    b, x = _io(np.random.default_rng(3), (1, 4, 4))
    y = b.tensor((1, 4, 2), 0.1, 0)
    b.op("STRIDED_SLICE", [x, _i32(b, [0, 0, 0]), _i32(b, [1, 4, 2]), _i32(b, [1, 1, 1])], [y],
         ellipsis_mask=1)
    b.output(y)
    _refused(b, UnsupportedOpError, "STRIDED_SLICE at layer 0", "ellipsis")


def test_gather_with_computed_indices_is_refused():
    b = ModelBuilder()
    x = b.input((1, 6), 0.1, 0)
    i = b.input((2,), None, dtype=np.int32)
    y = b.tensor((1, 2), 0.1, 0)
    b.op("GATHER", [x, i], [y], axis=1)
    b.output(y)
    with pytest.raises((UnsupportedOpError, ModelError)):
        generate(parse_tflite(b.build()))


def test_output_quantization_differing_is_copied_raw():
    # TFLM's Prepare accepts it (measured) and copies the bytes; so does tinycomp
    rng = np.random.default_rng(10900)
    b, x = _io(rng, (1, 4, 4, 4))

    def t(shape):
        return b.tensor(shape, 0.1, -7)

    s = t((1, 2, 4, 4))
    b.op("STRIDED_SLICE", [x, _i32(b, [0, 0, 0, 0]), _i32(b, [1, 2, 4, 4]), _i32(b, [1, 1, 1, 1])], [s])
    g = t((1, 4, 4, 2))
    b.op("GATHER", [x, _i32(b, [1, 2])], [g], axis=3)
    d = t((1, 8, 8, 1))
    b.op("DEPTH_TO_SPACE", [x], [d], block_size=2)
    r = t((1, 8, 8, 4))
    b.op("RESIZE_NEAREST_NEIGHBOR", [x, _i32(b, [8, 8])], [r])
    m = t((1, 4, 4, 4))
    b.op("MAXIMUM", [x, b.relu(x)], [m])
    b.output(s, g, d, r, m)
    _check(b, rng, (1, 4, 4, 4))


def test_output_that_folds_to_a_constant_is_refused():
    b, x = _io(np.random.default_rng(4), (1, 3, 2))
    c = b.const_int8(random_int8(np.random.default_rng(5), (1, 4)), scales=0.1, zero_points=0)
    y = b.tensor((1, 2), 0.1, 0)
    b.op("SLICE", [c, _i32(b, [0, 1]), _i32(b, [1, 2])], [y])
    b.output(b.relu(x), y)
    with pytest.raises(UnsupportedOpError, match="output 1 .* constant"):
        generate(parse_tflite(b.build()))
