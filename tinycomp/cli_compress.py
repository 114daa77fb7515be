"""`tinycomp compress`: prune, factorise and quantization-train a Keras model."""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import click
import numpy as np

from .compress.prune import ALLOCATIONS
from .compress.steps import ROUNDINGS
from .errors import AccuracyBudgetError, InputDataError, ModelError, OutputError
from .outputs import write_atomic


def load_data(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise InputDataError(f"data file {path} does not exist") from None
    except Exception as exc:
        raise InputDataError(f"data file {path} is not a readable .npz archive: {exc}") from None
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise InputDataError(f"data file {path} lacks {', '.join(missing)} "
                             f"(has {', '.join(sorted(arrays)) or 'no arrays'}); it needs x_train, y_train "
                             "and optionally x_test, y_test")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise InputDataError(f"data file {path} has only one of x_test / y_test; give both or neither")
    if len(arrays["x_train"]) != len(arrays["y_train"]):
        raise InputDataError(f"x_train has {len(arrays['x_train'])} samples but y_train has {len(arrays['y_train'])}")
    return arrays


def load_keras(path: Path):
    import keras

    from .compress.qat import custom_objects

    if not path.exists():
        raise ModelError(f"model not found: {path}")
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise ModelError(f"{path} is not a valid .keras file (not a zip archive): corrupt or truncated?")
    try:
        return keras.models.load_model(path, compile=False, custom_objects=custom_objects())
    except Exception as exc:
        text = " ".join(str(exc).split())[:200]
        raise ModelError(f"cannot load Keras model {path}: {text}") from None


def load_keras_bytes(data: bytes):
    """load_keras of a .keras file's bytes (a task's input, a candidate's result)."""
    with tempfile.TemporaryDirectory(prefix="tinycomp-keras-") as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(data)
        return load_keras(path)


@click.command("compress")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("--data", "data_path", type=click.Path(path_type=Path), required=True,
              help=".npz with x_train, y_train (and optionally x_test, y_test).")
@click.option("--prune", type=float, default=None, help="Target weight sparsity S in (0, 1).")
@click.option("--channels", type=float, default=None, help="Fraction of conv filters / dense units to remove.")
@click.option("--low-rank", type=float, default=None, help="Retained singular-value energy E in (0, 1].")
@click.option("--qat", is_flag=True, help="Finish with quantization-aware training.")
@click.option("--weight-bits", type=click.Choice(["8", "4"]), default="8", show_default=True,
              help="4: write the CONV_2D, DEPTHWISE_CONV_2D and per-tensor FULLY_CONNECTED filters as "
                   "packed INT4 in the .tflite (with --qat trained on 16 levels, else rounded).")
@click.option("--int4", "int4", default=None, metavar="LAYERS",
              help="Comma-separated conv/dense layer names whose filters become packed INT4, the others "
                   "staying INT8 (with --qat those layers train on 16 levels, the rest on 256).")
@click.option("--int16", type=int, default=0, show_default=True, metavar="N",
              help="Keep the N activation tensors whose int16 brings the outputs closest to the float "
                   "model's (measured) in int16: their layers run TFLite's 16x8 kernels.")
@click.option("--epochs", type=int, default=30, show_default=True,
              help="The most fine-tuning epochs of a step; a step stops once held-out accuracy is back "
                   "within the budget or stops improving.")
@click.option("--max-drop", type=float, default=1.0, show_default=True,
              help="Accuracy budget: points of INT8 test accuracy the result may lose against MODEL; "
                   "over it, the report is written and no model.")
@click.option("--allocation", type=click.Choice(ALLOCATIONS), default="lamp", show_default=True,
              help="How --prune's zeros spread over layers: by LAMP score (small layers keep more), by "
                   "second-order saliency F·w²/2 (the Fisher diagonal), or the same sparsity everywhere.")
@click.option("--rounding", type=click.Choice(list(ROUNDINGS)), default="nearest",
              show_default=True,
              help="QAT's weight rounding in training steps: stochastic is unbiased (the expected value is "
                   "the weight); both trains each and keeps the better on held-out data.")
@click.option("--distill", is_flag=True,
              help="The input model teaches the compressed one in every fine-tuning: half the loss is the "
                   "labels', half the cross-entropy to its outputs softened at --temperature.")
@click.option("--temperature", type=float, default=4.0, show_default=True,
              help="Softening temperature T of --distill.")
@click.option("--budget-bytes", type=int, default=None,
              help="Search for the most accurate model whose constants (as `build --optimize size` stores "
                   "them) fit in N bytes.")
@click.option("--workers", type=int, default=None,
              help="Search candidates evaluated at once, in local processes [default: the cores here].")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Evaluate the search's candidates on this Ray cluster (pip install 'tinycomp[ray]').")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True, help="Output .keras file.")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="Write a Markdown report here.")
@click.option("--sensitivity", is_flag=True,
              help="Add per-layer sensitivity to the report: the input model's accuracy with only one layer "
                   "quantized, or pruned at --prune (0.5 without it); two test-set passes per layer.")
def compress(model_path, data_path, prune, channels, low_rank, qat, int4, int16, epochs, max_drop, weight_bits,
             allocation, rounding, distill, temperature, budget_bytes, workers, ray_address, out_path, report_path,
             sensitivity):
    """Compress a Keras MODEL and write the result to --out (and its INT8 .tflite beside it).

    With no method named (--prune, --channels, --low-rank, --qat), or with
    --budget-bytes, search for the smallest model within --max-drop (or the most
    accurate within --budget-bytes)."""
    from .compress.steps import CompressOptions, check_options, compress as run
    from .frontends.keras import quiet_tensorflow

    opts = CompressOptions(prune=prune, channels=channels, low_rank=low_rank, qat=qat, epochs=epochs,
                           max_drop=max_drop, weight_bits=int(weight_bits), int16=int16, allocation=allocation,
                           rounding=rounding, distill=temperature if distill else None,
                           int4=tuple(dict.fromkeys(n.strip() for n in (int4 or "").split(",") if n.strip())))
    if int4 is not None and not opts.int4:
        raise InputDataError("--int4 takes comma-separated layer names, got none")
    check_options(opts)  # before loading TensorFlow: a typo should fail fast
    methods = [f"--{n}" for n, v in (("prune", prune), ("channels", channels), ("low-rank", low_rank),
                                     ("qat", qat), ("weight-bits", weight_bits != "8"), ("int4", int4),
                                     ("int16", int16)) if v]
    searching = budget_bytes is not None or not methods
    if budget_bytes is not None and methods:
        raise InputDataError(f"--budget-bytes searches the methods itself; drop {', '.join(methods)}")
    if budget_bytes is not None and budget_bytes < 1:
        raise InputDataError(f"--budget-bytes must be a positive number of bytes, got {budget_bytes}")
    if workers is not None and workers < 1:
        raise InputDataError(f"--workers must be at least 1, got {workers}")
    if searching and max_drop is None:
        raise InputDataError("the search needs an accuracy budget: give --max-drop")
    if out_path.suffix != ".keras":
        raise OutputError(f"--out must name a .keras file, got {out_path}")
    if searching and ray_address is not None:  # before TensorFlow loads: an unreachable cluster fails fast
        from .compress.tasks import check_ray_address

        check_ray_address(ray_address)
    data = load_data(data_path)
    x_train = np.asarray(data["x_train"], np.float32)
    x_test = np.asarray(data.get("x_test", x_train), np.float32)
    y_test = data.get("y_test", data["y_train"])
    # The search's progress line goes to the terminal, which quiet_tensorflow mutes.
    with open(os.dup(2), "w", closefd=True) as terminal, quiet_tensorflow():
        model = load_keras(model_path)
        expected = tuple(model.inputs[0].shape[1:])
        if tuple(x_train.shape[1:]) != expected:
            raise InputDataError(f"x_train samples have shape {x_train.shape[1:]}, the model expects {expected}")
        # The steps edit the model in place: keep the input for the sensitivity runs.
        from .compress.sensitivity import float_copy

        original = float_copy(model) if sensitivity else None
        if searching:
            out_model, report, tflite = _search(model, model_path, x_train, data["y_train"], x_test, y_test, opts,
                                                budget_bytes, workers, ray_address, terminal)
        else:
            out_model, report, tflite = run(model, x_train, data["y_train"], x_test, y_test, opts, model_path.stem)
        _analyse(report, out_model, tflite, original, x_test, y_test, prune)
        if report.over_budget is None:
            write_atomic(out_path, lambda p: out_model.save(p))
    if report_path is not None:  # also when over budget: it says why
        write_atomic(report_path, lambda p: Path(p).write_text(report.markdown()))
    if report.over_budget is not None:
        raise AccuracyBudgetError(report.over_budget)
    write_atomic(out_path.with_suffix(".tflite"), lambda p: Path(p).write_bytes(tflite))
    last = report.steps[-1]
    click.echo(f"compressed {model_path} -> {out_path}: float {100 * last.accuracy:.2f}%, "
               f"INT8 {100 * report.int8_accuracy:.2f}%, {last.params:,} params, {last.macs:,} MACs")


def _search(model, model_path, x_train, y_train, x_test, y_test, opts, budget_bytes, workers, ray_address,
            terminal):
    """(model, report, tflite) of the candidate the search chose, its report
    carrying the table of every candidate."""
    from .compress import search
    from .compress.sensitivity import float_copy
    from .compress.prune import prunable_layers
    from .compress.steps import check_labels
    from .compress.tasks import default_workers

    workers = default_workers() if workers is None else workers
    # The input is checked here, once, not in every worker.
    y_train, y_test = check_labels(model, y_train, "y_train"), check_labels(model, y_test, "y_test")
    if not prunable_layers(model):
        raise ModelError("model has no prunable layer (Conv1D, Conv2D, DepthwiseConv2D or Dense)")
    rows, chosen = search.search(Path(model_path).read_bytes(), x_train, y_train, x_test, y_test, opts.max_drop,
                                 budget_bytes, opts.epochs, opts.distill, workers, ray_address, terminal)
    report = chosen["report"]
    report.model = model_path.stem
    report.search = search.table(rows, chosen, opts.max_drop, budget_bytes, search.float_weight_bytes(float_copy(model)))
    if budget_bytes is not None and report.over_budget is not None:
        # the dual question: the best accuracy within the bytes is the answer even over --max-drop
        report.search.append(f"It is over --max-drop {opts.max_drop:g}: {report.over_budget.split(';')[0]}.")
        report.over_budget = None
    return load_keras_bytes(chosen["keras"]), report, chosen["tflite"]


ACTIVATION_SAMPLES = 200  # enough for stable SNRs; TFLM runs them one by one


def _analyse(report, out_model, tflite, original, x_test, y_test, prune) -> None:
    """Add activation SNR and the noise model's prediction beside what the INT8
    model measured (always: a few hundred samples) and, when asked for,
    per-layer sensitivity to the report."""
    from .compress import noise
    from .compress.sensitivity import layer_sensitivity
    from .compress.steps import check_labels

    x = x_test[:ACTIVATION_SAMPLES]
    y = check_labels(out_model, y_test, "y_test")[:ACTIVATION_SAMPLES]
    report.activation_rows, report.prediction, report.measured = noise.predicted_and_measured(out_model, tflite, x, y)
    report.activation_samples = len(x)
    if original is not None:
        report.sensitivity = layer_sensitivity(original, x_test, check_labels(original, y_test, "y_test"),
                                               prune if prune is not None else 0.5)


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputDataError(f"--{what} takes comma-separated numbers, got {text!r}") from None


@click.command("sweep")
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("--data", "data_path", type=click.Path(path_type=Path), required=True,
              help=".npz with x_train, y_train (and optionally x_test, y_test).")
@click.option("--board", required=True, help="Board to build each setting for (flash and RAM come from its build).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("sweep-out"), show_default=True,
              help="Folder for the table, plot, models and builds.")
@click.option("--prune", "prune_levels", default="0,0.5,0.8", show_default=True,
              help="Sparsity levels to try (0: no pruning).")
@click.option("--channels", "channel_fractions", default="0,0.5", show_default=True,
              help="Fractions of filters to remove (0: none).")
@click.option("--low-rank", "energies", default="1", show_default=True,
              help="Retained energies for low-rank factorisation (1: none).")
@click.option("--qat", "qat_modes", type=click.Choice(["off", "on", "both"]), default="off", show_default=True)
@click.option("--epochs", type=int, default=10, show_default=True,
              help="Fine-tuning epochs per step (pruning needs ~10+ to recover on small models).")
@click.option("--tflm-accuracy", is_flag=True,
              help="Measure accuracy through TFLite Micro even on a QEMU board (faster).")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Settings compressed, built and measured at once, in local processes.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run the settings on the Ray cluster at ADDRESS ('local' starts one here); every node "
                   "needs the board's toolchain. Needs tinycomp[ray].")
