"""Output folders, output files and data files from a careless user: nothing
of the user's is ever deleted or left half-written, and every mistake is one
line on stderr."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from tests.host.test_untrusted_models import small_model
from tests.support.cli import assert_one_line_error, tinycomp


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("untrusted") / "small.tflite"
    path.write_bytes(small_model().build())
    return path


@pytest.fixture(scope="module")
def host_build(model_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("untrusted-build") / "small"
    result = tinycomp("build", model_file, "--board", "host", "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def _build(model, out, cwd=None):
    return tinycomp("build", model, "--board", "host", "--out", out, cwd=cwd)


def _listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_out_cannot_be_the_current_folder_or_above(model_file, tmp_path):
    work = tmp_path / "work" / "project"
    work.mkdir(parents=True)
    (work / "thesis.txt").write_text("years of work")
    for out in (".", "..", str(tmp_path), "/"):
        assert_one_line_error(_build(model_file, out, cwd=work), "current folder")
    assert (work / "thesis.txt").read_text() == "years of work"


def test_a_folder_with_a_manifest_and_other_files_is_kept(model_file, host_build, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "tinycomp.json").write_text((host_build / "tinycomp.json").read_text())
    (mine / "thesis.txt").write_text("keep me")
    assert_one_line_error(_build(model_file, mine), "not a tinycomp build", "thesis.txt")
    assert (mine / "thesis.txt").read_text() == "keep me"


def test_a_build_is_replaced_only_while_it_holds_what_tinycomp_wrote(model_file, tmp_path):
    out = tmp_path / "b"
    assert _build(model_file, out).returncode == 0
    assert _build(model_file, out).returncode == 0  # a pristine build is replaced
    (out / "src" / "tinycomp_model.c").write_text("/* my edits */\n")
    assert_one_line_error(_build(model_file, out), "src/tinycomp_model.c")
    assert (out / "src" / "tinycomp_model.c").read_text() == "/* my edits */\n"
    (out / "src" / "notes.md").write_text("x")
    assert_one_line_error(_build(model_file, out), "notes.md")


def test_the_folder_holding_the_input_is_refused(tmp_path):
    model = tmp_path / "m" / "small.tflite"
    model.parent.mkdir()
    model.write_bytes(small_model().build())
    assert_one_line_error(_build(model, model.parent), "holds the input")
    assert model.exists()


def test_out_through_symlinks(model_file, tmp_path):
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    assert_one_line_error(_build(model_file, dangling), "symbolic link to nothing")
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    assert _build(model_file, link).returncode == 0
    assert (target / "tinycomp.json").is_file()


def test_staging_folders_of_killed_builds_are_cleaned(model_file, tmp_path):
    # what a build killed by SIGKILL leaves: its staging folder, its process gone
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    stale = tmp_path / f".b.tinycomp-stage-{dead}-abc"
    stale.mkdir()
    (stale / ".tinycomp-staging").touch()
    (stale / "src").mkdir()
    not_ours = tmp_path / f".b.tinycomp-stage-{dead}-xyz"  # no marker: never touched
    not_ours.mkdir()
    assert _build(model_file, tmp_path / "b").returncode == 0
    assert not stale.exists() and not_ours.exists()
    assert not [p for p in tmp_path.iterdir() if "stage" in p.name and p != not_ours]


def test_outputs_get_the_modes_open_would_give(model_file, tmp_path):
    out = tmp_path / "b"
    assert _build(model_file, out).returncode == 0
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask
    assert stat.S_IMODE((out / "tinycomp.json").stat().st_mode) == 0o666 & ~mask


def test_outputs_go_exactly_where_asked(host_build, tmp_path):
    x = np.random.default_rng(0).integers(-128, 128, (3, 1, 6, 6, 2), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    result = tinycomp("run", host_build, "--inputs", tmp_path / "x.npy", "--outputs", tmp_path / "y")
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "y").shape == (3, 5)
    (tmp_path / "dir").mkdir()
    assert_one_line_error(tinycomp("run", host_build, "--inputs", tmp_path / "x.npy",
                                   "--outputs", tmp_path / "dir"), "is a folder")
    assert _listing(tmp_path) == ["dir", "x.npy", "y"]


def test_bad_data_files_are_one_line(host_build, tmp_path):
    huge = tmp_path / "huge.npy"  # a header claiming 58 TiB
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (16000000000000,), }"
    huge.write_bytes(b"\x93NUMPY\x01\x00" + len(header.ljust(117) + "\n").to_bytes(2, "little")
                     + (header.ljust(117) + "\n").encode())
    malformed = tmp_path / "malformed.npy"
    malformed.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': <<<}\n")
    x = np.zeros((2, 1, 6, 6, 2), np.float32)
    x[1, 0, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", x)
    for path, fragment in ((huge, "declares"), (malformed, "not a readable .npy"), (tmp_path / "nan.npy", "NaN")):
        assert_one_line_error(tinycomp("run", host_build, "--inputs", path, "--outputs", tmp_path / "y.npy"),
                              fragment)
    assert not (tmp_path / "y.npy").exists()


def test_bogus_manifests_are_one_line(tmp_path):
    bogus = tmp_path / "bogus"
    bogus.mkdir()
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.int8))
    for text in ("[]", '{"board": "qemu"}', '{"board": "qemu", "input": {"shape": [1, 4], "scale": 1.0, '
                 '"zero_point": 0}, "output": {"shape": [1, 4], "scale": 1.0, "zero_point": 0}, '
                 '"layers": [], "macs": 0, "arena_bytes": 0, "firmware": {"elf": "../../etc/passwd", "bin": "x"}}',
                 "{not json"):
        (bogus / "tinycomp.json").write_text(text)
        for command in (("run", bogus, "--inputs", tmp_path / "x.npy", "--outputs", tmp_path / "y.npy"),
                        ("profile", bogus), ("flash", bogus)):
            assert_one_line_error(tinycomp(*command), "tinycomp")


@pytest.mark.parametrize("labels,fragment", [
    (np.array([0, 1, np.nan, 2]), "NaN or fractional"),
    (np.array([0, 1.5, 2, 3]), "NaN or fractional"),
    (np.array(["a", "b", "c", "d"]), "give integer class indices"),
    (np.array([0, 1, 2]), "3 labels for 4 samples"),
    (np.eye(5)[[0, 1, 2, 3]] * 2, "not one-hot"),
])
def test_bad_labels_are_one_line(model_file, tmp_path, labels, fragment):
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 6, 6, 2), np.int8))
    np.save(tmp_path / "y.npy", labels)
    result = tinycomp("validate", model_file, "--board", "host", "--data", tmp_path / "x.npy",
                      "--labels", tmp_path / "y.npy", "--out", tmp_path / "v")
    assert_one_line_error(result, fragment)


def test_validate_accepts_one_hot_labels_and_refuses_no_samples(model_file, tmp_path):
    x = np.random.default_rng(0).integers(-128, 128, (4, 1, 6, 6, 2), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.eye(5)[[0, 1, 2, 3]])
    result = tinycomp("validate", model_file, "--board", "host", "--data", tmp_path / "x.npy",
                      "--labels", tmp_path / "y.npy", "--out", tmp_path / "v", "--report", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["int8"]["bit_exact_fraction"] == 1.0
    np.save(tmp_path / "empty.npy", np.zeros((0, 1, 6, 6, 2), np.int8))
    assert_one_line_error(tinycomp("validate", model_file, "--board", "host", "--data", tmp_path / "empty.npy",
                                   "--out", tmp_path / "v2"), "no samples")
