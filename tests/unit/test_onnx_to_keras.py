"""Padding rules of the ONNX -> Keras builder: PyTorch's explicit pads become
Keras 'same' only where they equal TensorFlow's SAME split, else an explicit
PAD (TensorFlow puts the odd pixel after, PyTorch's padding=1 on both sides)."""
import pytest

from tinycomp.frontends.onnx_to_keras import _tf_same


@pytest.mark.parametrize("size, k, s, d, expected", [
    (8, 3, 1, 1, (1, 1)),   # padding=1: same
    (8, 3, 2, 1, (0, 1)),   # stride 2 on an even size: PyTorch's (1, 1) is not SAME
    (7, 3, 2, 1, (1, 1)),   # odd size: it is
    (8, 3, 1, 2, (2, 2)),   # dilation 2: padding=2 is SAME
    (8, 1, 1, 1, (0, 0)),
    (5, 4, 1, 1, (1, 2)),   # even kernel: the extra pixel goes after
    (4, 6, 1, 1, (2, 3)),   # kernel wider than the input
])
def test_tf_same(size, k, s, d, expected):
    assert _tf_same(size, k, s, d) == expected