def sweep(model_path, data_path, board, out_dir, prune_levels, channel_fractions, energies, qat_modes,
          epochs, tflm_accuracy, workers, ray_address):
    """Compress MODEL over a grid of settings, build each for --board, and report
    the Pareto frontier of flash against INT8 accuracy (pareto.txt, pareto.png)."""
    from . import sweep as sw
    from .boards import load_board

    load_board(board)  # an unknown board fails before TensorFlow loads
    settings = sw.grid(_floats(prune_levels, "prune"), _floats(channel_fractions, "channels"),
                       _floats(energies, "low-rank"),
                       {"off": (False,), "on": (True,), "both": (False, True)}[qat_modes])
    if epochs < 0:
        raise InputDataError(f"--epochs must be >= 0, got {epochs}")
    if workers < 1:
        raise InputDataError(f"--workers must be at least 1, got {workers}")
    data = load_data(data_path)
    result = sw.sweep(model_path, data, board, out_dir, settings, epochs=epochs,
                      on_board=not tflm_accuracy, log=lambda s: click.echo(s, err=True), workers=workers,
                      ray_address=ray_address)
    click.echo(result["table"])
    click.echo(f"\nPareto frontier ({result['size_key']} vs accuracy): "
               f"{', '.join(r['setting'] for r in result['pareto'])}")
    click.echo(f"wrote {out_dir / 'pareto.txt'}, {out_dir / 'pareto.png'}, {out_dir / 'sweep.json'}")
