"""`tinycomp sweep`: a grid of compression settings, each compressed, converted,
built for the board and measured, and the Pareto frontier of flash against accuracy.

Sizes come from the real build: on an embedded board the linker's flash and RAM
and the `tinycomp_w_*` symbols (`nm`), on the host the generated arrays' bytes.
Accuracy is top-1 of the INT8 model on the test set, run on the board itself
when it is a QEMU board (bit for bit what the device computes) and through
TFLite Micro otherwise (which the build equals bit for bit).
"""
from __future__ import annotations

import csv
import itertools
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .boards import load_board
from .errors import InputDataError, OutputError
from .outputs import safe_out_folder

DEFAULT_PRUNE = (0.0, 0.5, 0.8)
DEFAULT_CHANNELS = (0.0, 0.5)
DEFAULT_LOW_RANK = (1.0,)   # 1.0: no factorisation
DEFAULT_QAT = (False,)


@dataclass(frozen=True)
class Setting:
    prune: float = 0.0
    channels: float = 0.0
    low_rank: float = 1.0
    qat: bool = False

    @property
    def name(self) -> str:
        parts = [f"p{self.prune:g}" if self.prune else "", f"c{self.channels:g}" if self.channels else "",
                 f"lr{self.low_rank:g}" if self.low_rank < 1 else "", "qat" if self.qat else ""]
        return "-".join(p for p in parts if p) or "baseline"


def grid(prune=DEFAULT_PRUNE, channels=DEFAULT_CHANNELS, low_rank=DEFAULT_LOW_RANK,
         qat=DEFAULT_QAT) -> list[Setting]:
    for p in prune:
        if not 0 <= p < 1:
            raise InputDataError(f"prune levels must be in [0, 1), got {p}")
    for c in channels:
        if not 0 <= c < 1:
            raise InputDataError(f"channel fractions must be in [0, 1), got {c}")
    for e in low_rank:
        if not 0 < e <= 1:
            raise InputDataError(f"low-rank energies must be in (0, 1], got {e}")
    return [Setting(*s) for s in itertools.product(prune, channels, low_rank, qat)]


def weight_symbols(board, elf: Path) -> dict[str, int]:
    """Size in bytes of every tinycomp_w_* symbol of the linked image, from nm."""
    import subprocess

    from .targets.firmware import _tool

    text = subprocess.run([_tool(board, "nm"), "-S", str(elf)], check=True, capture_output=True,
                          text=True).stdout
    return {p[3]: int(p[1], 16) for p in (ln.split() for ln in text.splitlines())
            if len(p) == 4 and p[3].startswith("tinycomp_w_")}


def measure(tflite: bytes, x_test: np.ndarray, y_test: np.ndarray, board_name: str, out_dir: Path,
            on_board: bool = True, optimize: str = "balanced") -> dict:
    """Build an INT8 .tflite for the board into out_dir and measure it:
    flash, RAM, stored weight bytes (weight arrays only and all constants),
    accuracy on (x_test, y_test) and where it was measured."""
    from .frontends.tflite import parse_tflite
    from .pipeline import build_graph, model_samples, run
    from .reference.tflm import run as run_reference

    board = load_board(board_name)
    graph = parse_tflite(tflite, name=Path(out_dir).name)
    info = build_graph(graph, tflite, Path(out_dir), board.name, optimize=optimize)
    x = model_samples(np.asarray(x_test, np.float32), info)
    shape = tuple(info["input"]["shape"])
    reference, _ = run_reference(tflite, x.reshape((len(x), *shape)))
    result = {"macs": info["macs"], "arena_bytes": info["arena_bytes"],
              "constants_bytes": info["weights_bytes"]}
    if board.is_embedded:
        fw = info["firmware"]
        symbols = weight_symbols(board, Path(out_dir) / fw["elf"])
        result.update(flash_bytes=fw["flash_used"], ram_bytes=fw["ram_used"],
                      constants_bytes=fw["weights_bytes"],
                      weight_array_bytes=sum(v for k, v in symbols.items()
                                             if k.endswith(("_weights", "_bitmap", "_values"))),
                      symbols=symbols)
    else:
        result.update(flash_bytes=None, ram_bytes=None, weight_array_bytes=None)
    if on_board and board.kind == "qemu":
        device = run(out_dir, x)[0].reshape(len(x), -1)
        result["bit_exact"] = bool(np.array_equal(device, reference.reshape(len(x), -1)))
        scores, where = device, f"on {board.name} (QEMU)"
    else:
        scores, where = reference.reshape(len(x), -1), "TFLite Micro (bit-exact with the build)"
    result["accuracy"] = float(np.mean(np.argmax(scores, axis=1) == np.asarray(y_test).reshape(-1)))
    result["accuracy_measured"] = where
    result["sparsity"] = info["compression"]["sparsity"] if "compression" in info else 0.0
    return result


def pareto(rows: list[dict], size_key: str) -> list[dict]:
    """Rows no other row beats: none is at most as large and at least as accurate
    while strictly better in one of the two."""
    front = []
    for r in rows:
        dominated = any(o is not r and o[size_key] <= r[size_key] and o["accuracy"] >= r["accuracy"]
                        and (o[size_key] < r[size_key] or o["accuracy"] > r["accuracy"]) for o in rows)
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: r[size_key])


