"""Issue 4's compression targets on the digits CNN, measured from real QEMU builds.

    .venv/bin/python -m benchmarks.compression [--out DIR] [--board qemu] [--epochs N]

1. Pruning + INT8 + sparse storage: stored weights >= 10x smaller than float32
   with <= 1 point of test accuracy lost. Sizes are the linker's (`nm` sizes of
   the tinycomp_w_* symbols in firmware.elf); accuracy is the QEMU board's own
   output on the 450 test images, checked bit for bit against TFLite Micro.
2. Channel pruning halving the MACs with <= 2 points lost, and the profile
   (QEMU, -icount: instructions per inference) before and after.
3. QAT beating post-training quantization on a model where PTQ loses accuracy:
   an MLP on digits whose hidden layer has one "loud" unit, made by scaling that
   unit's incoming weights and bias up by LOUD and its outgoing weights down by
   LOUD. ReLU is positively homogeneous, so the float function is unchanged,
   but the hidden activation's per-tensor range is LOUD times wider, leaving the
   other units a handful of int8 levels after min-max PTQ. This is the channel
   imbalance real models show (and cross-layer equalisation exists to fix).

Writes compression.json and compression.md in --out.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

LOUD = 100.0


def _float32_bytes(model) -> tuple[int, int]:
    """(kernel weights, kernel weights + biases) of the float model, 4 bytes each,
    with BatchNorm folded as the converter folds it (it adds no weights)."""
    from tinycomp.compress.prune import prunable_layers

    kernels = biases = 0
    for layer in prunable_layers(model):
        kernels += int(np.prod(layer.kernel.shape))
        bias = getattr(layer, "bias", None)
        biases += int(np.prod(bias.shape)) if bias is not None else layer.kernel.shape[-1]
    return 4 * kernels, 4 * (kernels + biases)


def _compress(keras_path, split, opts, name):
    import keras

    from tinycomp.cli_compress import load_keras
    from tinycomp.compress.steps import compress

    keras.utils.set_random_seed(0)
    model = load_keras(Path(keras_path))
    t = time.time()
    out_model, report, tflite = compress(model, split.x_train, split.y_train, split.x_test, split.y_test,
                                         opts, name)
    return out_model, report, tflite, time.time() - t


def pruning_target(keras_path, split, board, out, sparsity, epochs) -> dict:
    from tinycomp.compress.steps import CompressOptions
    from tinycomp.sweep import measure

    base_model, _, base_tflite, _ = _compress(keras_path, split, CompressOptions(epochs=0, max_drop=None), "baseline")
    f32_kernels, f32_all = _float32_bytes(base_model)
    base = measure(base_tflite, split.x_test, split.y_test, board, out / "prune-baseline")
    model, report, tflite, secs = _compress(keras_path, split, CompressOptions(prune=sparsity, epochs=epochs, max_drop=None),
                                            f"prune{sparsity}")
    pruned = measure(tflite, split.x_test, split.y_test, board, out / f"prune-{sparsity}")
    info = json.loads((out / f"prune-{sparsity}" / "tinycomp.json").read_text())
    syms = pruned.pop("symbols")
    base.pop("symbols")
    return {
        "sparsity_target": sparsity, "fine_tune_epochs": epochs, "compress_seconds": round(secs, 1),
        "float32_kernel_bytes": f32_kernels, "float32_kernel_and_bias_bytes": f32_all,
        "baseline": base, "pruned": pruned,
        "stored_weight_arrays_bytes": pruned["weight_array_bytes"],
        "stored_all_constants_bytes": pruned["constants_bytes"],
        "ratio_weights_vs_float32": round(f32_kernels / pruned["weight_array_bytes"], 2),
        "ratio_all_constants_vs_float32_weights_and_biases": round(f32_all / pruned["constants_bytes"], 2),
        "ratio_dense_int8_build": round(f32_kernels / base["weight_array_bytes"], 2),
        "float_accuracy_input": float(report.steps[0].accuracy),
        "accuracy_lost_points_vs_baseline_int8": round(100 * (base["accuracy"] - pruned["accuracy"]), 2),
        "accuracy_lost_points_vs_float": round(100 * (report.steps[0].accuracy - pruned["accuracy"]), 2),
        "flash_saved_bytes": base["flash_bytes"] - pruned["flash_bytes"],
        "layers": info.get("compression", {}).get("layers", []),
        "symbols": syms,
    }


def channel_target(keras_path, split, board, out, fraction, epochs) -> dict:
    from tinycomp.compress.steps import CompressOptions
    from tinycomp.profile import profile_build
    from tinycomp.sweep import measure

    _, _, base_tflite, _ = _compress(keras_path, split, CompressOptions(epochs=0, max_drop=None), "baseline")
    base = measure(base_tflite, split.x_test, split.y_test, board, out / "channels-baseline")
    _, report, tflite, secs = _compress(keras_path, split, CompressOptions(channels=fraction, epochs=epochs, max_drop=None),
                                        f"channels{fraction}")
    pruned = measure(tflite, split.x_test, split.y_test, board, out / f"channels-{fraction}")
    base.pop("symbols"), pruned.pop("symbols")
    x0 = split.x_test[:1]
    prof_base = profile_build(out / "channels-baseline", x0)
    prof = profile_build(out / f"channels-{fraction}", x0)
    return {
        "fraction_removed": fraction, "fine_tune_epochs": epochs, "compress_seconds": round(secs, 1),
        "baseline": base, "pruned": pruned,
        "macs_ratio": round(pruned["macs"] / base["macs"], 3),
        "accuracy_lost_points_vs_baseline_int8": round(100 * (base["accuracy"] - pruned["accuracy"]), 2),
        "instructions_baseline": prof_base[prof_base["unit"]],
        "instructions_pruned": prof[prof["unit"]],
        "profile_unit": prof["unit"],
        "profile_layers_baseline": prof_base["layers"], "profile_layers_pruned": prof["layers"],
    }


def loud_mlp(split, epochs: int, loud: float = LOUD):
    """The digits MLP with one loud hidden unit (see the module docstring)."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(0)
    inputs = keras.Input(split.x_train.shape[1:])
    x = L.Flatten()(inputs)
    x = L.Dense(32, activation="relu", name="hidden")(x)
    outputs = L.Dense(10, activation="softmax", name="classes")(x)
    model = keras.Model(inputs, outputs, name="digits_mlp_loud")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(split.x_train, split.y_train, batch_size=32, epochs=epochs, verbose=0, shuffle=True)
    (k1, b1), (k2, b2) = model.get_layer("hidden").get_weights(), model.get_layer("classes").get_weights()
    loudest = int(np.argmax(np.abs(k2).sum(1)))  # an informative unit, so its range matters
    k1[:, loudest] *= loud
    b1[loudest] *= loud
    k2[loudest, :] /= loud
    model.get_layer("hidden").set_weights([k1, b1])
    model.get_layer("classes").set_weights([k2, b2])
    return model


