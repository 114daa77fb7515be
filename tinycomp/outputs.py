"""Writing outputs without ever losing what the user had.

A build folder is written into a hidden staging folder beside it and moved
into place only when complete. An existing folder is replaced only when its
manifest proves tinycomp wrote it and it holds nothing else (every file is
listed in the manifest with the hash it was written with). A staging folder
left by a killed build is removed by the next build into the same parent.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import OutputError

MANIFEST = "tinycomp.json"
_STAGE = ".tinycomp-stage-"  # in staging folder names: .<out name>.tinycomp-stage-<pid>-<random>
_STAGE_MARK = ".tinycomp-staging"  # a file inside, so only our own folders are ever cleaned


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _public(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create 0600/0700; outputs get the modes open() would give."""
    os.chmod(path, mode & ~_umask())


def file_digests(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file below folder (the manifest's proof of ownership)."""
    digests = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            digests[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def _foreign_files(folder: Path) -> list[str]:
    """What in folder tinycomp cannot prove it wrote ([] for a pristine build)."""
    try:
        listed = json.loads((folder / MANIFEST).read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        listed = None
    if not isinstance(listed, dict):
        return [MANIFEST + " (missing, unreadable or from an older tinycomp)"]
    foreign = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink() or not (path.is_dir() or path.is_file()):
            foreign.append(rel)
        elif path.is_file() and rel != MANIFEST:
            if listed.get(rel) != hashlib.sha256(path.read_bytes()).hexdigest():
                foreign.append(rel)
    return foreign


def safe_out_folder(out_dir: Path, protect: tuple[Path, ...] = ()) -> Path:
    """The real folder --out names, or OutputError if it is the current folder
    or one above it, the home folder, a folder holding an input (protect), a
    file, or a dangling symbolic link."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink() and not out_dir.exists():
        raise OutputError(f"--out {out_dir} is a symbolic link to nothing; give a real folder")
    real = Path(os.path.realpath(out_dir))
    cwd = Path(os.path.realpath(Path.cwd()))
    if real == cwd or real in cwd.parents or real == Path(real.anchor) or real == Path.home().resolve():
        raise OutputError(f"--out {out_dir} is the current folder, a folder above it or your home; "
                          "tinycomp writes a build into a folder of its own: give a new folder")
    for item in protect:
        item = Path(os.path.realpath(item))
        if real == item or real in item.parents:
            raise OutputError(f"--out {out_dir} holds the input {item.name}; give a new folder")
    if real.exists() and not real.is_dir():
        raise OutputError(f"--out {out_dir} is a file; give a folder")
    return real


def check_out_dir(out_dir: Path, protect: tuple[Path, ...] = ()) -> Path:
    """safe_out_folder, and a folder with anything tinycomp did not write refused."""
    real = safe_out_folder(out_dir, protect)
    if real.is_dir() and any(real.iterdir()):
        foreign = _foreign_files(real)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise OutputError(f"--out {out_dir} is not a tinycomp build it can replace (it holds {shown}); "
                              "choose an empty or new folder")
    return real


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_stages(parent: Path, name: str) -> None:
    """Remove staging folders of builds into parent/name whose process is gone."""
    for stage in parent.glob(f".{name}{_STAGE}*"):
        pid = stage.name[len(f".{name}{_STAGE}"):].split("-")[0]
        if stage.is_dir() and not stage.is_symlink() and (stage / _STAGE_MARK).is_file() \
                and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(out_dir: Path, protect: tuple[Path, ...] = ()):
    """Yield a staging folder; on success it replaces out_dir (checked by
    check_out_dir), on failure or interruption it disappears."""
    real = check_out_dir(out_dir, protect)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_stages(real.parent, real.name)
        stage = Path(tempfile.mkdtemp(prefix=f".{real.name}{_STAGE}{os.getpid()}-", dir=real.parent))
        (stage / _STAGE_MARK).touch()
    except OSError as exc:
        raise OutputError(f"cannot write to {real.parent}: {exc.strerror}") from None
    try:
        yield stage
        (stage / _STAGE_MARK).unlink()
        _public(stage, 0o777)
        if real.exists():
            check_out_dir(real)  # nothing foreign appeared while we built
            old = Path(tempfile.mkdtemp(prefix=f".{real.name}{_STAGE}{os.getpid()}-old-", dir=real.parent))
            (old / _STAGE_MARK).touch()
            os.replace(real, old / real.name)
            os.replace(stage, real)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, real)
    except OSError as exc:
        raise OutputError(f"cannot write {out_dir}: {exc.strerror}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def check_out_file(path: Path) -> Path:
    """Refuse an output file path that cannot be written, before slow work starts."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name")
    return path


def write_atomic(path: Path, write) -> None:
    """write(temporary path) beside `path`, then rename it into place, so a
    reader never sees half a file. The temporary path keeps path's suffix
    (savers such as keras' Model.save look at it); exactly `path` is written."""
    path = check_out_file(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    os.close(fd)
    try:
        write(tmp)
        _public(Path(tmp), 0o666)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_arrays(path: Path, arrays: list) -> None:
    """One array: .npy (or a one-array .npz); several: a .npz in order (arr_0, arr_1, ...)."""
    if Path(path).suffix == ".npz":
        import numpy as np

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, *arrays)

        write_atomic(path, write)
    elif len(arrays) == 1:
        save_npy(path, arrays[0])
    else:
        raise OutputError(f"{len(arrays)} outputs need a .npz file, not {path}")


def save_npy(path: Path, array) -> None:
    """np.save to exactly `path` (np.save given a name adds '.npy' to it)."""
    import numpy as np

    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)

    write_atomic(path, write)
