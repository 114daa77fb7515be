"""What the tests of stateful models (SVDF, LSTM) share: input sequences,
the C program that checks tinycomp_reset_state() on the host, and the
firmware's RESET command in QEMU."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from tinycomp.codegen.generate import generate
from tinycomp.frontends.tflite import parse_tflite

from .tflm import run_tflm


def sequence(buf: bytes, seed: int, steps: int) -> list[np.ndarray]:
    """`steps` consecutive int8 samples per input, the first all 127 and the
    second all -128 (extremes first: they drive the state to its bounds)."""
    g = parse_tflite(buf, name="stateful")
    rng = np.random.default_rng(seed + 1000)
    ins = []
    for t in g.inputs:
        a = rng.integers(-128, 128, (steps, *g.tensor(t).shape), dtype=np.int64).astype(np.int8)
        a[0].fill(127)
        if steps > 1:
            a[1].fill(-128)
        ins.append(a)
    return ins


_RESET_MAIN = r"""
#include <stdio.h>
#include "tinycomp_model.h"
/* 2 x N inferences: N, reset, the same N again; prints every output byte */
int main(void)
{
    static TINYCOMP_INPUT_TYPE x[TINYCOMP_INPUT_SIZE];
    static TINYCOMP_OUTPUT_TYPE y[TINYCOMP_OUTPUT_SIZE];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < %(n)d; i++) {
            for (int k = 0; k < TINYCOMP_INPUT_SIZE; k++)
                x[k] = (TINYCOMP_INPUT_TYPE)((k * 37 + i * 11) %% 256 - 128);
            tinycomp_invoke(x, y);
            for (int k = 0; k < TINYCOMP_OUTPUT_SIZE; k++)
                printf("%%d ", y[k]);
            printf("\n");
        }
        tinycomp_reset_state();
    }
    printf("state %%d\n", TINYCOMP_STATE_BYTES);
    return 0;
}
"""


def check_c_api_reset(buf: bytes, n: int, tmp_path: Path, state_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Compile a program that runs n inferences, tinycomp_reset_state(), and
    the same n again: the two runs must be equal, equal to TFLM's first n,
    and TFLM's second n (no reset) must differ. Returns (our first n
    outputs, the n inputs)."""
    model = generate(parse_tflite(buf))
    assert model.state_bytes == state_bytes
    src = model.write(tmp_path / "src")
    (src / "main.c").write_text(_RESET_MAIN % {"n": n})
    exe = tmp_path / "a.out"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-O2", "-I", str(src), str(src / "main.c"),
                    str(src / "tinycomp_model.c"), str(src / "tinycomp_weights.c"), "-o", str(exe)],
                   check=True)
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines[-1] == f"state {state_bytes}"
    got = np.array([[int(v) for v in line.split()] for line in lines[:-1]])
    first, again = got[:n], got[n:]
    assert np.array_equal(first, again)
    shape = parse_tflite(buf).tensor(parse_tflite(buf).inputs[0]).shape
    size = int(np.prod(shape))
    xs = np.array([[(k * 37 + i * 11) % 256 - 128 for k in range(size)] for i in range(n)],
                  np.int8).reshape(n, *shape)
    ref = run_tflm(buf, np.concatenate([xs, xs]))
    assert np.array_equal(first, ref[:n].reshape(n, -1))
    assert not np.array_equal(ref[:n], ref[n:])  # TFLM without a reset carries the state on
    return first, xs


def check_reset_command(buf: bytes, seed: int, tmp_path: Path) -> None:
    """In QEMU: 4 inferences, the same 4 again (the state carries on, so they
    differ), RESET, the same 4 (equal to the first); the first equals TFLM's."""
    from tinycomp.pipeline import build_graph
    from tinycomp.targets import get_runner

    build_graph(parse_tflite(buf), buf, tmp_path / "b", "qemu")
    ins = sequence(buf, seed, 4)
    samples = [b"".join(np.ascontiguousarray(a[i]).tobytes() for a in ins) for i in range(4)]
    with get_runner("qemu", tmp_path / "b" / "build") as runner:
        first = [runner.infer(s).output for s in samples]
        carried = [runner.infer(s).output for s in samples]
        runner.reset_state()
        again = [runner.infer(s).output for s in samples]
    assert again == first
    assert carried != first  # without RESET the state carries on
    ref = run_tflm(buf, ins)
    assert b"".join(np.ascontiguousarray(r[0]).tobytes() for r in ref) == first[0]
