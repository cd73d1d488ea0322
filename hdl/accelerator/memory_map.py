"""The accelerator's memory map: what the host reads and writes, and what a program row holds.

The read map (:data:`READ_MAP`), the performance counters (:data:`COUNTERS` and the per-step
:data:`LAYER_COUNTERS`) with the helpers that name and difference them, and the layouts of a
program row (:func:`descriptor_layout`) and of the ``write`` port's payload (:func:`write_layout`).
The driver, the simulator and the gateware all take them from here.
"""

from __future__ import annotations

from amaranth.lib import data

from spikeforge.firmware.program import OPS, HardwareConfig, field_bits, write_port_layout

__all__ = ["READ_MAP", "COUNTERS", "PROFILE_COUNTERS", "LAYER_COUNTERS", "hardware_counters",
           "named_counters", "recorded_steps", "step_counters", "write_layout", "descriptor_layout"]

#: Global performance counters, in read order from ``READ_MAP["counters"]``.
COUNTERS = ("cycles", "events", "sops", "accumulator_busy", "source_stall", "post_busy", "sdsa_busy",
            "reader_busy")
#: The profiling counters: busy and stall cycles of the datapath's parts. Hardware built without
#: them (``HardwareConfig.profile_counters=False``) reads them as 0.
PROFILE_COUNTERS = COUNTERS[3:]


def hardware_counters(hw: HardwareConfig) -> tuple[str, ...]:
    """The global counters ``hw`` has (:data:`COUNTERS`, less the profiling ones if it has none)."""
    return COUNTERS if hw.profile_counters else tuple(n for n in COUNTERS if n not in PROFILE_COUNTERS)


def named_counters(hw: HardwareConfig, words) -> dict[str, int]:
    """The counters ``hw`` has, by name, from the words read at ``READ_MAP["counters"]`` (one per
    :data:`COUNTERS` entry, in order; a profiling counter ``hw`` lacks is left out)."""
    present = hardware_counters(hw)
    return {n: v for n, v in zip(COUNTERS, words) if n in present}


#: Per-step counters (``READ_MAP["layers"] + 4 * step + k``): the global counters of these names
#: as each step ended (:func:`step_counters` turns them into per-step counts).
LAYER_COUNTERS = ("cycles", "events", "sops")


def recorded_steps(program) -> list:
    """The descriptors of ``program`` whose counters the hardware records, in step order: all but
    END (the program's last)."""
    return [d for d in program if d.op != OPS["END"]]


def step_counters(words) -> list[dict[str, int]]:
    """Per-step counts from the words read at ``READ_MAP["layers"] + 4 * s + k`` (``words[s][k]``,
    :data:`LAYER_COUNTERS`, for steps 0, 1, ... of a run): the hardware records the global
    counters as each step ends, so step ``s`` counts the difference from step ``s - 1`` (modulo
    2**32; a run starts them from 0). A step's cycles run from the previous step's end to its own,
    its fetch and decode included, so the steps' cycles add up to the run's less 3 (recording the
    last step, then fetching and decoding END)."""
    out, before = [], [0] * len(LAYER_COUNTERS)
    for snap in words:
        out.append({n: (now - then) % (1 << 32) for n, now, then in zip(LAYER_COUNTERS, snap, before)})
        before = snap
    return out


#: Base addresses of the read map.
READ_MAP = {"logits": 0x000, "counters": 0x100, "hw_id": 0x180, "format": 0x181, "status": 0x182,
            "layers": 0x200}

def descriptor_layout(hw: HardwareConfig) -> data.StructLayout:
    """A program-memory row: each descriptor field at its hardware width (:func:`field_bits`), plus
    ``invalid``, set when a written word was above its field's largest value (:func:`field_max`;
    the step then stops the run with the error flag, like an unknown op)."""
    return data.StructLayout({**field_bits(hw), "invalid": 1})


def write_layout(hw: HardwareConfig) -> data.StructLayout:
    """Payload of the accelerator's ``write`` stream: memory space, word address, 32-bit data."""
    return data.StructLayout({"space": 3, "addr": write_port_layout(hw)[1], "data": 32})
