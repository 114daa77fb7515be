"""`tinycomp compress`: prune, factorise and quantization-train a Keras model."""
from __future__ import annotations

import zipfile
from pathlib import Path

import click
import numpy as np

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
@click.option("--epochs", type=int, default=30, show_default=True,
              help="The most fine-tuning epochs of a step; a step stops once held-out accuracy is back "
                   "within the budget or stops improving.")
@click.option("--max-drop", type=float, default=1.0, show_default=True,
              help="Accuracy budget: points of INT8 test accuracy the result may lose against MODEL; "
                   "over it, the report is written and no model.")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True, help="Output .keras file.")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="Write a Markdown report here.")
@click.option("--sensitivity", is_flag=True,
              help="Add per-layer sensitivity to the report: the input model's accuracy with only one layer "
                   "quantized, or pruned at --prune (0.5 without it); two test-set passes per layer.")
def compress(model_path, data_path, prune, channels, low_rank, qat, weight_bits, epochs, max_drop, out_path,
             report_path, sensitivity):
    """Compress a Keras MODEL and write the result to --out (and its INT8 .tflite beside it)."""
    from .compress.steps import CompressOptions, check_options, compress as run
    from .frontends.keras import quiet_tensorflow

    opts = CompressOptions(prune=prune, channels=channels, low_rank=low_rank, qat=qat, epochs=epochs,
                           max_drop=max_drop, weight_bits=int(weight_bits))
    check_options(opts)  # before loading TensorFlow: a typo should fail fast
    if out_path.suffix != ".keras":
        raise OutputError(f"--out must name a .keras file, got {out_path}")
    data = load_data(data_path)
    x_train = np.asarray(data["x_train"], np.float32)
    x_test = np.asarray(data.get("x_test", x_train), np.float32)
    y_test = data.get("y_test", data["y_train"])
    with quiet_tensorflow():
        model = load_keras(model_path)
        expected = tuple(model.inputs[0].shape[1:])
        if tuple(x_train.shape[1:]) != expected:
            raise InputDataError(f"x_train samples have shape {x_train.shape[1:]}, the model expects {expected}")
        # The steps edit the model in place: keep the input for the sensitivity runs.
        from .compress.sensitivity import float_copy

        original = float_copy(model) if sensitivity else None
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


ACTIVATION_SAMPLES = 200  # enough for stable SNRs; TFLM runs them one by one


def _analyse(report, out_model, tflite, original, x_test, y_test, prune) -> None:
    """Add activation SNR (always: a few hundred samples) and, when asked for,
    per-layer sensitivity to the report."""
    from .compress.analysis import model_activation_report
    from .compress.sensitivity import layer_sensitivity
    from .compress.steps import check_labels

    x = x_test[:ACTIVATION_SAMPLES]
    report.activation_rows = model_activation_report(out_model, tflite, x)
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
def sweep(model_path, data_path, board, out_dir, prune_levels, channel_fractions, energies, qat_modes,
          epochs, tflm_accuracy):
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
    data = load_data(data_path)
    result = sw.sweep(model_path, data, board, out_dir, settings, epochs=epochs,
                      on_board=not tflm_accuracy, log=lambda s: click.echo(s, err=True))
    click.echo(result["table"])
    click.echo(f"\nPareto frontier ({result['size_key']} vs accuracy): "
               f"{', '.join(r['setting'] for r in result['pareto'])}")
    click.echo(f"wrote {out_dir / 'pareto.txt'}, {out_dir / 'pareto.png'}, {out_dir / 'sweep.json'}")
