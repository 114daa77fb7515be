"""The model validator has a shape rule for every op tinycomp reads."""
from tinycomp.ir import Op
from tinycomp.ir.shapes import RULES


def test_every_op_has_a_shape_rule():
    assert set(RULES) == set(Op)

