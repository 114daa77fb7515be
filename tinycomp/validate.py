"""Device outputs against the INT8 reference (TFLite Micro, bit for bit) and the
float model (error metrics, agreement, accuracy)."""
from __future__ import annotations

import numpy as np

from .errors import InputDataError


def compare_int8(device: np.ndarray, reference: np.ndarray) -> dict:
    d = device.reshape(len(device), -1).astype(np.int32)
    r = reference.reshape(len(reference), -1).astype(np.int32)
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
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(scores):
        raise InputDataError(f"{len(labels)} labels for {len(scores)} samples")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise InputDataError(f"labels must be class indices 0..{scores.shape[1] - 1}")
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
    for key, label in (("instructions_per_inference", "instructions per inference"),
                       ("first_differing_layer", "first differing layer")):
        if report.get(key) is not None:
            rows.append((label, report[key]))
    width = max(len(r[0]) for r in rows)
    lines = [f"validation of {report['model']} on {report['board']}"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    if fl and "confusion_device" in fl:
        lines.append("  confusion matrix (device; rows: label, columns: prediction)")
        lines += ["    " + " ".join(f"{v:4d}" for v in row) for row in fl["confusion_device"]]
    return "\n".join(lines)


def float_outputs(model_path, x: np.ndarray) -> np.ndarray:
    """The float Keras model's outputs on float samples (imports TensorFlow)."""
    from .frontends.keras import quiet_tensorflow
    with quiet_tensorflow():
        import keras
        try:
            model = keras.models.load_model(model_path, compile=False)
        except Exception as exc:  # Keras raises many types for unreadable files
            raise InputDataError(f"cannot load float model {model_path}: {str(exc).splitlines()[0][:200]}") from None
        return np.asarray(model.predict(x.astype(np.float32), batch_size=64, verbose=0))


def dequantize(y: np.ndarray, info: dict) -> np.ndarray:
    return (y.astype(np.float32) - info["output"]["zero_point"]) * np.float32(info["output"]["scale"])