def _measure_or_tflm(tflite, split, board, out_dir) -> dict:
    """measure() on the board; if this tree's kernels cannot build the model
    (a colleague's kernel work in progress, say), TFLite Micro's accuracy,
    which the build would equal bit for bit, with the failure recorded."""
    from tinycomp.reference.tflm import run as run_reference
    from tinycomp.sweep import measure

    try:
        return measure(tflite, split.x_test, split.y_test, board, out_dir)
    except Exception as exc:  # any build failure: fall back, and say so
        from tinycomp.frontends.tflite import parse_tflite
        graph = parse_tflite(tflite)
        t = graph.tensor(graph.inputs[0])
        x = np.clip(np.round(split.x_test / t.scale) + t.zero_point, -128, 127).astype(np.int8)
        y, _ = run_reference(tflite, x.reshape((len(x), *t.shape)))
        return {"accuracy": float(np.mean(y.reshape(len(x), -1).argmax(1) == split.y_test)),
                "accuracy_measured": f"TFLite Micro (board build failed: {str(exc).splitlines()[0][:120]})",
                "symbols": {}}


def qat_target(split, board, out, epochs) -> dict:
    from tinycomp.compress import qat
    from tinycomp.compress.calibrate import calibrated_model

    model = loud_mlp(split, epochs=30)
    float_acc = float(np.mean(model.predict(split.x_test, verbose=0).argmax(-1) == split.y_test))
    ptq = qat.qat_to_tflite(calibrated_model(model, split.x_train[:300], "minmax")[0])
    ptq_m = _measure_or_tflm(ptq, split, board, out / "qat-ptq")
    t = time.time()
    qmodel = qat.qat_train(model, split.x_train, split.y_train, epochs=epochs, batch_size=32)
    secs = time.time() - t
    qat_buf = qat.qat_to_tflite(qmodel)
    qat_m = _measure_or_tflm(qat_buf, split, board, out / "qat-qat")
    ptq_m.pop("symbols"), qat_m.pop("symbols")
    return {
        "model": f"digits MLP 64-32-10, hidden unit scaled x{LOUD:g} in / x1/{LOUD:g} out (float unchanged)",
        "float_accuracy": float_acc, "qat_epochs": epochs, "qat_seconds": round(secs, 1),
        "ptq": ptq_m, "qat": qat_m,
        "ptq_lost_points": round(100 * (float_acc - ptq_m["accuracy"]), 2),
        "qat_gain_points": round(100 * (qat_m["accuracy"] - ptq_m["accuracy"]), 2),
    }


