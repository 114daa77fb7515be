"""Run the chosen compression steps in order and record what each cost.

Order: channel pruning (changes shapes) -> low-rank (splits layers) -> magnitude
pruning (zeros inside the final shapes) -> QAT (last, so it trains the weights
the device will hold). Each step fine-tunes; accuracy is measured after each.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinycomp.errors import InputDataError, ModelError

from . import analysis
from .report import Report, Step


@dataclass(frozen=True)
class CompressOptions:
    prune: float | None = None      # target sparsity in (0, 1)
    channels: float | None = None   # fraction of filters to remove, in (0, 1)
    low_rank: float | None = None   # retained singular-value energy in (0, 1]
    qat: bool = False
    epochs: int = 30                # the most fine-tuning epochs of a step (early stopping ends sooner)
    batch_size: int = 32
    max_drop: float | None = 1.0    # accuracy budget, points of test accuracy; None: fixed epochs, no check
    distill: float | None = None    # temperature: the input model teaches every fine-tuning; None: labels only
    baseline: bool = True           # report plain INT8 (min-max PTQ) of the input as a step; the search needs it once
    allocation: str = "lamp"        # how --prune's zeros spread over layers (prune.ALLOCATIONS)
    rounding: str = "nearest"       # QAT's weight rounding in training: nearest, stochastic or both (keep the better)
    weight_bits: int = 8            # 4: INT4 filters in the .tflite (compress/int4.py)
    int4: tuple[str, ...] = ()      # else INT4 filters only in these conv/dense layers (Keras names)
    int16: int = 0                  # activation tensors kept in int16, chosen by measured gain (compress/int16.py)


def check_options(opts: CompressOptions) -> None:
    from . import prune
    from .prune import check_sparsity

    if opts.prune is not None:
        check_sparsity(opts.prune)
    if opts.channels is not None and not (0.0 < opts.channels < 1.0):
        raise InputDataError(f"--channels is the fraction of filters to remove, strictly between 0 and 1; got {opts.channels}")
    if opts.low_rank is not None and not (0.0 < opts.low_rank <= 1.0):
        raise InputDataError(f"--low-rank is the retained energy, in (0, 1]; got {opts.low_rank}")
    if opts.epochs < 0:
        raise InputDataError(f"--epochs must be >= 0, got {opts.epochs}")
    if opts.int16 < 0:
        raise InputDataError(f"--int16 is how many activation tensors to keep in int16, >= 0; got {opts.int16}")
    if opts.weight_bits not in (4, 8):
        raise InputDataError(f"--weight-bits is 8 or 4, got {opts.weight_bits}")
    if opts.max_drop is not None and not opts.max_drop >= 0:
        raise InputDataError(f"--max-drop is in points of accuracy, >= 0; got {opts.max_drop}")
    if opts.allocation not in prune.ALLOCATIONS:
        raise InputDataError(f"--allocation is one of {', '.join(prune.ALLOCATIONS)}; got {opts.allocation!r}")
    if opts.rounding not in ROUNDINGS:
        raise InputDataError(f"--rounding is one of {', '.join(ROUNDINGS)}; got {opts.rounding!r}")
    if opts.rounding != "nearest" and not opts.qat:
        raise InputDataError("--rounding chooses QAT's weight rounding: add --qat")
    if opts.int4 and opts.weight_bits == 4:
        raise InputDataError("--weight-bits 4 makes every layer INT4; drop --int4 (or --weight-bits 4)")
    if opts.rounding != "nearest" and (opts.weight_bits == 4 or opts.int4):
        raise InputDataError("--rounding stochastic is for 8-bit weights; INT4's 16 levels round to nearest")
    if opts.distill is not None and not opts.distill > 0:
        raise InputDataError(f"--temperature must be > 0, got {opts.distill}")


ROUNDINGS = {"nearest": ("nearest",), "stochastic": ("stochastic",), "both": ("nearest", "stochastic")}
PATIENCE = 5          # epochs without a lower held-out loss before a step stops
HELD_OUT = 0.15       # of the training data, for early stopping
SCHEDULE_EPOCHS = 8   # pruning raises sparsity over these, then recovers


def _held_out(model, x, y) -> tuple[float, float]:
    """(loss, accuracy) on held-out data."""
    loss, accuracy = model.evaluate(x, y, verbose=0, batch_size=256)[:2]
    return float(loss), float(accuracy)


def held_out_split(x, y, seed: int = 0):
    """(x_fit, y_fit, x_val, y_val): a seeded HELD_OUT fraction of the training
    data that fine-tuning never trains on, so early stopping is honest."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, int(round(HELD_OUT * len(x))))
    val, fit = order[:n_val], order[n_val:]
    return x[fit], y[fit], x[val], y[val]


