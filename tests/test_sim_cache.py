"""Where simulator builds are cached (:func:`spikeforge.sim.runner.build_root`): the
``SPIKEFORGE_BUILD_DIR`` environment variable, else the source tree's ``build/sim``, else (a
read-only install) the user's cache directory. Resolved at each call; no simulator is built here."""

import os

import pytest

from spikeforge.firmware.program import HardwareConfig
from spikeforge.sim import runner
from spikeforge.sim.runner import BuildError

HW = HardwareConfig(lanes=8, max_channels=64, max_embed=32)


@pytest.fixture
def source_root(monkeypatch, tmp_path):
    """The source tree's build root, moved into tmp_path; the environment without the variables."""
    root = tmp_path / "src" / "build" / "sim"
    monkeypatch.setattr(runner, "DEFAULT_BUILD_ROOT", root)
    for var in ("SPIKEFORGE_BUILD_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return root


def test_the_source_tree_by_default(source_root):
    assert runner.build_root() == source_root and source_root.is_dir()


def test_the_variable_set_after_import_moves_the_builds(source_root, monkeypatch, tmp_path):
    from spikeforge.sim.virtual_board import VirtualBoard

    monkeypatch.setenv("SPIKEFORGE_BUILD_DIR", str(tmp_path / "cache"))
    assert runner.build_root() == tmp_path / "cache"
    board = VirtualBoard(HW)
    assert board.build_dir.parent == tmp_path / "cache"
    assert VirtualBoard(HW, build_root=tmp_path / "given").build_dir.parent == tmp_path / "given"
    monkeypatch.setenv("SPIKEFORGE_BUILD_DIR", "")                  # empty: unset
    assert runner.build_root() == source_root


def test_a_relative_variable_is_taken_from_the_working_directory(source_root, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPIKEFORGE_BUILD_DIR", "rel/sim")
    assert runner.build_root() == tmp_path / "rel" / "sim"


def test_the_accelerator_simulation_uses_it(source_root, monkeypatch, tmp_path):
    from spikeforge.firmware.compiler import compile_model, hardware_for
    from spikeforge.model.quantize import embedded_qmodel
    from spikeforge.sim import accelerator_sim

    monkeypatch.setattr(accelerator_sim, "simulator_missing", lambda simulator: None)
    monkeypatch.setattr(accelerator_sim, "write_verilog", lambda top, name, path, simulator: path)
    monkeypatch.setattr(accelerator_sim, "Accelerator", lambda hw: None)
    monkeypatch.setenv("SPIKEFORGE_BUILD_DIR", str(tmp_path / "cache"))
    qm = embedded_qmodel()
    _, vfile = accelerator_sim._accelerator_verilog(compile_model(qm, hardware_for(qm)), "verilator", None)
    assert vfile.parent.parent == tmp_path / "cache"


def test_an_unwritable_variable_is_an_error(source_root, monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("SPIKEFORGE_BUILD_DIR", str(tmp_path / "file" / "sim"))
    with pytest.raises(BuildError, match=rf"SPIKEFORGE_BUILD_DIR={tmp_path / 'file' / 'sim'}: cannot create"):
        runner.build_root()


def _block(source_root, how, monkeypatch):
    """Make the source tree's build/ unusable: a file where the folder goes, or a read-only tree
    (which root writes to anyway: then ``os.access`` says what a read-only mount would)."""
    src = source_root.parent.parent
    src.mkdir(parents=True)
    if how == "file":
        (src / "build").write_text("")
        return
    src.chmod(0o555)
    if os.geteuid() == 0:
        access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: not str(path).startswith(str(src)) and access(path, mode))


@pytest.mark.parametrize("how", ["file", "read-only"])
def test_a_read_only_source_tree_falls_back_to_the_user_cache(source_root, monkeypatch, tmp_path, how):
    _block(source_root, how, monkeypatch)
    try:
        assert runner.build_root() == tmp_path / "home" / ".cache" / "spikeforge" / "sim"
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert runner.build_root() == tmp_path / "xdg" / "spikeforge" / "sim"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative")            # not absolute: ignored (XDG spec)
        assert runner.build_root() == tmp_path / "home" / ".cache" / "spikeforge" / "sim"
    finally:
        source_root.parent.parent.chmod(0o755)


def test_no_writable_place_is_an_error(source_root, monkeypatch, tmp_path):
    _block(source_root, "file", monkeypatch)
    (tmp_path / "xdg").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(BuildError, match=r"no writable folder for simulator builds.*SPIKEFORGE_BUILD_DIR"):
        runner.build_root()