def markdown(r: dict) -> str:
    p, c, q = r["pruning"], r["channels"], r["qat"]
    lines = [f"# Compression targets on digits ({r['board']}, measured {r['date']})", "",
             "## Pruning + INT8 + offset-sparse storage", "",
             f"- sparsity {p['sparsity_target']}, {p['fine_tune_epochs']} fine-tuning epochs",
             f"- weight arrays in the linked image: {p['stored_weight_arrays_bytes']:,} B vs float32 "
             f"{p['float32_kernel_bytes']:,} B: **{p['ratio_weights_vs_float32']}x** "
             f"(dense INT8 build: {p['baseline']['weight_array_bytes']:,} B, {p['ratio_dense_int8_build']}x)",
             f"- all tinycomp_w_* constants (with biases, requantization multipliers and shifts): "
             f"{p['stored_all_constants_bytes']:,} B vs float32 weights+biases {p['float32_kernel_and_bias_bytes']:,} B: "
             f"{p['ratio_all_constants_vs_float32_weights_and_biases']}x",
             f"- flash {p['baseline']['flash_bytes']:,} -> {p['pruned']['flash_bytes']:,} B "
             f"({p['flash_saved_bytes']:,} B saved)",
             f"- accuracy on QEMU: dense INT8 {100 * p['baseline']['accuracy']:.2f}% -> pruned "
             f"{100 * p['pruned']['accuracy']:.2f}% (**{p['accuracy_lost_points_vs_baseline_int8']} points**; "
             f"vs float {p['accuracy_lost_points_vs_float']}); bit-exact with TFLM: {p['pruned'].get('bit_exact')}",
             "", "| layer | op | sparsity | dense B | stored B | format |", "|---|---|---|---|---|---|"]
    lines += [f"| {l['index']} | {l['op']} | {l['sparsity']:.2f} | {l['dense_bytes']} | {l['stored_bytes']} | {l['format']} |"
              for l in p["layers"]]
    lines += ["", "## Channel pruning", "",
              f"- {c['fraction_removed']:.0%} of filters removed, {c['fine_tune_epochs']} epochs: MACs "
              f"{c['baseline']['macs']:,} -> {c['pruned']['macs']:,} (x{c['macs_ratio']})",
              f"- accuracy on QEMU {100 * c['baseline']['accuracy']:.2f}% -> {100 * c['pruned']['accuracy']:.2f}% "
              f"(**{c['accuracy_lost_points_vs_baseline_int8']} points**)",
              f"- profile: {c['instructions_baseline']:,} -> {c['instructions_pruned']:,} {c['profile_unit']} per inference",
              f"- flash {c['baseline']['flash_bytes']:,} -> {c['pruned']['flash_bytes']:,} B, RAM "
              f"{c['baseline']['ram_bytes']:,} -> {c['pruned']['ram_bytes']:,} B",
              "", "## QAT vs PTQ", "", f"- {q['model']}",
              f"- float {100 * q['float_accuracy']:.2f}%, PTQ (min-max) {100 * q['ptq']['accuracy']:.2f}% "
              f"({q['ptq_lost_points']} points lost), QAT ({q['qat_epochs']} epochs) "
              f"{100 * q['qat']['accuracy']:.2f}% (**{q['qat_gain_points']:+} points over PTQ**); measured "
              f"{q['qat']['accuracy_measured']}", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/compression"))
    ap.add_argument("--board", default="qemu")
    ap.add_argument("--sparsity", type=float, default=0.85)
    ap.add_argument("--prune-epochs", type=int, default=30)
    ap.add_argument("--channels", type=float, default=0.35)
    ap.add_argument("--channel-epochs", type=int, default=10)
    ap.add_argument("--qat-epochs", type=int, default=6)
    ap.add_argument("--only", choices=["pruning", "channels", "qat"], default=None)
    args = ap.parse_args()

    from tests.support.models import digits_model
    from tinycomp import datasets
    from tinycomp.frontends.keras import quiet_tensorflow

    args.out.mkdir(parents=True, exist_ok=True)
    import shutil
    for d in args.out.iterdir():  # builds are staged folders: start clean
        if d.is_dir() and (args.only is None or d.name.startswith(args.only[:4])):
            shutil.rmtree(d)
    keras_path = digits_model().keras_path  # the project's cached, trained digits CNN
    split = datasets.load_digits(0)
    path = args.out / "compression.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    result.update(board=args.board, date=time.strftime("%Y-%m-%d"))
    todo = [args.only] if args.only else ["pruning", "channels", "qat"]
    with quiet_tensorflow():
        for part in todo:  # each part is saved as it finishes: a later failure keeps it
            if part == "pruning":
                result[part] = pruning_target(keras_path, split, args.board, args.out, args.sparsity,
                                              args.prune_epochs)
            elif part == "channels":
                result[part] = channel_target(keras_path, split, args.board, args.out, args.channels,
                                              args.channel_epochs)
            else:
                result[part] = qat_target(split, args.board, args.out, args.qat_epochs)
            path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    for part in todo:  # printed here: quiet_tensorflow silences stdout inside the block
        print(json.dumps({k: v for k, v in result[part].items()
                          if not k.startswith(("profile_layers", "symbols", "layers"))}, indent=1, default=str))
    if all(k in result for k in ("pruning", "channels", "qat")):
        (args.out / "compression.md").write_text(markdown(result))
        print(markdown(result))


if __name__ == "__main__":
    main()
