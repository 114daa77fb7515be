"""Device outputs against the INT8 reference (TFLite Micro, bit for bit) and the
float model (error metrics, agreement, accuracy)."""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import InputDataError
from .userdata import check_finite, class_labels
from .frontends.tflite import parse_tflite
from .pipeline import BuildOptions, build, build_graph, prepare_inputs, run_all, tensor_specs
from .reference.tflm import run_all as run_reference_all


def _codes(a: np.ndarray) -> np.ndarray:
    """Values as integers to compare: int8/int16 as they are, float32 as the
    sign-magnitude order of its bits (adjacent floats differ by 1, so the
    largest difference reads as units in the last place)."""
    a = np.asarray(a)
    if a.dtype == np.float32:
        bits = a.view(np.int32).astype(np.int64)
        return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)
    return a.astype(np.int64)


def compare_int8(device: np.ndarray, reference: np.ndarray) -> dict:
    """Bit-exactness of the device's outputs against TFLite Micro's (int8, int16
    or float32 outputs; for float32 a difference is counted in ULPs)."""
    d = _codes(device).reshape(len(device), -1)
    r = _codes(reference).reshape(len(reference), -1)
    diff = np.abs(d - r)
    return {
        "samples": int(len(d)),
        "bit_exact_fraction": float(np.mean(np.all(diff == 0, axis=1))) if len(d) else 1.0,
        "values_differing": int(np.count_nonzero(diff)),
        "max_diff_lsb": int(diff.max()) if diff.size else 0,
    }


