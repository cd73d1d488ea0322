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

__all__ = ["OutputPathError", "atomic_write_bytes", "write_folder", "check_output_file", "check_output_folder",
           "not_a_file"]


class OutputPathError(ValueError):
    """An output path that cannot be written; the message names the path and the reason."""


def not_a_file(path: str | os.PathLike, what: str) -> str:
    """Why ``path`` cannot be read as a ``what`` (e.g. ``"checkpoint file"``): missing, a folder, or
    not a regular file (a device, a FIFO: reading one could block or never end)."""
    path = Path(path)
    if not path.exists():
        return f"no such {what}"
    if path.is_dir():
        return f"is a folder, not a {what}"
    return f"is not a regular file (expected a {what})"


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


def _make_folders(folder: Path, what: str, shown: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the folders created (deepest last)."""
    missing = []
    probe = folder.absolute()
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_folders(missing[::-1])
        prefix = f"{what} " if what else ""
        raise OutputPathError(f"{prefix}{shown}: cannot create the folder {folder} ({exc.strerror or exc})") from None
    return missing[::-1]


def _remove_folders(created: list[Path]) -> None:
    """Remove the (empty) folders a failed write created, deepest first."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes, what: str | None = None) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place (mode 0666 & ~umask).

    A failure leaves neither the file nor the folders created for it; it raises
    :class:`OutputPathError` naming the path (``what``: the option it came from, e.g. ``--out``).
    """
    path = Path(path)
    shown = f"{what} {path}" if what else str(path)
    created = _make_folders(path.parent, what or "", path)
    tmp = None
    try:
        tmp = _stage(path, data)
        os.replace(tmp, path)
    except OSError as exc:
        _remove_folders(created)
        raise OutputPathError(f"{shown}: cannot write ({exc.strerror or exc}); nothing was written") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_folder(folder: str | os.PathLike, files: dict[str, bytes], what: str = "--out") -> dict[str, Path]:
    """Write ``files`` (name -> bytes) into ``folder``, all or none.

    Every file is first written to a temporary file beside its final name; only when all of
    them are written are they renamed into place, so a failure (a full disk, a name that is a
    folder, a read-only file) leaves the folder as it was, and removes the folders it created.
    Raises :class:`OutputPathError` naming the file. Returns name -> final path.
    """
    folder = check_output_folder(folder, what)
    for name in files:
        _check_replaceable(folder / name, what, folder)
    created = _make_folders(folder, what, folder)
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
    except BaseException:
        for tmp in staged.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        _remove_folders(created)
        raise
    return {name: folder / name for name in files}


def _check_replaceable(path: Path, what: str, shown: Path) -> None:
    """``path`` is absent or a regular file (renaming a new file over it replaces it, nothing else)."""
    if path.is_symlink():
        raise OutputPathError(f"{what} {shown}: {path} is a symbolic link; writing would replace the link, "
                              f"not its target (give the target's path)")
    if path.is_dir():
        raise OutputPathError(f"{what} {shown}: {path} is a folder; nothing was written")
    if os.path.lexists(path) and not path.is_file():
        raise OutputPathError(f"{what} {shown}: {path} is not a regular file (a device, FIFO or socket); "
                              f"nothing was written")


def _nearest_existing(path: Path, what: str, shown: Path) -> Path:
    """The nearest folder at or above ``path`` that exists (:class:`OutputPathError` if it is not a folder)."""
    path = path.absolute()
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    if path.is_symlink() and not path.exists():
        raise OutputPathError(f"{what} {shown}: {path} is a symbolic link to a missing path")
    if not path.is_dir():
        raise OutputPathError(f"{what} {shown}: {path} is a file, not a folder")
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
    Raises :class:`OutputPathError` when it is a file, sits under a file or a broken link, or
    cannot be written.
    """
    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputPathError(f"{what} {folder}: exists and is not a folder")
    _probe_writable(_nearest_existing(folder, what, folder), what, folder)
    return folder


def check_output_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Check that ``path`` can be written as a file (an existing regular file is replaced); returns it.

    Nothing is created. Raises :class:`OutputPathError` when ``path`` is a folder, a symbolic link,
    a device or FIFO, a parent is a file or a broken link, or the folder it goes in (or its nearest
    existing parent) cannot be written.
    """
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise OutputPathError(f"{what} {path}: not a file name")
    if path.is_dir() and not path.is_symlink():
        raise OutputPathError(f"{what} {path}: is a folder; give the name of the file to write")
    _check_replaceable(path, what, path)
    _probe_writable(_nearest_existing(path.parent, what, path), what, path)
    return path
