"""Issue 10's targets on a digits CNN with BatchNorm that tinycomp was not tuned
on (conv + BN + ReLU, depthwise, 1x1 conv, max pool, 3x3 conv, global average
pool, two dense layers: the shape a user tried), measured on QEMU.

    .venv/bin/python -m benchmarks.unseen [--out DIR] [--board qemu] [--workers N]

1. `--prune 0.8` with defaults: every stored constant (the firmware's
   tinycomp_w_* symbols, built for `--optimize size` as compress builds)
   against the float32 weights and biases (BN folded), the flash saved against
   the unpruned INT8 build, accuracy on the board against the input model.
2. `--max-drop 1` alone (the search): the same figures, and the noise model's
   predicted drop beside the measured one.
Every accuracy is the board's own output on the 450 test images, checked bit
for bit against TFLite Micro. Writes unseen.json and unseen.md in --out.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def unseen_model(split, epochs: int = 25):
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(7)
    i = keras.Input((8, 8, 1))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(i)))
    x = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(24, 1, use_bias=False)(x)))
    x = L.MaxPooling2D(2)(x)
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(32, 3, padding="same", use_bias=False)(x)))
    x = L.Dense(32, activation="relu")(L.GlobalAveragePooling2D()(x))
    model = keras.Model(i, L.Dense(10, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(split.x_train, split.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


def _row(name, tflite, split, board, out, float32_bytes, input_accuracy, seconds, base=None) -> dict:
    from tinycomp.sweep import measure

    m = measure(tflite, split.x_test, split.y_test, board, out / name, optimize="size")
    m.pop("symbols", None)
    row = {"setting": name, "seconds": round(seconds, 1), "constants_bytes": m["constants_bytes"],
           "flash_bytes": m["flash_bytes"], "accuracy": m["accuracy"], "bit_exact": m.get("bit_exact"),
           "vs_float32": round(float32_bytes / m["constants_bytes"], 2),
           "drop_points": round(100 * (input_accuracy - m["accuracy"]), 2)}
    if base is not None:
        row["flash_saved_bytes"] = base["flash_bytes"] - m["flash_bytes"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/unseen"))
    ap.add_argument("--board", default="qemu")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from tinycomp.frontends.keras import quiet_tensorflow

    args.out.mkdir(parents=True, exist_ok=True)
    with quiet_tensorflow():
        import keras

        from tinycomp.compress import noise, search
        from tinycomp.compress.sensitivity import float_copy
        from tinycomp.compress.steps import CompressOptions, compress
        from tinycomp.datasets import load_digits

        split = load_digits(1)
        model = unseen_model(split)
        path = args.out / "unseen.keras"
        model.save(path)
        input_accuracy = float(model.evaluate(split.x_test, split.y_test, verbose=0)[1])
        float32_bytes = search.float_weight_bytes(float_copy(model))
        data = (split.x_train, split.y_train, split.x_test, split.y_test)

        t = time.time()
        _, _, base_tflite = compress(keras.models.load_model(path), *data, CompressOptions(epochs=0), "baseline")
        base = _row("int8", base_tflite, split, args.board, args.out, float32_bytes, input_accuracy, time.time() - t)
        t = time.time()
        pruned_model, _, tflite = compress(keras.models.load_model(path), *data, CompressOptions(prune=0.8), "p08")
        rows = [base, _row("prune-0.8", tflite, split, args.board, args.out, float32_bytes, input_accuracy,
                           time.time() - t, base)]
        t = time.time()
        cands, chosen = search.search(path.read_bytes(), *data, max_drop=1.0, workers=args.workers)
        row = _row("max-drop-1", chosen["tflite"], split, args.board, args.out, float32_bytes, input_accuracy,
                   time.time() - t, base)
        row["chosen"] = chosen["label"]
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "c.keras").write_bytes(chosen["keras"])
            from tinycomp.compress.qat import custom_objects

            chosen_model = keras.models.load_model(Path(tmp) / "c.keras", compile=False,
                                                   custom_objects=custom_objects())
        _, predicted, measured = noise.predicted_and_measured(chosen_model, chosen["tflite"], split.x_test[:200],
                                                              split.y_test[:200])
        row["predicted_drop_points"] = round(100 * (predicted["float_accuracy"] - predicted["accuracy"]), 2)
        row["measured_drop_points_200"] = round(100 * (measured["float_accuracy"] - measured["accuracy"]), 2)
        rows.append(row)
    result = {"board": args.board, "float32_weight_and_bias_bytes": float32_bytes,
              "input_accuracy": input_accuracy, "rows": rows,
              "candidates": [{k: c[k] for k in ("label", "bytes", "accuracy")} for c in cands]}
    (args.out / "unseen.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"float32 weights and biases (BN folded): {float32_bytes:,} B; input accuracy "
             f"{100 * input_accuracy:.2f}%", "",
             "| setting | constants B | vs float32 | flash B | flash saved B | accuracy (board) | drop pt | bit-exact |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['setting']}{' (' + r['chosen'] + ')' if 'chosen' in r else ''} | "
                     f"{r['constants_bytes']:,} | {r['vs_float32']}x | {r['flash_bytes']:,} | "
                     f"{r.get('flash_saved_bytes', '-')} | {100 * r['accuracy']:.2f}% | {r['drop_points']} | "
                     f"{r['bit_exact']} |")
    last = rows[-1]
    lines += ["", f"Search: predicted drop {last['predicted_drop_points']} pt, measured on the same 200 samples "
              f"{last['measured_drop_points_200']} pt."]
    (args.out / "unseen.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