def compare_float(device: np.ndarray, float_out: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """device: dequantized device outputs; float_out: the float model's outputs."""
    d = device.reshape(len(device), -1).astype(np.float64)
    f = float_out.reshape(len(float_out), -1).astype(np.float64)
    if d.shape != f.shape:
        raise InputDataError(f"the float model gives outputs of shape {f.shape[1:]}, "
                             f"the compiled model {d.shape[1:]}")
    err = d - f
    cos = np.sum(d * f, axis=1) / np.maximum(np.linalg.norm(d, axis=1) * np.linalg.norm(f, axis=1), 1e-12)
    report = {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "relative_l2": float(np.linalg.norm(err) / max(np.linalg.norm(f), 1e-12)),
        "cosine": float(np.mean(cos)),
        "top1_agreement": float(np.mean(np.argmax(d, 1) == np.argmax(f, 1))),
    }
    if labels is not None:
        report.update(classification(d, labels, "device"))
        report.update(classification(f, labels, "float"))
    return report


def classification(scores: np.ndarray, labels: np.ndarray, who: str) -> dict:
    labels = class_labels(labels, len(scores), scores.shape[1])
    pred = np.argmax(scores, axis=1)
    confusion = np.zeros((scores.shape[1], scores.shape[1]), dtype=np.int64)
    np.add.at(confusion, (labels.astype(np.int64), pred), 1)
    return {f"accuracy_{who}": float(np.mean(pred == labels)),
            f"confusion_{who}": confusion.tolist()}


def format_report(report: dict) -> str:
    rows = [("samples", report["int8"]["samples"]),
            ("bit-exact vs TFLite Micro", f"{100 * report['int8']['bit_exact_fraction']:.1f}% of samples"),
            ("largest difference", f"{report['int8']['max_diff_lsb']} LSB")]
    fl = report.get("float")
    if fl:
        rows += [("vs float: MAE", f"{fl['mae']:.5f}"), ("vs float: RMSE", f"{fl['rmse']:.5f}"),
                 ("vs float: relative L2", f"{fl['relative_l2']:.4f}"),
                 ("vs float: cosine", f"{fl['cosine']:.5f}"),
                 ("vs float: top-1 agreement", f"{100 * fl['top1_agreement']:.1f}%")]
        for who in ("device", "float"):
            if f"accuracy_{who}" in fl:
                rows.append((f"accuracy ({who})", f"{100 * fl[f'accuracy_{who}']:.2f}%"))
    if "count_per_inference" in report:
        c = report["count_per_inference"]
        rows.append(("instructions per inference" if report["board"].startswith("qemu") else "cycles per inference",
                     f"{c['min']:,}" if c["min"] == c["max"] else f"{c['min']:,} to {c['max']:,}"))
    for key in ("arena_bytes", "flash_bytes", "ram_bytes"):
        if key in report:
            rows.append((key.replace("_bytes", "").replace("_", " ") + " bytes", f"{report[key]:,}"))
    if "accuracy" in report:
        rows.append(("accuracy (device)", f"{100 * report['accuracy']['accuracy_device']:.2f}%"))
    if report.get("first_differing_layer") is not None:
        rows.append(("first differing layer", report["first_differing_layer"]))
    width = max(len(r[0]) for r in rows)
    lines = [f"validation of {report['model']} on {report['board']}"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    confusion = (fl or report.get("accuracy") or {}).get("confusion_device")
    if confusion:
        lines.append("  confusion matrix (device; rows: label, columns: prediction)")
        lines += ["    " + " ".join(f"{v:4d}" for v in row) for row in confusion]
    return "\n".join(lines)


def float_outputs(model_path, x: np.ndarray) -> np.ndarray:
    """The float model's outputs on float samples: Keras (imports TensorFlow),
    or the original PyTorch/ONNX model (torch or onnxruntime)."""
    if Path(model_path).suffix in (".onnx", ".pt2"):
        from .frontends.pytorch import float_outputs as torch_float_outputs
        return torch_float_outputs(model_path, x)
    from .frontends.keras import quiet_tensorflow
    with quiet_tensorflow():
        import keras
        try:
            model = keras.models.load_model(model_path, compile=False)
        except Exception as exc:  # Keras raises many types for unreadable files
            raise InputDataError(f"cannot load float model {model_path}: {str(exc).splitlines()[0][:200]}") from None
        return np.asarray(model.predict(x.astype(np.float32), batch_size=64, verbose=0))


def dequantize(y: np.ndarray, info: dict) -> np.ndarray:
    out = info["output"]
    if out.get("dtype", "int8") == "float32":  # the model dequantizes itself
        return y.astype(np.float32)
    return (y.astype(np.float32) - out["zero_point"]) * np.float32(out["scale"])


def _with_shapes(inputs: list[np.ndarray], shapes) -> list[np.ndarray]:
    return [x.reshape((len(x), *shape)) for x, shape in zip(inputs, shapes)]


def first_differing_layer(graph, tflite: bytes, x, board: str, workdir) -> dict | None:
    """Bisect over prefixes of the graph: build each prefix with its last layer's
    output as the model output, run it on the board, compare with TFLM's
    tensor. Returns the first layer whose device output differs, or None.
    x: samples of a one-input model, or one array per input."""
    inputs = list(x) if isinstance(x, (list, tuple)) else [x]
    steps = [n for n in graph.nodes if not n.op.is_alias and n.outputs]  # not ASSIGN_VARIABLE
    shapes = [graph.tensor(t).shape for t in graph.inputs]
    _, expected = run_reference_all(tflite, _with_shapes(inputs, shapes), tuple(n.outputs[0] for n in steps))

    def differs(k: int) -> bool:
        node = steps[k]
        # by position: folded ops (SHAPE, ...) leave gaps in the node indices
        prefix = replace(graph, nodes=graph.nodes[:graph.nodes.index(node) + 1], outputs=(node.outputs[0],))
        out = Path(workdir) / f"prefix{k}"
        build_graph(prefix, tflite, out, board)
        got = run_all(out, inputs)[0][0].reshape(len(inputs[0]), -1)
        return not np.array_equal(_codes(got), _codes(expected[node.outputs[0]]))

    lo, hi = 0, len(steps) - 1
    if not differs(hi):
        return None
    while lo < hi:  # invariant: the prefix ending at hi differs
        mid = (lo + hi) // 2
        if differs(mid):
            hi = mid
        else:
            lo = mid + 1
    node = steps[hi]
    return {"index": node.index, "op": node.op.value, "name": node.name}


def _first_differing_layer_in_temp(tflite: bytes, inputs: list[np.ndarray], board: str) -> dict | None:
    """The prefix builds go to a temporary folder: the build folder holds only
    what its manifest lists, so that a later build may replace it."""
    with tempfile.TemporaryDirectory(prefix="tinycomp-per-layer-") as workdir:
        return first_differing_layer(parse_tflite(tflite), tflite, inputs, board, workdir)


def validate_model(model_path, data, board: str, out_dir, labels=None,
                   float_model=None, calibration=None, per_layer: bool = False, port=None) -> dict:
    """Build for the board, run every sample there, compare. Returns the report.
    data: samples of a one-input model, or one array per input. Every output
    is compared with TFLite Micro; the float model and labels need a
    one-input, one-output model."""
    model_path = Path(model_path)
    is_keras = model_path.suffix != ".tflite"
    for array in (data if isinstance(data, (list, tuple)) else [data]):
        array = np.asarray(array)
        if array.ndim < 1 or len(array) == 0:
            raise InputDataError("--data holds no samples")
        check_finite(array, "--data")
        if labels is not None:  # the classes are checked once the outputs are known
            class_labels(labels, len(array), None)
    info = build(model_path, Path(out_dir), BuildOptions(board=board, calibration=calibration))
    inputs = prepare_inputs(data, info)
    n = len(inputs[0])
    outputs, counts = run_all(out_dir, inputs, port=port, progress=True)
    tflite = (Path(out_dir) / "model.tflite").read_bytes()
    shapes = [spec["shape"] for spec in tensor_specs(info, "input")]
    reference, _ = run_reference_all(tflite, _with_shapes(inputs, shapes))
    device = np.concatenate([_codes(y).reshape(n, -1) for y in outputs], axis=1)
    expected = np.concatenate([_codes(r).reshape(n, -1) for r in reference], axis=1)
    report = {"model": str(model_path), "board": info["board"], "int8": compare_int8(device, expected)}
    if counts and counts[0] is not None:
        report["count_per_inference"] = {"min": min(counts), "max": max(counts),
                                         "mean": float(np.mean(counts))}
    for key in ("arena_bytes", "weights_bytes", "flash_bytes", "ram_bytes"):
        if key in info:
            report[key] = info[key]
    float_path = float_model or (model_path if is_keras else None)
    if (float_path is not None or labels is not None) and (len(inputs) > 1 or len(outputs) > 1):
        raise InputDataError("comparing with the float model or labels needs a model with one input "
                             "and one output; this one has "
                             f"{len(inputs)} and {len(outputs)} (bit-exactness is still checked)")
    y = outputs[0].reshape(n, -1)
    if float_path is not None:
        if not np.issubdtype(np.asarray(data).dtype, np.floating):
            raise InputDataError("comparing with the float model needs float samples in --data")
        shape = tuple(info["input"]["shape"])
        report["float"] = compare_float(dequantize(y, info),
                                        float_outputs(float_path, np.asarray(data).reshape((n, *shape[1:]))),
                                        labels)
    elif labels is not None:
        report["accuracy"] = classification(dequantize(y, info), labels, "device")
    if per_layer:
        report["first_differing_layer"] = (
            _first_differing_layer_in_temp(tflite, inputs, info["board"]) or "none: every layer matches TFLite Micro")
    return report
