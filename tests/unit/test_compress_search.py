"""`tinycomp compress` with no method named: the search for the smallest model
within the accuracy budget, its dual (--budget-bytes), and candidates that give
the same row in this process and in a worker process."""
import numpy as np
import pytest

from tests.support.cli import assert_one_line_error, tinycomp

# One xdist worker runs them all: each search already keeps two processes busy.
pytestmark = [pytest.mark.tf, pytest.mark.xdist_group("search")]


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    import keras

    from tinycomp.datasets import load_digits

    s = load_digits(2)
    keras.utils.set_random_seed(11)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(s.x_train, s.y_train, epochs=20, batch_size=32, verbose=0)
    root = tmp_path_factory.mktemp("search")
    model.save(root / "mlp.keras")
    np.savez(root / "d.npz", x_train=s.x_train, y_train=s.y_train, x_test=s.x_test, y_test=s.y_test)
    return root, s


def _rows(report: str) -> list[list[str]]:
    section = report.split("## Search")[1].split("## Steps")[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| candidate")]


def test_max_drop_alone_finds_the_smallest_model_within_budget(mlp):
    from tinycomp.compress.search import stored_bytes

    root, s = mlp
    r = tinycomp("compress", root / "mlp.keras", "--data", root / "d.npz", "--epochs", "4", "--workers", "2",
                 "--out", root / "small.keras", "--report", root / "r.md")
    assert r.returncode == 0, r.stderr
    assert "candidates; best so far:" in r.stderr  # the progress line
    rows = _rows((root / "r.md").read_text())
    assert len(rows) >= 6 and rows[0][0] == "INT8 only"
    size = {row[0].replace(" **(chosen)**", ""): int(row[1].replace(",", "")) for row in rows}
    chosen = [row for row in rows if "(chosen)" in row[0]]
    assert len(chosen) == 1
    within = [row for row in rows if row[5] == "yes"]
    # The chosen one is within the budget, and no candidate within it is smaller.
    assert chosen[0][5] == "yes"
    assert int(chosen[0][1].replace(",", "")) == min(int(row[1].replace(",", "")) for row in within)
    assert int(chosen[0][1].replace(",", "")) < size["INT8 only"]
    # The written model is the chosen one: its stored bytes are the row's.
    tflite = (root / "small.tflite").read_bytes()
    assert stored_bytes(tflite) == int(chosen[0][1].replace(",", ""))
    # INT4 candidates were tried at the best earlier candidate, on the ranked
    # layers (the first, then more), each smaller than that candidate
    int4 = [row for row in rows if "INT4: " in row[0]]
    assert len(int4) >= 2, rows
    base = int4[0][0].split("INT4: ")[0].rstrip(", ") or "INT8 only"
    assert all(int(row[1].replace(",", "")) < size[base] for row in int4)
    assert "INT4 candidates take the layers in this order" in (root / "r.md").read_text()
    # the .tflite holds INT4 filters in exactly the chosen candidate's INT4 layers
    named = chosen[0][0].replace(" **(chosen)**", "").split("INT4: ")[1].split(", ") if "INT4: " in chosen[0][0] \
        else []
    assert sorted(int4_layers_of(tflite, root / "small.keras")) == sorted(named)


def int4_layers_of(tflite: bytes, keras_path) -> list[str]:
    """The Keras names of the conv/dense layers whose filter is INT4 in the
    .tflite (ops and layers pair up in order in a chain)."""
    from tinycomp.cli_compress import load_keras
    from tinycomp.compress.int4 import INT4, weighted_ops
    from tinycomp.compress.prune import prunable_layers

    layers = [layer.name for layer in prunable_layers(load_keras(keras_path))]
    ops = weighted_ops(tflite)
    assert len(ops) == len(layers)
    return [layer for layer, (_, kind) in zip(layers, ops) if kind == INT4]


def test_budget_bytes_takes_the_most_accurate_that_fits(mlp):
    root, _ = mlp
    r = tinycomp("compress", root / "mlp.keras", "--data", root / "d.npz", "--epochs", "0", "--workers", "2",
                 "--budget-bytes", "2500", "--out", root / "fit.keras", "--report", root / "fit.md")
    assert r.returncode == 0, r.stderr
    rows = _rows((root / "fit.md").read_text())
    fits = [row for row in rows if int(row[1].replace(",", "")) <= 2500]
    chosen = [row for row in rows if "(chosen)" in row[0]][0]
    assert chosen in fits
    assert float(chosen[3].rstrip("%")) == max(float(row[3].rstrip("%")) for row in fits)


def test_budget_too_small_says_by_how_much(mlp, tmp_path):
    root, _ = mlp
    r = tinycomp("compress", root / "mlp.keras", "--data", root / "d.npz", "--epochs", "0", "--workers", "1",
                 "--budget-bytes", "100", "--out", tmp_path / "none.keras")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]  # after the progress lines
    assert "no candidate fits --budget-bytes 100" in last and "B over" in last, r.stderr
    assert not (tmp_path / "none.keras").exists()


def test_a_candidate_is_the_same_in_a_worker_process_and_on_ray(mlp):
    from tinycomp.compress.search import evaluate
    from tinycomp.compress.tasks import run_tasks

    root, s = mlp
    task = ((root / "mlp.keras").read_bytes(), s.x_train[:200], s.y_train[:200], s.x_test[:100], s.y_test[:100],
            0.6, 0.0, "lamp", 1, 1.0, None)
    here = evaluate(*task)
    there = run_tasks(evaluate, [task, task], workers=2)
    on_ray = run_tasks(evaluate, [task], ray_address="local")  # a local Ray cluster, started and stopped
    for row in there + on_ray:
        assert (row["bytes"], row["accuracy"], row["tflite"]) == (here["bytes"], here["accuracy"], here["tflite"])


@pytest.mark.parametrize("args, text", [
    (("--budget-bytes", "5000", "--prune", "0.5"), "--budget-bytes searches the methods itself; drop --prune"),
    (("--workers", "0"), "--workers must be at least 1"),
    (("--budget-bytes", "0"), "--budget-bytes must be a positive number of bytes"),
])
def test_search_options_checked_first(mlp, tmp_path, args, text):
    root, _ = mlp
    r = tinycomp("compress", root / "mlp.keras", "--data", root / "d.npz", *args, "--out", tmp_path / "o.keras")
    assert_one_line_error(r, text)
