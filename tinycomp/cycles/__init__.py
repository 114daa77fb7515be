"""Cycle estimates for Cortex-M cores from the instruction stream QEMU runs.

QEMU counts instructions, not cycles. A small TCG plugin
(firmware/qemu_plugin/tc_trace.c) records, for one profiled inference, how
often each translated block ran per layer, whether its final branch was taken,
and the data reads that hit flash (through a model of the flash data cache) or
were unaligned. This package turns that summary into cycles with the core's
timing table from the board file:

    timing.py   the [timing] table of a board file (core + memory system)
    thumb.py    objdump's disassembly -> classified instructions
    model.py    cycles of a block (intra-block rules) and of a whole trace
    trace.py    build the plugin, run QEMU with it, read its summary
"""
