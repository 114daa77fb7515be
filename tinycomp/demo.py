"""`make demo`: train a small CNN on scikit-learn's digits, compile it for the
default QEMU board, run the test set on it over serial and print the
validation report (bit-exactness against TFLite Micro, agreement with the
float model, accuracy)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from .errors import TinycompError
from .outputs import write_atomic
from .pipeline import DEFAULT_BOARD

OUT = Path("demo-out")


def demo(out: Path = OUT, board: str = DEFAULT_BOARD, epochs: int = 15) -> dict:
    from .datasets import load_digits, train_digits_cnn
    from .frontends.keras import quiet_tensorflow
    from .validate import format_report, validate_model

    out.mkdir(parents=True, exist_ok=True)
    split = load_digits(seed=0)
    click.echo(f"1/3 training a CNN on scikit-learn's digits ({len(split.x_train)} images, {epochs} epochs)")
    model = train_digits_cnn(epochs=epochs, seed=0, split=split)
    keras_path = out / "digits.keras"
    with quiet_tensorflow():
        model.save(keras_path)
    np.save(out / "calibration.npy", split.x_train[:300])
    click.echo(f"2/3 compiling it to INT8 C for {board}, building the firmware")
    click.echo(f"3/3 running {len(split.x_test)} test images on {board} over serial and comparing")
    report = validate_model(keras_path, split.x_test, board, out / "build", labels=split.y_test,
                            calibration=out / "calibration.npy")
    click.echo("")
    click.echo(format_report(report))
    write_atomic(out / "report.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
    click.echo(f"\nreport saved to {out / 'report.json'}; firmware and generated C in {out / 'build'}")
    return report


def main() -> None:
    try:
        demo()
    except TinycompError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
