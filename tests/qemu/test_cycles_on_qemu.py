"""`tinycomp profile --cycles` end to end on a small CNN: the QEMU plugin's
instruction counts agree with the firmware's SysTick count, per-layer cycles
sum to the total, and the timing board changes cycles and ms as it should."""
import json

import pytest

from tests.qemu.conftest import small_cnn
from tests.support.cli import assert_one_line_error, tinycomp as _tinycomp
from tinycomp.frontends.tflite import parse_tflite
from tinycomp.pipeline import build_graph

pytestmark = pytest.mark.qemu

TICK = 40   # instructions per SysTick tick on mps2-an386 under -icount shift=0


@pytest.fixture(scope="module")
def cnn_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("cycles")
    tflite = small_cnn()
    build_graph(parse_tflite(tflite, name="cnn"), tflite, root / "build", "qemu-mps2-an386")
    return root


def _profile(root, *args):
    out = root / f"p{len(list(root.glob('p*.json')))}.json"
    result = _tinycomp("profile", root / "build", "--cycles", *args, "--json", out)
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text()), result.stdout


def test_cycles_on_the_build_board(cnn_build):
    p, text = _profile(cnn_build)
    layers = p["layers"]
    assert [l["op"] for l in layers] == ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"]
    assert sum(l["cycles"] for l in layers) == p["cycles"]
    assert sum(l["instructions"] for l in layers) == p["instructions"]
    for l in layers:
        # Same run, two counters: the plugin's exact count and SysTick's 40-instruction ticks.
        assert abs(l["instructions"] - l["systick_instructions"]) <= TICK, l
        # Every Cortex-M4 instruction takes at least a cycle; loads and taken branches more.
        assert l["instructions"] < l["cycles"] < 3 * l["instructions"]
        assert l["cycles"] == (l["core_cycles"] + l["branch_cycles"] + l["unaligned_cycles"]
                               + l["flash_cycles"])
        assert l["ms"] == pytest.approx(1000 * l["cycles"] / 25e6, abs=1e-4)
    assert p["flash_cycles"] == 0          # zero-wait SSRAM on the MPS2
    by_p = {int(k): v for k, v in p["cycles_by_refill"].items()}
    assert by_p[3] - p["cycles"] == p["cycles"] - by_p[1] == p["taken_branches"]
    assert "qemu-mps2-an386 timing at 25 MHz" in text and "assumptions:" in text


def test_cycles_as_the_mlperf_board(cnn_build):
    base, _ = _profile(cnn_build)
    p, text = _profile(cnn_build, "--as-board", "nucleo-l4r5zi")
    assert p["timing_board"] == "nucleo-l4r5zi" and p["clock_hz"] == 120_000_000
    assert p["instructions"] == base["instructions"] and p["core_cycles"] == base["core_cycles"]
    # Weights and requantization constants come from flash through the data cache model.
    assert 0 < p["flash_misses"] <= p["flash_reads"] and p["flash_cycles"] == 20 * p["flash_misses"]
    assert p["cycles"] == base["cycles"] + p["flash_cycles"]
    assert p["ms"] == pytest.approx(1000 * p["cycles"] / 120e6, abs=1e-4)
    assert "5 flash wait states" in text


def test_build_folder_stays_a_clean_build(cnn_build):
    """The plugin and the trace live outside the build: it can still be rebuilt in place."""
    _profile(cnn_build)
    tflite = small_cnn()
    build_graph(parse_tflite(tflite, name="cnn"), tflite, cnn_build / "build", "qemu-mps2-an386")


@pytest.mark.parametrize("args, message", [
    (("--cycles", "--as-board", "qemu-mps2-an385"), "needs the same core"),
    (("--cycles", "--as-board", "nucleo-f746zg"), "same core"),
    (("--cycles", "--as-board", "no-such-board"), "unknown board"),
    (("--as-board", "nucleo-l4r5zi"), "--as-board goes with --cycles"),
])
def test_refused_in_one_line(cnn_build, args, message):
    assert_one_line_error(_tinycomp("profile", cnn_build / "build", *args), message)


def test_plugin_fallthrough_counts_are_consistent(cnn_build):
    """The plugin decides "branch taken" from where the next block starts, so
    its block ends must be right: a block that does not end in a branch always
    falls through, and one ending in B/BL to another address never does."""
    import numpy as np

    from tinycomp.boards import load_board
    from tinycomp.cycles.report import timing_for
    from tinycomp.cycles.trace import run_traced

    timing = timing_for("qemu-mps2-an386", None)
    trace = run_traced(load_board("qemu-mps2-an386"), cnn_build / "build", np.zeros(64, np.int8).tobytes(),
                       3, timing)
    assert trace.phases == 4
    checked = 0
    for block in trace.blocks:
        last = block.insns[-1]
        for phase in range(1, trace.phases):
            runs, fall = block.executions[phase], block.fallthrough[phase]
            assert 0 <= fall <= runs
            if not last.is_branch:
                assert fall == runs, (hex(block.vaddr), last.text)
                checked += runs
            elif last.kind == "branch" and not last.conditional:
                assert fall == 0, (hex(block.vaddr), last.text)
                checked += runs
    assert checked > 0
    # Conditional branches both ways in the loops of this model.
    cond = [b for b in trace.blocks if b.insns[-1].conditional and sum(b.executions[1:]) > 1]
    assert any(0 < sum(b.fallthrough[1:]) < sum(b.executions[1:]) for b in cond)
