"""Writing files so that a failure never leaves a partial file (or a half-written folder) behind.

* :func:`atomic_write_bytes`: one file, through a temporary file renamed into place;
* :func:`write_folder`: several files of one folder, all or none (every file is staged beside its
  final name before any is renamed into place);
* :func:`check_output_file` / :func:`check_output_folder`: the checks a command runs on its
  ``--out`` *before* the work, so that a long computation never ends in an unwritable path.
  They try a real write (a temporary file) rather than trusting permission bits, which say
  nothing for root or on a read-only file system.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["OutputPathError", "atomic_write_bytes", "write_folder", "check_output_file", "check_output_folder"]


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the path and the reason."""


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask   # mkstemp creates 0600; give the usual file mode


def _stage(path: Path, data: bytes) -> str:
    """Write ``data`` to a temporary file beside ``path``; returns the temporary file's name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _file_mode())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place (mode 0666 & ~umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _stage(path, data)
    try:
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_folder(folder: str | os.PathLike, files: dict[str, bytes], what: str = "--out") -> dict[str, Path]:
    """Write ``files`` (name -> bytes) into ``folder``, all or none.

    Every file is first written to a temporary file beside its final name; only when all of
    them are written are they renamed into place, so a failure (a full disk, a name that is a
    folder, a read-only file) leaves the folder as it was. Raises :class:`OutputPathError`
    naming the file. Returns name -> final path.
    """
    folder = check_output_folder(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"{what} {folder}: cannot create the folder ({exc.strerror or exc})") from None
    for name in files:
        target = folder / name
        if target.is_dir():
            raise OutputPathError(f"{what} {folder}: {target} is a folder; nothing was written")
    staged: dict[str, str] = {}
    try:
        for name, data in files.items():
            try:
                staged[name] = _stage(folder / name, data)
            except OSError as exc:
                raise OutputPathError(f"{what} {folder}: cannot write {name} ({exc.strerror or exc}); "
                                      f"nothing was written") from None
        for name, tmp in staged.items():
            os.replace(tmp, folder / name)
    finally:
        for tmp in staged.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
    return {name: folder / name for name in files}


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe_writable(folder: Path, what: str, shown: Path) -> None:
    """Create (and remove) a temporary file in ``folder``: the only test that holds for every user."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".spikeforge-probe-", suffix=".tmp")
    except OSError as exc:
        raise OutputPathError(f"{what} {shown}: cannot write in {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_folder(folder: str | os.PathLike, what: str = "--out") -> Path:
    """Check that ``folder`` is a writable folder or can be created as one; returns it.

    Nothing is created: a missing folder is checked by a write in its nearest existing parent.
    Raises :class:`OutputPathError` when it is a file, sits under a file, or cannot be written.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{what} {folder}: exists and is not a folder")
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise OutputPathError(f"{what} {folder}: {base} is a file, not a folder")
    _probe_writable(base, what, folder)
    return folder


def check_output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Check that ``path`` can be written as a file (an existing file is replaced); returns it.

    Nothing is created. Raises :class:`OutputPathError` when ``path`` is a folder, a parent is a
    file, or the folder it goes in (or its nearest existing parent) cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"{what} {path}: is a folder; give the name of the file to write")
    if path.name in ("", ".", ".."):
        raise OutputPathError(f"{what} {path}: not a file name")
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise OutputPathError(f"{what} {path}: {base} is a file, not a folder")
    _probe_writable(base, what, path)
    return path
