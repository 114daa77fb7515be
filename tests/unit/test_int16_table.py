"""The front end lets int16 activations through exactly the ops the kernel
table has an int16 row for (besides the aliases, which need no kernel)."""
from tinycomp.codegen.table import KERNELS
from tinycomp.frontends.tflite import INT16_OPS


def test_int16_ops_match_the_kernel_table():
    with_rows = {op for op, src, dst in KERNELS if "int16" in (src, dst)}
    aliases = {op for op in INT16_OPS if op.is_alias}
    assert INT16_OPS - aliases == with_rows
