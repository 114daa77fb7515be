"""`tinycomp sweep` on a tiny grid: every setting built for a QEMU board, a table,
a Pareto frontier and a PNG; and the grid's bad inputs fail clearly."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinycomp.cli_compress import sweep
from tinycomp.errors import InputDataError
from tinycomp.sweep import grid, pareto


def test_pareto_keeps_only_undominated_rows():
    rows = [{"s": "a", "flash_bytes": 10, "accuracy": 0.9}, {"s": "b", "flash_bytes": 8, "accuracy": 0.95},
            {"s": "c", "flash_bytes": 5, "accuracy": 0.7}, {"s": "d", "flash_bytes": 12, "accuracy": 0.97}]
    assert [r["s"] for r in pareto(rows, "flash_bytes")] == ["c", "b", "d"]


def test_grid_checks_its_values():
    assert len(grid((0, 0.5), (0, 0.3), (1,), (False, True))) == 8
    with pytest.raises(InputDataError, match="prune"):
        grid(prune=(1.2,))
    with pytest.raises(InputDataError, match="low-rank"):
        grid(low_rank=(0,))


def test_unknown_board_fails_before_tensorflow(tmp_path):
    r = CliRunner().invoke(sweep, ["m.keras", "--data", str(tmp_path / "d.npz"), "--board", "nope"])
    assert r.exception is not None and "nope" in str(r.exception)


def test_sweep_keeps_a_folder_of_the_users(tmp_path):
    from tinycomp.errors import OutputError
    from tinycomp.sweep import sweep as run_sweep

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "pareto.txt").write_text("my own notes")
    with pytest.raises(OutputError, match="not a tinycomp sweep"):
        run_sweep(tmp_path / "m.keras", {}, "qemu", mine, [])
    assert (mine / "pareto.txt").read_text() == "my own notes"


@pytest.mark.tf
@pytest.mark.parametrize("where", [
    pytest.param(("--workers", "2"), id="workers"),
    # with the search's Ray test, never two local Ray clusters at once
    pytest.param(("--ray", "local"), id="ray", marks=pytest.mark.xdist_group("search")),
])
def test_sweep_tiny_grid_on_qemu(tmp_path, where):
    from tests.support.models import digits_model
    from tinycomp import datasets

    s = datasets.load_digits(0)
    data = tmp_path / "d.npz"
    np.savez(data, x_train=s.x_train[:300], y_train=s.y_train[:300], x_test=s.x_test[:60], y_test=s.y_test[:60])
    out = tmp_path / "sweep"
    r = CliRunner().invoke(sweep, [str(digits_model().keras_path), "--data", str(data), "--board", "qemu",
                                   "--out", str(out), "--prune", "0,0.9", "--channels", "0", "--epochs", "1",
                                   *where])  # each setting a worker process or a Ray task, rows in order
    assert r.exit_code == 0, r.output + repr(r.exception)
    result = json.loads((out / "sweep.json").read_text())
    rows = {row["setting"]: row for row in result["rows"]}
    assert set(rows) == {"baseline", "p0.9"}
    assert all(row["bit_exact"] for row in rows.values())  # each build ran on QEMU, equal to TFLM
    # The sparse storage shrinks the linked image, not only an estimate (90%:
    # sparse kernels are then also faster than dense, so the build picks them).
    assert rows["p0.9"]["weight_array_bytes"] < 0.6 * rows["baseline"]["weight_array_bytes"]
    assert rows["p0.9"]["flash_bytes"] < rows["baseline"]["flash_bytes"]
    assert "Pareto frontier" in r.output and (out / "pareto.txt").read_text().startswith("setting")
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # each task's files, made in its own folder, written here by the caller
    assert (out / "models" / "p0.9.tflite").is_file() and (out / "builds" / "p0.9" / "tinycomp.json").is_file()
