"""The command line. Anything a user can cause ends as one line on stderr and a
non-zero exit; only genuine bugs show a traceback."""
from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

import click

from . import __version__, pipeline
from .cli_compress import compress, sweep
from .errors import InputDataError, TinycompError
from .outputs import check_out_file, save_arrays, write_atomic
from .userdata import load_arrays, load_npy


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TinycompError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="tinycomp")
@click.option("-v", "--verbose", is_flag=True, help="Log diagnostics to stderr.")
def cli(verbose: bool) -> None:
    """Compile trained neural networks to bit-exact INT8 C for microcontrollers."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", default=pipeline.DEFAULT_BOARD, show_default=True,
              help="Board name or alias (see 'tinycomp boards').")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder [default: out/<model name>].")
@click.option("--calibration", type=click.Path(path_type=Path), default=None,
              help="Float samples (.npy, shape (N, *input_shape), the model's own layout) to "
                   "calibrate a Keras, .pt2 or .onnx model.")
@click.option("--optimize", type=click.Choice(["balanced", "size", "speed"]), default="balanced",
              show_default=True,
              help="How pruned weights are stored: size in whichever layout (dense, offset-sparse, gap, "
                   "bitmap) makes a layer's constants smallest, speed sparse only when it is faster, "
                   "balanced when smaller and not slower.")
def build(model: Path, board: str, out_dir: Path | None, calibration: Path | None, optimize: str) -> None:
    """Compile MODEL (.tflite, .keras, .h5, SavedModel, .pt2 or .onnx) for a board."""
    out_dir = out_dir or Path("out") / model.stem
    info = pipeline.build(model, out_dir, pipeline.BuildOptions(board=board, calibration=calibration,
                                                                optimize=optimize))
    click.echo(f"built {model} for {info['board']} in {out_dir}: {len(info['layers'])} layers, "
               f"{info['macs']:,} MACs, arena {info['arena_bytes']:,} B, weights {info['weights_bytes']:,} B")
    for key in ("flash_bytes", "ram_bytes"):
        if key in info:
            click.echo(f"  {key.replace('_', ' ')}: {info[key]:,}")


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--inputs", type=click.Path(path_type=Path), required=True,
              help="Samples (.npy; .npz with one array per input, arr_0, arr_1, ..., for several "
                   "inputs): int8 as is, float32 quantized with the input's scale; a float32 "
                   "input takes float32.")
@click.option("--outputs", type=click.Path(path_type=Path), required=True,
              help="Where to write the outputs in the model's types (.npy; .npz for several outputs).")
@click.option("--port", default=None, help="Serial port of a real board.")
def run(build_dir: Path, inputs: Path, outputs: Path, port: str | None) -> None:
    """Run every sample of --inputs on the built target; save its outputs."""
    info = pipeline.read_manifest(build_dir)  # a wrong folder is the likelier mistake: say so first
    n_out = len(pipeline.tensor_specs(info, "output"))
    check_out_file(outputs)
    if n_out > 1 and Path(outputs).suffix != ".npz":
        raise InputDataError(f"the model has {n_out} outputs: name --outputs with .npz "
                             f"(not {outputs}) to get one array per output")
    samples = load_arrays(inputs, "inputs")
    ys, counts = pipeline.run_all(build_dir, samples, port=port, progress=True)
    save_arrays(outputs, ys)
    shapes = ", ".join(f"{y.shape} {y.dtype}" for y in ys)
    click.echo(f"ran {len(ys[0])} samples; outputs {shapes} written to {outputs}")
    if counts and counts[0] is not None:
        click.echo(f"  {min(counts):,} to {max(counts):,} instructions or cycles per inference")


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--inputs", type=click.Path(path_type=Path), default=None,
              help="Profile the first sample of this .npy (.npz for several inputs) "
                   "[default: all-zero inputs].")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Save the profile as JSON.")
@click.option("--port", default=None, help="Serial port of a real board.")
@click.option("--cycles", is_flag=True,
              help="QEMU builds: estimate cycles and ms from the executed instruction stream.")
@click.option("--as-board", default=None,
              help="With --cycles: the board whose core timing, flash and clock to use "
                   "[default: the build's board], e.g. nucleo-l4r5zi.")
def profile(build_dir: Path, inputs: Path | None, json_path: Path | None, port: str | None,
            cycles: bool, as_board: str | None) -> None:
    """Instructions (QEMU) or cycles (board) per inference and per layer, with memory."""
    from .errors import BoardError
    from .profile import format_profile, profile_build

    pipeline.read_manifest(build_dir)
    if json_path is not None:
        check_out_file(json_path)
    if as_board is not None and not cycles:
        raise BoardError("--as-board goes with --cycles: it names the board whose timing to use")
    samples = load_arrays(inputs, "inputs") if inputs is not None else None
    if cycles:
        from .cycles.report import format_cycles, profile_cycles
        if port not in (None, "socket"):
            raise BoardError("--cycles runs QEMU itself: leave out --port")
        p = profile_cycles(build_dir, samples, as_board, refills=(1, 3))
        click.echo(format_cycles(p))
    else:
        p = profile_build(build_dir, samples, port)
        click.echo(format_profile(p))
    if json_path is not None:
        write_atomic(json_path, lambda tmp: Path(tmp).write_text(json.dumps(p, indent=2) + "\n"))


@cli.command()
def boards() -> None:
    """List the boards tinycomp builds for, with core, flash and RAM."""
    from .boards import board_names, load_board

    click.echo(f"{'board':<20} {'kind':<7} {'core':<12} {'DSP':<4} {'vector':<22} {'flash':>9} {'RAM':>9}  aliases")
    for name in board_names():
        b = load_board(name)
        core = b.core.cpu if b.core else "host cpu"
        dsp = ("yes" if b.core.dsp else "no") if b.core else "-"
        vector = b.core.vector_extension if b.core else "-"
        flash = f"{b.memory.flash.size // 1024:,} KB" if b.memory else "-"
        ram = f"{b.memory.ram.size // 1024:,} KB" if b.memory else "-"
        click.echo(f"{b.name:<20} {b.kind:<7} {core:<12} {dsp:<4} {vector:<22} {flash:>9} {ram:>9}  "
                   f"{', '.join(b.aliases)}")


@cli.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--tool", type=click.Choice(["openocd", "st-flash", "pyocd"]), default=None,
              help="Real boards: the flash tool [default: the first installed one the board lists].")
@click.option("--seconds", type=float, default=None,
              help="QEMU boards: stop the emulator after this long [default: run until Ctrl-C].")
def flash(build_dir: Path, tool: str | None, seconds: float | None) -> None:
    """Put a build on its board: flash a real board, or start the emulator."""
    import time

    from .boards import load_board
    from .errors import BoardError
    from .targets.flashing import flash as flash_board
    from .targets.qemu import QemuProcess

    info = pipeline.read_manifest(build_dir)
    board = load_board(info["board"])
    if not board.is_embedded:
        raise BoardError(f"{build_dir} is a {board.name} build: nothing to flash; use 'tinycomp run'")
    elf, binary = (Path(build_dir) / info["firmware"][k] for k in ("elf", "bin"))
    if board.kind == "device":
        used = flash_board(board, elf, binary, tool)
        click.echo(f"flashed {elf} to {board.name} with {used}")
        return
    emulator = QemuProcess(board, elf, serial="pty")
    emulator.start()
    try:
        click.echo(f"QEMU {board.qemu_machine} is running {elf}; its serial port is {emulator.pty} "
                   "(speaks tinycomp's framed protocol at any baud); Ctrl-C stops it")
        deadline = None if seconds is None else time.monotonic() + seconds
        while emulator.alive() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1)
        if not emulator.alive():
            raise click.ClickException(emulator.death())
    finally:
        emulator.close()


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--calibration", type=click.Path(path_type=Path), default=None,
              help="Float samples (.npy) for a Keras, .pt2 or .onnx model.")
def inspect(model: Path, calibration: Path | None) -> None:
    """Show layers, shapes, quantization, MACs and the memory plan of MODEL."""
    from .inspect import describe
    click.echo(describe(model, calibration))


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", default=pipeline.DEFAULT_BOARD, show_default=True)
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Samples (.npy; .npz with one array per input for several inputs): "
                   "float32 for float comparisons, or int8.")
@click.option("--labels", type=click.Path(path_type=Path), default=None, help="Class labels (.npy).")
@click.option("--float-model", type=click.Path(path_type=Path), default=None,
              help="The float model (Keras, .pt2 or .onnx), when MODEL is a .tflite.")
@click.option("--calibration", type=click.Path(path_type=Path), default=None,
              help="Float samples (.npy) to calibrate a Keras, .pt2 or .onnx MODEL.")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="Save the report as JSON.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Build folder [default: out/<model name>-<board>].")
@click.option("--per-layer", is_flag=True, help="Find the first layer whose output differs from TFLM.")
@click.option("--port", default=None, help="Serial port of a real board.")
def validate(model, board, data, labels, float_model, calibration, report_path, out_dir, per_layer, port):
    """Build MODEL, run --data on the board, compare with TFLM and the float model."""
    from .validate import format_report, validate_model

    if report_path is not None:
        check_out_file(report_path)
    x = load_arrays(data, "data")
    y = load_npy(labels, "labels") if labels is not None else None
    out_dir = out_dir or Path("out") / f"{model.stem}-{board}"
    report = validate_model(model, x, board, out_dir, labels=y, float_model=float_model,
                            calibration=calibration, per_layer=per_layer, port=port)
    click.echo(format_report(report))
    if report_path is not None:
        write_atomic(report_path, lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2) + "\n"))
        click.echo(f"report saved to {report_path}")


cli.add_command(compress)  # defined in its own module; TensorFlow loads only when it runs
cli.add_command(sweep)  # tinycomp/cli_compress.py, beside compress


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that every `with` and `finally`
    runs: emulators are killed, staging folders removed."""


def _terminate(signum, frame):
    raise Terminated()


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = cli.main(prog_name="tinycomp", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Terminated:
        click.echo("terminated", err=True)
        sys.exit(143)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
