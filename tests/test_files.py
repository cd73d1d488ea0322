"""Output files and folders: written whole or not at all, checked before the work."""

import errno
import os

import pytest

from spikeforge.common import files
from spikeforge.common.files import (OutputPathError, atomic_write_bytes, check_output_file, check_output_folder,
                                    write_folder)


def _fail_on_call(monkeypatch, n):
    """Make the ``n``-th staged file fail as a full disk would."""
    real, calls = files._stage, []

    def stage(path, data):
        calls.append(path)
        if len(calls) == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(files, "_stage", stage)


def test_a_failed_folder_write_changes_nothing(tmp_path, monkeypatch):
    (tmp_path / "a.v").write_text("old a")
    (tmp_path / "c.json").write_text("old c")
    _fail_on_call(monkeypatch, 3)
    with pytest.raises(OutputPathError, match=r"cannot write c\.json \(No space left on device\); nothing was written"):
        write_folder(tmp_path, {"a.v": b"new a", "b.bin": b"new b", "c.json": b"new c"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.v", "c.json"]      # no .tmp left, no b.bin
    assert (tmp_path / "a.v").read_text() == "old a" and (tmp_path / "c.json").read_text() == "old c"


def test_a_failed_folder_write_removes_the_folders_it_made(tmp_path, monkeypatch):
    _fail_on_call(monkeypatch, 2)
    with pytest.raises(OutputPathError):
        write_folder(tmp_path / "new" / "sub", {"a": b"1", "b": b"2"})
    assert not any(tmp_path.iterdir())


def test_a_folder_write_makes_the_folder(tmp_path):
    paths = write_folder(tmp_path / "new" / "sub", {"a": b"1", "b": b"2"})
    assert paths["b"].read_bytes() == b"2" and sorted(p.name for p in (tmp_path / "new" / "sub").iterdir()) == ["a", "b"]


def test_a_failed_file_write_names_the_file_and_removes_its_folders(tmp_path, monkeypatch):
    _fail_on_call(monkeypatch, 1)
    target = tmp_path / "q" / "m.sfq"
    with pytest.raises(OutputPathError, match=rf"{target}: cannot write \(No space left on device\)"):
        atomic_write_bytes(target, b"data")
    assert not any(tmp_path.iterdir())


@pytest.fixture
def specials(tmp_path):
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "zz")
    return tmp_path


@pytest.mark.parametrize("name,message", [
    ("fifo", "is not a regular file"),
    ("link", "is a symbolic link; writing would replace the link"),
    ("dangling", "is a symbolic link; writing would replace the link"),
    ("file/m.sfq", "is a file, not a folder"),
    ("dangling/m.sfq", "is a symbolic link to a missing path"),
])
def test_output_files_that_are_not_plain_files_are_refused(specials, name, message):
    with pytest.raises(OutputPathError, match=message):
        check_output_file(specials / name)
    assert (specials / "fifo").is_fifo() and (specials / "link").is_symlink()


def test_a_device_is_never_an_output(tmp_path):
    with pytest.raises(OutputPathError, match="is not a regular file"):
        check_output_file("/dev/null")


@pytest.mark.parametrize("name,message", [
    ("file", "exists and is not a folder"),
    ("fifo", "exists and is not a folder"),
    ("dangling/sub", "is a symbolic link to a missing path"),
    ("file/sub", "is a file, not a folder"),
])
def test_output_folders_are_checked(specials, name, message):
    with pytest.raises(OutputPathError, match=message):
        check_output_folder(specials / name)


def test_checks_create_nothing(tmp_path):
    check_output_file(tmp_path / "a" / "b" / "m.sfq")
    check_output_folder(tmp_path / "c" / "d")
    assert not any(tmp_path.iterdir())
