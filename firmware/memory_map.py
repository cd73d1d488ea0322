"""The accelerator's memory map and control bus: the contract between the gateware and its users.

The accelerator (:mod:`spikeforge.hdl.accelerator`), the host link that drives it
(:mod:`spikeforge.hdl.host_link`), the simulators (:mod:`spikeforge.sim`) and the host driver
(:mod:`spikeforge.host.driver`) all import these names from here:

* :func:`control_bus`: the ``wiring.Signature`` of the accelerator's control bus (write stream,
  ``start``, ``busy``, ``done``, ``read_addr`` / ``read_data``), declared once;
* the write port: :func:`write_layout` (a beat), :func:`descriptor_layout` (a program row),
  :func:`row_beats` (the beats that write one row) and :func:`write_word` (a beat as the port's
  bits);
* the read map: :data:`READ_MAP`, the counters (:data:`COUNTERS`, :data:`LAYER_COUNTERS`) and the
  functions that name the words read back;
* :func:`model_rows`: the one serialiser of a compiled model's memory rows (the files of
  ``spikeforge generate``, the driver's WRITE frames and the RTL bench's load all use it).
"""

from __future__ import annotations

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .program import OPS, SPACES, HardwareConfig, field_bits, pack_lanes, row_bits, row_words, words_per_row, \
    write_port_layout

__all__ = ["READ_MAP", "COUNTERS", "PROFILE_COUNTERS", "LAYER_COUNTERS", "hardware_counters", "named_counters",
           "recorded_steps", "step_counters", "write_layout", "descriptor_layout", "control_bus", "row_beats",
           "write_word", "model_rows", "MODEL_SPACES"]

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


def control_bus(hw: HardwareConfig) -> wiring.Signature:
    """The accelerator's control bus as its driver (the host link, a bench) sees it; the
    accelerator has its flip.

    * ``write``: ``Out(stream.Signature(write_layout(hw)))``: word ``addr % 2**k`` of row
      ``addr >> k`` of memory ``space`` (``k``: :func:`write_port_layout`'s ``word_bits``);
    * ``start``: ``Out(1)``, a one-cycle pulse runs the loaded program from step 0;
    * ``busy``, ``done``: ``In(1)``: running; finished (until the next ``start``);
    * ``read_addr``: ``Out(16)``, ``read_data``: ``In(32)``: a synchronous read of :data:`READ_MAP`
      (``read_data`` is the word at the previous cycle's ``read_addr``).
    """
    return wiring.Signature({"write": Out(stream.Signature(write_layout(hw))), "start": Out(1), "busy": In(1),
                             "done": In(1), "read_addr": Out(16), "read_data": In(32)})


def row_beats(hw: HardwareConfig, space: str, row: int, value: int) -> list[dict]:
    """The ``write`` beats (``{"space", "addr", "data"}``) that load ``value`` (an integer of the
    row's bits) into ``row`` of ``space``: the row's words, least significant first."""
    word_bits = write_port_layout(hw)[0]
    words = row_words(value, words_per_row(hw)[space])
    return [{"space": SPACES[space], "addr": (row << word_bits) | k, "data": w} for k, w in enumerate(words)]


def write_word(layout: data.StructLayout, beat: dict) -> int:
    """A ``write`` beat as the bits of the port's payload (:func:`write_layout`): each field at its
    offset, as a simulator or a Verilog bench sets the flattened port."""
    return sum((int(beat[name]) & ((1 << f.width) - 1)) << f.offset for name, f in layout)


#: The memory spaces a compiled model loads, in load order (the pixels are each image's).
MODEL_SPACES = ("program", "weights", "biases", "thresholds")


def model_rows(compiled) -> dict[str, list[tuple[int, int]]]:
    """The one serialiser of a compiled model (:class:`~spikeforge.firmware.compiler.Compiled`):
    ``(row, value)`` of each space of :data:`MODEL_SPACES`, in row order, ``value`` the row's bits
    as the write port takes them: a descriptor's words (:meth:`Descriptor.row_value`), a memory
    row's P lanes packed two's complement, lane 0 lowest (:func:`pack_lanes`)."""
    hw = compiled.hardware
    bits = row_bits(hw)
    out = {"program": [(r, d.row_value()) for r, d in enumerate(compiled.program)]}
    for space in MODEL_SPACES[1:]:
        out[space] = sorted((row, pack_lanes(lanes, bits[space] // hw.lanes)) for row, lanes in getattr(compiled, space))
    return out
