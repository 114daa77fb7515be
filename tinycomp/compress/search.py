"""`tinycomp compress MODEL --data D` with no method named: find the smallest model
within the accuracy budget (--max-drop), or the most accurate within a size
(--budget-bytes).

A candidate is an overall sparsity (spread over layers as `--prune` spreads it)
and a fraction of filters removed; each is compressed, fine-tuned within the
budget, converted to INT8 and measured: its INT8 test accuracy (TFLite's
reference kernels, which the build equals bit for bit) and its stored bytes,
every constant as `build --optimize size` stores it (weights, sparse indices,
biases, multipliers, shifts, tables). Candidates are independent seeded tasks
(tasks.py), so they run in parallel and give the same table anywhere.

The search: the plain INT8 model and a ladder of sparsities (spread over
layers by LAMP score); then, twice, candidates between the best feasible
sparsity and the nearest infeasible one (bisection: accuracy falls and size
shrinks as sparsity grows); then, at the best sparsity, the zeros spread by
second-order saliency instead (prune.fisher_sparsities: measured per-layer
sensitivity decides), and channel pruning on top; last, at the best candidate, INT4
weights (QAT on 16 levels) in the layers that save the most bytes for the
least loss (int4_order: each layer alone rounded to INT4 in that candidate's
INT8 model, its loss measured on held-out data and its bytes counted): the
first, the first half, all of them, and all of them at the nearest sparsity
over the budget, since QAT may win back what post-training rounding lost.
Only under --max-drop: within --budget-bytes they would only shrink a
candidate that already fits. The choice is the smallest feasible candidate
(--max-drop) or the most accurate one within --budget-bytes.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from tinycomp.errors import AccuracyBudgetError

from .steps import held_out_split

LADDER = (0.0, 0.5, 0.7, 0.8, 0.9)
TOP = 0.97             # the highest sparsity tried
REFINE_ROUNDS = 2
CLOSE_ENOUGH = 0.03    # stop refining when feasible and infeasible are this close
CHANNELS = 0.25        # filters removed in the channel-pruning candidate
RANK_SAMPLES = 300     # held-out samples that rank the layers for INT4


def stored_bytes(tflite: bytes) -> int:
    """Every constant byte of the C library `build --optimize size` writes."""
    from tinycomp.codegen.generate import generate
    from tinycomp.frontends.tflite import parse_tflite

    return generate(parse_tflite(tflite), storage="size").weights_bytes


def label(prune: float, channels: float, allocation: str = "lamp", int4=()) -> str:
    parts = []
    if prune:
        parts.append(f"S={prune:g}" + ("" if allocation == "lamp" else f" ({allocation})"))
    if channels:
        parts.append(f"channels -{channels:.0%}")
    if int4:
        parts.append(f"INT4: {', '.join(int4)}")
    return ", ".join(parts) or "INT8 only"


def within_budget(row: dict, max_drop: float, budget_bytes: int | None) -> bool:
    """Under --budget-bytes the bytes decide, else the accuracy lost against the input."""
    if budget_bytes is not None:
        return row["bytes"] <= budget_bytes
    return 100 * (row["input_accuracy"] - row["accuracy"]) <= max_drop + 1e-9


def evaluate(keras_model: bytes, x_train, y_train, x_test, y_test, prune: float, channels: float,
             allocation: str, epochs: int, max_drop: float, distill: float | None, int4=()) -> dict:
    """One candidate, from the input model's .keras bytes; a task (tasks.py).
    int4: conv/dense layers whose weights QAT trains on 16 levels and the
    .tflite holds as INT4 (the rest on 256, INT8); none: no QAT."""
    from tinycomp.cli_compress import load_keras_bytes
    from tinycomp.frontends.keras import quiet_tensorflow

    from .prune import prunable_layers
    from .steps import CompressOptions, compress

    # the plain INT8 model is a candidate of its own: the others skip that step
    opts = CompressOptions(prune=prune or None, channels=channels or None, epochs=epochs, max_drop=max_drop,
                           allocation=allocation, distill=distill, baseline=not (prune or channels or int4),
                           qat=bool(int4), int4=tuple(int4))
    with tempfile.TemporaryDirectory(prefix="tinycomp-candidate-") as tmp, quiet_tensorflow():
        model = load_keras_bytes(keras_model)
        model, report, tflite = compress(model, x_train, y_train, x_test, y_test, opts, "candidate")
        out = Path(tmp) / "out.keras"
        model.save(out)
        compressed = out.read_bytes()
        layers = [layer.name for layer in prunable_layers(model)]
    return {"label": label(prune, channels, allocation, int4), "prune": prune, "channels": channels,
            "allocation": allocation, "int4": tuple(int4), "layers": layers, "bytes": stored_bytes(tflite),
            "accuracy": report.int8_accuracy, "input_accuracy": report.steps[0].accuracy,
            "tflite": tflite, "keras": compressed, "report": report}


class Progress:
    """Candidates done and the best so far, on one line of stderr."""

    def __init__(self, describe_best, stream=sys.stderr):
        self.describe_best, self.stream, self.done, self.total = describe_best, stream, 0, 0

    def add(self, n: int) -> None:
        self.total += n
        self._show()

    def step(self, rows: list[dict]) -> None:
        self.done += 1
        self._show(self.describe_best(rows))

    def _show(self, best: str = "") -> None:
        width = 20
        filled = width * self.done // max(self.total, 1)
        end = "\r" if self.stream.isatty() and self.done < self.total else "\n"
        self.stream.write(f"search [{'#' * filled}{'-' * (width - filled)}] {self.done}/{self.total} candidates"
                          + (f"; best so far: {best}" if best else "") + end)
        self.stream.flush()


def search(keras_model: bytes, x_train, y_train, x_test, y_test, max_drop: float, budget_bytes: int | None = None,
           epochs: int = 30, distill: float | None = None, workers: int = 1, ray_address: str | None = None,
           stream=sys.stderr) -> tuple[list[dict], dict]:
    """Evaluate candidates; returns (rows in the order tried, the chosen row).

    Raises AccuracyBudgetError when no candidate qualifies: none within
    --max-drop (not even plain INT8), or none within --budget-bytes."""
    from .tasks import run_tasks

    rows: list[dict] = []

    def feasible(r):
        return within_budget(r, max_drop, budget_bytes)

    def best(rs):
        ok = [r for r in rs if feasible(r)]
        if not ok:
            return None
        if budget_bytes is not None:
            return max(ok, key=lambda r: (r["accuracy"], -r["bytes"]))
        return min(ok, key=lambda r: (r["bytes"], -r["accuracy"]))

    def describe(rs):
        b = best(rs)
        return "" if b is None else f"{b['label']}: {b['bytes']:,} B, {100 * b['accuracy']:.2f}%"

    progress = Progress(describe, stream)

    def run(candidates):
        """candidates: (sparsity, channel fraction[, allocation[, INT4 layers]])"""
        candidates = [(*c, *("lamp", ())[len(c) - 2:]) for c in candidates]
        tried = {(r["prune"], r["channels"], r["allocation"], r["int4"]) for r in rows}
        todo = [c for c in dict.fromkeys(candidates) if c not in tried]
        progress.add(len(todo))
        tasks = [(keras_model, x_train, y_train, x_test, y_test, p, c, a, epochs, max_drop, distill, q)
                 for p, c, a, q in todo]
        finished: list[dict] = []  # in the order they finish, for the best so far

        def done(_, row):
            finished.append(row)
            progress.step(rows + finished)

        rows.extend(run_tasks(evaluate, tasks, workers, ray_address, done))  # in the order tried

    def sparsity_only(r) -> bool:
        """A candidate of sparsity alone, spread by LAMP: those the bisection compares."""
        return r["channels"] == 0.0 and r["allocation"] == "lamp" and not r["int4"]

    run([(s, 0.0) for s in LADDER])
    if budget_bytes is not None and best(rows) is None:
        run([(TOP, 0.0)])  # the smallest there is: if it does not fit, nothing will
    for _ in range(REFINE_ROUNDS):
        if best(rows) is None and budget_bytes is not None:
            break
        lo, hi = _bracket([r for r in rows if sparsity_only(r)], feasible, budget_bytes is not None)
        if hi - lo <= CLOSE_ENOUGH:
            break
        k = max(1, min(workers, 3))
        run([(round(lo + (hi - lo) * (i + 1) / (k + 1), 3), 0.0) for i in range(k)])
    top = best(rows)
    if top is not None and top["prune"]:
        # the same sparsity spread by second-order saliency, and channel pruning on top
        run([(top["prune"], 0.0, "fisher"), (top["prune"], CHANNELS)])
    top = best(rows)
    if top is not None and budget_bytes is None:
        # INT4 where it saves the most bytes per loss: the first layer, the first half, all
        # (under --budget-bytes they would only shrink a candidate that already fits)
        x_rank, y_rank = held_out_split(x_train, y_train)[2:]
        order = int4_order(top, x_rank[:RANK_SAMPLES], y_rank[:RANK_SAMPLES])
        n, every = len(order), tuple(r["layer"] for r in order)
        # and all of them at the nearest sparsity over the budget: QAT may win back what it lost
        over = sorted(r["prune"] for r in rows if r["prune"] > top["prune"] and not feasible(r) and sparsity_only(r))
        tries = [(top["prune"], top["channels"], top["allocation"], every[:k]) for k in sorted({1, (n + 1) // 2, n})
                 if k]
        if over and every:
            tries.append((over[0], 0.0, "lamp", every))
        run(tries)
        for r in rows:
            if r["int4"]:
                r["int4_order"] = order
    chosen = best(rows)
    if chosen is None:
        if budget_bytes is not None:
            small = min(rows, key=lambda r: r["bytes"])
            raise AccuracyBudgetError(
                f"no candidate fits --budget-bytes {budget_bytes:,}: the smallest ({small['label']}) stores "
                f"{small['bytes']:,} B, {small['bytes'] - budget_bytes:,} B over")
        top_acc = max(rows, key=lambda r: r["accuracy"])
        raise AccuracyBudgetError(
            f"no candidate is within --max-drop {max_drop:g}: the best ({top_acc['label']}) reaches "
            f"{100 * top_acc['accuracy']:.2f}% against the input's {100 * top_acc['input_accuracy']:.2f}%; "
            "raise --max-drop or allow more --epochs")
    return rows, chosen


def int4_order(row: dict, x, y) -> list[dict]:
    """The conv/dense layers of a candidate, the most bytes saved per loss
    first: each alone rounded to INT4 in the candidate's INT8 model (what
    QAT then trains on), its stored bytes counted and its cross-entropy
    measured with TFLite Micro on held-out data. Layers INT4 would not make
    smaller (or cannot hold: a per-channel FULLY_CONNECTED) are left out."""
    from tinycomp.errors import ModelError

    from .int4 import layers_to_int4

    base = _int8_loss(row["tflite"], x, y)
    order = []
    for name in row["layers"]:
        try:
            buf, _ = layers_to_int4(row["tflite"], row["layers"], [name])
        except ModelError:
            continue
        saved = row["bytes"] - stored_bytes(buf)
        if saved > 0:
            order.append({"layer": name, "saved": saved, "loss": _int8_loss(buf, x, y) - base})
    # a loss that fell is no cost: those layers go first, the larger saving first
    return sorted(order, key=lambda r: (max(r["loss"], 0.0) / r["saved"], -r["saved"]))


def _int8_loss(tflite: bytes, x, y) -> float:
    """Mean cross-entropy of an INT8 .tflite's outputs (probabilities, or
    logits through a softmax) on (x, y), run in TFLite Micro."""
    from .analysis import softmax
    from .steps import _tflm_accuracy

    _, out = _tflm_accuracy(tflite, x, y)
    probs = out if out.min() >= 0 and np.allclose(out.sum(-1), 1, atol=0.05) else softmax(out)
    return float(np.mean(-np.log(np.clip(probs[np.arange(len(y)), np.asarray(y)], 1e-7, 1.0))))


def _bracket(rows: list[dict], feasible, feasible_above: bool) -> tuple[float, float]:
    """(lo, hi): the sparsities between which feasibility changes. Under
    --max-drop the feasible side is below (accuracy falls with sparsity),
    under --budget-bytes above (size falls)."""
    good = sorted(r["prune"] for r in rows if feasible(r))
    bad = sorted(r["prune"] for r in rows if not feasible(r))
    if feasible_above:
        hi = good[0] if good else TOP
        lower = [s for s in bad if s < hi]
        return (lower[-1] if lower else 0.0), hi
    lo = good[-1] if good else 0.0
    higher = [s for s in bad if s > lo]
    return lo, (higher[0] if higher else TOP)


def pareto_rows(rows: list[dict]) -> list[dict]:
    """Candidates no other is at least as small and as accurate as (and better in one)."""
    from tinycomp.sweep import pareto

    return pareto(rows, "bytes")


def table(rows: list[dict], chosen: dict, max_drop: float, budget_bytes: int | None, float_bytes: int) -> list[str]:
    """The report's search section, Markdown lines."""
    front = {id(r) for r in pareto_rows(rows)}
    aim = (f"the most accurate within --budget-bytes {budget_bytes:,}" if budget_bytes is not None
           else f"the smallest within --max-drop {max_drop:g} point(s) of the input's accuracy")
    lines = ["", "## Search", "",
             f"No method was named, so tinycomp searched for {aim}. Stored bytes: every constant of the C "
             "library `build --optimize size` writes (weights, sparse indices, biases, multipliers, shifts, "
             f"tables), against {float_bytes:,} B of float32 weights and biases. Accuracy: INT8 on the test "
             "set, TFLite Micro's kernels (the build equals them bit for bit). In the order tried:", "",
             "| candidate | stored bytes | vs float32 | INT8 accuracy | change | within budget | Pareto |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ok = within_budget(r, max_drop, budget_bytes)
        mark = " **(chosen)**" if r is chosen else ""
        lines.append(f"| {r['label']}{mark} | {r['bytes']:,} | {float_bytes / max(r['bytes'], 1):.1f}x smaller | "
                     f"{100 * r['accuracy']:.2f}% | {100 * (r['accuracy'] - r['input_accuracy']):+.2f} pt | "
                     f"{'yes' if ok else 'no'} | {'yes' if id(r) in front else ''} |")
    order = next((r["int4_order"] for r in rows if "int4_order" in r), None)
    if order is not None:
        lines += ["", "INT4 candidates take the layers in this order, the most bytes saved per loss first (each "
                  "alone rounded to INT4 in the best earlier candidate's INT8 model; cross-entropy change on "
                  "held-out training data, TFLite Micro): "
                  + ", ".join(f"{r['layer']} (-{r['saved']:,} B, {r['loss']:+.4f})" for r in order) + "."]
    lines += ["", f"Chosen: {chosen['label']}, {chosen['bytes']:,} B, {100 * chosen['accuracy']:.2f}%. "
              "The sections below are its own."]
    return lines


def float_weight_bytes(model) -> int:
    """Bytes of the float32 kernels and biases of the conv/dense layers, BatchNorm
    folded as the converter folds it (it adds no weights)."""
    from .prune import prunable_layers

    return 4 * sum(int(np.prod(w.shape)) for layer in prunable_layers(model) for w in layer.get_weights()[:2])