def format_table(rows: list[dict], size_key: str) -> str:
    front = {id(r) for r in pareto(rows, size_key)}
    head = (f"{'setting':<18} {'flash B':>9} {'RAM B':>7} {'weights B':>9} {'MACs':>8} "
            f"{'sparsity':>8} {'acc %':>6}  pareto")
    lines = [head]
    for r in sorted(rows, key=lambda r: r[size_key]):
        flash = f"{r['flash_bytes']:,}" if r.get("flash_bytes") is not None else "-"
        ram = f"{r['ram_bytes']:,}" if r.get("ram_bytes") is not None else "-"
        lines.append(f"{r['setting']:<18} {flash:>9} {ram:>7} {r['constants_bytes']:>9,} {r['macs']:>8,} "
                     f"{r.get('sparsity', 0.0):>8.2f} {100 * r['accuracy']:>6.2f}  {'*' if id(r) in front else ''}")
    return "\n".join(lines)


def plot(rows: list[dict], size_key: str, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")  # files only: no display on build machines
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.scatter([r[size_key] for r in rows], [100 * r["accuracy"] for r in rows], color="0.6", label="setting")
    for r in rows:
        ax.annotate(r["setting"], (r[size_key], 100 * r["accuracy"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    front = pareto(rows, size_key)
    ax.step([r[size_key] for r in front], [100 * r["accuracy"] for r in front], where="post",
            color="C3", marker="o", label="Pareto frontier")
    ax.set_xlabel(f"{size_key.replace('_', ' ')} (from the build)")
    ax.set_ylabel("INT8 test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def setting_row(model: bytes, x_train, y_train, x_test, y_test, s: Setting, board_name: str, epochs: int,
                on_board: bool) -> tuple[dict, dict[str, bytes]]:
    """One setting compressed, built and measured: a seeded task (compress/tasks.py)
    from the input model's .keras bytes. It works in a folder of its own and
    returns its row and the files it made (models/NAME.tflite, builds/NAME/...)
    for the caller to write: on a Ray node that folder is not the caller's."""
    from .cli_compress import load_keras_bytes
    from .compress.steps import CompressOptions, compress
    from .frontends.keras import quiet_tensorflow

    opts = CompressOptions(prune=s.prune or None, channels=s.channels or None,
                           low_rank=s.low_rank if s.low_rank < 1 else None, qat=s.qat, epochs=epochs,
                           max_drop=None)  # every setting is a point of the table, whatever it costs
    with tempfile.TemporaryDirectory(prefix="tinycomp-setting-") as tmp, quiet_tensorflow():
        import keras
        keras.utils.set_random_seed(0)  # each setting starts from the same state
        _, report, tflite = compress(load_keras_bytes(model), x_train, y_train, x_test, y_test, opts, s.name)
        out = Path(tmp) / "out"
        m = measure(tflite, x_test, y_test, board_name, out / "builds" / s.name, on_board)
        files = {f"models/{s.name}.tflite": tflite,
                 **{p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}}
    row = {"setting": s.name, **asdict(s), **{k: v for k, v in m.items() if k != "symbols"},
           "float_accuracy": report.steps[-1].accuracy}
    return row, files


def sweep(model_path: Path, data: dict, board_name: str, out_dir: Path, settings: list[Setting],
          epochs: int = 2, on_board: bool = True, log=print, workers: int = 1,
          ray_address: str | None = None) -> dict:
    """Run every setting, `workers` at a time in local processes or on the Ray
    cluster at ray_address (each node needs the board's toolchain); writes
    sweep.json, sweep.csv, pareto.txt and pareto.png in out_dir and returns
    {"rows", "pareto", "size_key", ...}."""
    from .compress.tasks import run_tasks

    board = load_board(board_name)
    out_dir = safe_out_folder(out_dir, protect=(Path(model_path),))
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "sweep.json").is_file():
        raise OutputError(f"--out {out_dir} holds files that are not a tinycomp sweep; "
                          "choose an empty or new folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    x_train = np.asarray(data["x_train"], np.float32)
    x_test = np.asarray(data.get("x_test", x_train), np.float32)
    y_test = np.asarray(data.get("y_test", data["y_train"]))
    try:
        model = Path(model_path).read_bytes()
    except OSError as exc:
        raise InputDataError(f"cannot read model {model_path}: {exc.strerror}") from None
    tasks = [(model, x_train, data["y_train"], x_test, y_test, s, board.name, epochs, on_board) for s in settings]

    def done(_, result):
        row, files = result
        for name, content in files.items():
            path = out_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        log(f"{row['setting']}: flash {row['flash_bytes']}, accuracy {100 * row['accuracy']:.2f}% "
            f"({row['accuracy_measured']})")

    rows = [row for row, _ in run_tasks(setting_row, tasks, workers, ray_address, done)]  # in the settings' order
    size_key = "flash_bytes" if board.is_embedded else "constants_bytes"
    front = pareto(rows, size_key)
    table = format_table(rows, size_key)
    (out_dir / "pareto.txt").write_text(table + "\n")
    (out_dir / "sweep.json").write_text(json.dumps({"board": board.name, "size_key": size_key, "rows": rows,
                                                    "pareto": [r["setting"] for r in front]}, indent=2) + "\n")
    with open(out_dir / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, size_key, out_dir / "pareto.png", f"{Path(model_path).stem} on {board.name}")
    return {"rows": rows, "pareto": front, "size_key": size_key, "table": table}
