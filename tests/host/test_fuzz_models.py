"""Fuzzing the front end and code generator with mutated models.

hypothesis drives it: runs are derandomized (the same mutants on every
machine, so CI cannot flake), bounded by an example count, and a failure is
shrunk to the smallest (model, mutation, seed) and printed for replay with
tests.support.fuzz.mutate. Every mutant must be refused with a TinycompError,
or be accepted and then compile without a diagnostic, run under AddressSanitizer
and UndefinedBehaviorSanitizer without a finding, and equal TFLite Micro bit
for bit. A traceback, a hang, a crash, compiler output or a difference fails.
"""
from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fuzz import mutate, run_isolated, seed_models, with_explicit_depthwise_bias, with_names
from tests.support.harness import bits, compile_for_host
from tests.support.tflm import run_tflm
from tinycomp.codegen.generate import generate
from tinycomp.errors import TinycompError
from tinycomp.frontends.tflite import parse_tflite

SANITIZE = ("-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer")
SEEDS = seed_models()
OUTCOMES: dict[str, int] = {}
# `make fuzz` runs many more, from a fresh random seed each time.
EXAMPLES = int(os.environ.get("TINYCOMP_FUZZ_EXAMPLES", "3000"))
FUZZ = settings(max_examples=EXAMPLES, derandomize="TINYCOMP_FUZZ_EXAMPLES" not in os.environ,
                deadline=None, database=None, suppress_health_check=list(HealthCheck))


def _outcome(kind: str) -> None:
    OUTCOMES[kind] = OUTCOMES.get(kind, 0) + 1


def _samples(tensor, n: int = 3) -> np.ndarray:
    """Random samples for one model input, in its own type."""
    rng = np.random.default_rng(0)
    if tensor.dtype == "float32":
        return rng.normal(0, 2, (n, *tensor.shape)).astype(np.float32)
    info = np.iinfo(tensor.dtype)
    return rng.integers(info.min, info.max + 1, (n, *tensor.shape)).astype(tensor.dtype)


def _check_mutant(data: bytes) -> None:
    try:
        graph = parse_tflite(data, name="mutant")
        generate(graph)
    except TinycompError as exc:
        assert "\n" not in str(exc), str(exc)
        _outcome("refused")
        return
    inputs = [_samples(graph.tensor(t)) for t in graph.inputs]
    status, reference = run_isolated(run_tflm, with_explicit_depthwise_bias(data), inputs)
    assert status == "ok", f"tinycomp accepted a model TFLite Micro refuses ({status}: {reference})"
    ours = compile_for_host(data, SANITIZE).infer(inputs)  # a sanitizer finding fails the run
    ours, reference = (r if isinstance(r, list) else [r] for r in (ours, reference))
    for mine, ref in zip(ours, reference, strict=True):
        assert np.array_equal(bits(mine).reshape(-1), bits(ref).reshape(-1)), \
            "an accepted mutant differs from TFLite Micro"
    _outcome("accepted, bit-exact under ASan/UBSan")


@FUZZ
@given(model=st.sampled_from(range(len(SEEDS))), kind=st.sampled_from(["flip", "truncate", "field"]),
       seed=st.integers(0, 2**32 - 1))
def test_mutated_models_are_refused_or_exact(model, kind, seed):
    _check_mutant(mutate(SEEDS[model], kind, seed))


@settings(FUZZ, max_examples=25)
@given(name=st.text(min_size=1, max_size=80) | st.sampled_from(["*\\\n/", "??/", "*/", "\\\r\n", "/*"]))
def test_fuzzed_names_never_reach_c_raw(name):
    data = with_names(SEEDS[0], name + " */ int tinycomp_injected_symbol = 1; /* ")
    files = generate(parse_tflite(data)).files
    assert all(text.isascii() and "??" not in text and "\\\n" not in text for text in files.values())
    exe = compile_for_host(data).exe
    assert "tinycomp_injected_symbol" not in subprocess.run(["nm", str(exe)], capture_output=True,
                                                            text=True, check=True).stdout


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_seed_models_are_exact_under_sanitizers(index):
    _check_mutant(SEEDS[index])


def teardown_module():
    print(f"\nfuzz outcomes: {OUTCOMES}")