def check_labels(model, y: np.ndarray, what: str = "y_train") -> np.ndarray:
    n_out = model.outputs[0].shape[-1]
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == n_out:
        y = y.argmax(-1)  # one-hot labels
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise InputDataError(f"{what} must be integer class labels (N,) or one-hot (N, {n_out}), got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= n_out):
        raise InputDataError(f"{what} holds labels {int(y.min())}..{int(y.max())} but the model has {n_out} outputs")
    return y.astype(np.int64)


def int8_accuracy(buf: bytes, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Top-1 of an int8 .tflite with the reference kernels (what TFLM computes).
    A model with INT4 filters or int16 activations runs in TFLM itself (LiteRT
    lacks INT4's op versions; the mixed model is judged where it will run)."""
    from .int4 import int4_layers
    from .int16 import int16_tensors

    if int4_layers(buf) or int16_tensors(buf):
        return _tflm_accuracy(buf, x, y)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=buf, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    s, z = inp["quantization"]
    os_, oz = out["quantization"]
    probs = []
    for sample in x:
        q = np.clip(np.round(sample / s) + z, -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], q[None])
        interp.invoke()
        probs.append((interp.get_tensor(out["index"])[0].astype(np.float32) - oz) * os_)
    probs = np.array(probs)
    return float(np.mean(probs.argmax(-1) == y)), probs


def _keep_int16(buf: bytes, model, x: np.ndarray, n: int, report) -> bytes:
    """The n activation tensors whose int16 brings the INT8 model's outputs on
    x (data the test set never decides) closest to the float model's, kept int16."""
    from . import int16
    from tinycomp.frontends.tflite import parse_tflite

    reference = model.predict(x[:200], verbose=0, batch_size=256)
    names, report.int16_rows = int16.choose(buf, analysis.int8_inputs(parse_tflite(buf), x[:200]), reference, n)
    report.int16_tensors = names
    return int16.to_mixed(buf, names) if names else buf


def _taught(teacher, x, y, temperature: float) -> np.ndarray:
    """Targets for distillation: each label with the teacher's softened output."""
    from . import distill
    from .prune import _output_activation

    out = teacher.predict(x, verbose=0, batch_size=256)
    return distill.pack(y, distill.soften(out, temperature, _output_activation(teacher) != "softmax"))


def _tflm_accuracy(buf: bytes, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    from tinycomp.frontends.tflite import parse_tflite
    from tinycomp.reference.tflm import run_all

    graph = parse_tflite(buf)
    out = graph.tensor(graph.outputs[0])
    outs, _ = run_all(buf, [analysis.int8_inputs(graph, x)])
    probs = (outs[0].reshape(len(x), -1).astype(np.float32) - out.zero_point) * out.scale
    return float(np.mean(probs.argmax(-1) == y)), probs


def check_int4_names(model, names) -> None:
    """--int4 names conv/dense layers of the input model."""
    from .prune import prunable_layers

    known = [layer.name for layer in prunable_layers(model)]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputDataError(f"--int4: no conv/dense layer named {unknown[0]!r}; the model's are {', '.join(known)}")


def int4_chosen(names: list[str], opts: CompressOptions) -> list[str]:
    """Those of `names` (the conv/dense layers of the input as the steps so far
    changed it) whose weights are INT4: all with --weight-bits 4, else those
    --int4 names (both halves of a layer low-rank split)."""
    if opts.weight_bits == 4:
        return names
    return [n for n in names if n in opts.int4 or n.rsplit("_lr_", 1)[0] in opts.int4]


def compress(model, x_train, y_train, x_test, y_test, opts: CompressOptions, name: str = "model"):
    """Apply the steps of `opts` to a float Keras model; returns (model, Report, int8 .tflite)."""
    from . import channels, lowrank, prune, qat
    from .calibrate import calibrated_model
    from .graph import count_macs, count_trainable_free_params, fold_batchnorm

    check_options(opts)
    y_train = check_labels(model, y_train, "y_train")
    y_test = check_labels(model, y_test, "y_test")
    if not prune.prunable_layers(model):
        raise ModelError("model has no prunable layer (Conv1D, Conv2D, DepthwiseConv2D or Dense)")
    check_int4_names(model, opts.int4)
    import keras

    keras.utils.set_random_seed(0)  # the same data and options give the same model
    report = Report(name, distill_temperature=opts.distill)
    budgeted = opts.max_drop is not None
    x_fit, y_fit, x_val, y_val = held_out_split(x_train, y_train) if budgeted else (x_train, y_train, None, None)
    labels_fit, labels_val = y_fit, y_val
    temperature = opts.distill
    if temperature is not None:  # the teacher is the input model, before any step changes it
        y_fit, y_val = (_taught(model, x, y, temperature) if x is not None else None
                        for x, y in ((x_fit, y_fit), (x_val, y_val)))

    def evaluate(m, x=x_test, y=y_test):
        prune.compile_for_finetune(m)
        return float(m.evaluate(x, y, verbose=0, batch_size=256)[1])

    def record(step, m, note=""):
        report.add(Step(step, evaluate(m), count_trainable_free_params(m), count_macs(m), note))

    def finetune(m, callbacks=()):
        """Until the held-out loss stops improving for PATIENCE epochs, or
        opts.epochs ran; the best weights are kept. Without a budget:
        opts.epochs, as before."""
        prune.compile_for_finetune(m, temperature=temperature)
        if not budgeted:
            if opts.epochs:
                m.fit(x_fit, y_fit, batch_size=opts.batch_size, epochs=opts.epochs, verbose=0, shuffle=True,
                      callbacks=list(callbacks))
            return
        # Held-out loss decides (a few hundred samples give accuracy in coarse
        # steps): training goes on while it falls, PATIENCE epochs past the best.
        best_loss, best_weights, waited = _held_out(m, x_val, y_val)[0], m.get_weights(), 0
        for _ in range(opts.epochs):
            m.fit(x_fit, y_fit, batch_size=opts.batch_size, epochs=1, verbose=0, shuffle=True,
                  callbacks=list(callbacks))
            loss = _held_out(m, x_val, y_val)[0]
            best_loss, best_weights, waited = (loss, m.get_weights(), 0) if loss < best_loss else \
                (best_loss, best_weights, waited + 1)
            if waited >= PATIENCE:
                break
        m.set_weights(best_weights)

    record("float (input)", model)
    calib = x_train[:300]
    float_probs = model.predict(x_test, verbose=0, batch_size=256)
    if opts.baseline:
        ptq_buf = qat.qat_to_tflite(calibrated_model(model, calib, "minmax")[0])
        ptq_acc, _ = int8_accuracy(ptq_buf, x_test, y_test)
        report.add(Step("INT8 post-training (min-max)", ptq_acc, count_trainable_free_params(model),
                        count_macs(model), "no training"))
    if opts.channels is not None:
        model = channels.prune_channels(model, opts.channels)
        finetune(model)
        record(f"channel pruning {opts.channels:.0%} of filters", model)
    if opts.low_rank is not None:
        model, ranks = lowrank.factorise(model, opts.low_rank)
        finetune(model)
        note = ", ".join(f"{k}: rank {r}" for k, (r, b, a) in ranks.items() if a < b) or "no layer gained"
        record(f"low-rank E={opts.low_rank}", model, note)
    if opts.prune is not None:
        # BN folded first: the magnitudes ranked are those the device will hold
        model = fold_batchnorm(model)
        sparsities = prune.prune_magnitude(model, x_fit, y_fit, opts.prune,
                                           epochs=max(1, min(opts.epochs, SCHEDULE_EPOCHS)),
                                           batch_size=opts.batch_size, recover=finetune,
                                           temperature=temperature, allocation=opts.allocation)
        spread = ", ".join(f"{k} {v:.2f}" for k, v in sparsities.items())
        record(f"magnitude pruning S={opts.prune}" + (f" ({opts.allocation})" if opts.allocation != "lamp" else ""),
               model,
               f"sparsity {prune.global_sparsity(model):.3f} ({spread})")
    if opts.qat:
        # QAT starts from a recovered model: a few epochs, not the whole cap
        qat_epochs = min(opts.epochs, SCHEDULE_EPOCHS) if budgeted else opts.epochs
        tried = []
        int4 = int4_chosen([layer.name for layer in prune.prunable_layers(model)], opts)
        for rounding in ROUNDINGS[opts.rounding]:
            qmodel = qat.qat_train(model, x_fit, y_fit, epochs=qat_epochs, batch_size=opts.batch_size,
                                   temperature=temperature, rounding=rounding, weight_bits=opts.weight_bits,
                                   int4=int4)
            buf = qat.qat_to_tflite(qmodel)
            tried.append((qmodel, buf, rounding))
        if len(tried) > 1:  # kept: the better INT8 accuracy on data the test set never decides
            x_pick, y_pick = (x_val, labels_val) if budgeted else (x_fit[:500], labels_fit[:500])
            picks = [int8_accuracy(buf, x_pick, y_pick)[0] for _, buf, _ in tried]
            kept = picks.index(max(picks))  # a tie keeps round-to-nearest
            for i, ((qmodel, buf, rounding), pick) in enumerate(zip(tried, picks)):
                record(f"QAT, {rounding} rounding (fake-quant, float eval)", qmodel,
                       f"INT8 test {100 * int8_accuracy(buf, x_test, y_test)[0]:.2f}%, "
                       f"{'held-out' if budgeted else 'training'} {100 * pick:.2f}%" + ("; kept" if i == kept else ""))
            tried = [tried[kept]]
        else:
            record(f"QAT (fake-quant, float eval{', stochastic rounding' if opts.rounding == 'stochastic' else ''})"
                   + (", INT4 weights" if opts.weight_bits == 4 else "")
                   + (f", INT4 weights in {', '.join(int4)}" if opts.int4 else ""), tried[0][0])
        out_model, buf, _ = tried[0]
    else:
        buf = qat.qat_to_tflite(calibrated_model(model, calib, "minmax")[0])
        out_model = model
    if opts.weight_bits == 4 or opts.int4:
        # the filters as INT4: exact for QAT's 16 levels, rounded without QAT
        from .int4 import layers_to_int4

        names = [layer.name for layer in prune.prunable_layers(out_model)]
        buf, report.int4_layers = layers_to_int4(buf, names, int4_chosen(names, opts))
    if opts.int16:
        buf = _keep_int16(buf, model, x_val if budgeted else x_fit[:500], opts.int16, report)
    acc, probs = int8_accuracy(buf, x_test, y_test)
    report.int8_accuracy = acc
    drop = 100 * (report.steps[0].accuracy - acc)
    if budgeted and drop > opts.max_drop:
        report.over_budget = (
            f"INT8 accuracy {100 * acc:.2f}% is {drop:.2f} points below the input's "
            f"{100 * report.steps[0].accuracy:.2f}%, over --max-drop {opts.max_drop:g}; "
            "prune less, allow more --epochs, or raise --max-drop")
    report.kl_float_int8 = analysis.kl_divergence(float_probs, probs)
    rows = analysis.model_weight_report(out_model)
    report.weight_rows, report.totals = rows, analysis.totals(rows)
    return out_model, report, buf
