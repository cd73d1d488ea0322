"""What the accelerator's components share: the sequencer's control interface (the running
step's descriptor and the flags decoded from it), the request signatures of the two shared
buffers (spike buffer, residual stream U), loop-nest counters and spike-buffer addressing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikeforge.firmware.program import KINDS, OPS, HardwareConfig, field_bits

from spikeforge.firmware.memory_map import descriptor_layout

#: Depth of the chunk and SDSA FIFOs.
FIFO_DEPTH = 4


def words(bits: int) -> int:
    """32-bit words of a ``bits``-wide row."""
    return -(-bits // 32)


# ------------------------------------------------------------------------------- descriptors

def is_conv(x):
    """A ``CONV`` step (``x``: a descriptor view)."""
    return x.op == OPS["CONV"]


def is_pixel_conv(x):
    """The first layer: a ``CONV`` over pixels, repeated for all T."""
    return is_conv(x) & (x.kind == KINDS["pixel3x3"])


def step_layout(hw: HardwareConfig) -> data.StructLayout:
    """The flags and offsets of the running step that several components use, registered in
    DECODE by the sequencer: the op class, the input and output maps' first spike-buffer rows,
    the last word of a row that holds input channels, the 3x3 window's row offsets, and the
    channel mask of a row's last word (bits ``1 .. spike_word_bits``)."""
    fw = field_bits(hw)
    return data.StructLayout({
        "conv": 1, "pixel": 1, "sdsa": 1, "or_pool": 1,
        "in_base": fw["in_base"], "out_base": fw["out_base"],
        "words_last": range(hw.spike_row_words),
        "up": signed(fw["row_stride"] + 1), "down": signed(fw["row_stride"] + 1),
        "left": signed(fw["steps"] + 1), "right": signed(fw["steps"] + 1),
        "in_mask": hw.spike_word_bits,
    })


def control_signature(hw: HardwareConfig) -> wiring.Signature:
    """The sequencer's control interface (``Out`` on the sequencer, ``In`` on the engines):
    ``desc`` the running step's descriptor (held from FETCH to the next FETCH), ``step`` its
    decoded flags (:func:`step_layout`), ``decode`` the DECODE cycle (components register their
    own flags from ``desc`` in it), ``go`` the one-cycle start of the step."""
    return wiring.Signature({"desc": Out(descriptor_layout(hw)), "step": Out(step_layout(hw)),
                             "decode": Out(1), "go": Out(1)})


def decoded(m: Module, control, sig: Signal, fn) -> None:
    """``sig`` is ``fn(descriptor)``, registered in DECODE: no decode logic on its paths."""
    with m.If(control.decode):
        m.d.sync += sig.eq(fn(control.desc))


def window_offset(step, wy, wx) -> tuple[Value, Value]:
    """The row offsets (y, x) of 3x3 window tap ``(wy, wx)`` (0, 1, 2: before, centre, after)."""
    return (Mux(wy == 0, step.up, Mux(wy == 1, 0, step.down)),
            Mux(wx == 0, step.left, Mux(wx == 1, 0, step.right)))


# ------------------------------------------------------------------------------- shared buffers

def spike_addr_bits(hw: HardwareConfig) -> int:
    return ceil_log2(hw.spike_rows * hw.spike_row_words)


def spike_addr(hw: HardwareConfig, row, word) -> Value:
    """The spike-buffer address of ``word`` of ``row`` (word-minor)."""
    return Cat(Value.cast(word)[:hw.spike_row_words.bit_length() - 1], row)


def lane_groups(hw: HardwareConfig) -> int:
    """Lane groups (of P bits) per spike-buffer word."""
    return hw.spike_word_bits // hw.lanes


def group_word(hw: HardwareConfig, g) -> Value:
    """The word of a spike-buffer row that holds lane group ``g``."""
    return Value.cast(g) >> (lane_groups(hw).bit_length() - 1)


def group_enable(hw: HardwareConfig, g) -> Value:
    """The write enables (one per lane group of a word) that write lane group ``g``."""
    gpw = lane_groups(hw)
    return Const(1, gpw) << Value.cast(g)[:gpw.bit_length() - 1]


def spike_read_signature(hw: HardwareConfig) -> wiring.Signature:
    """A spike-buffer reader's request (``Out`` on the reader): ``addr``; ``data`` is the word at
    the previous cycle's ``addr``."""
    return wiring.Signature({"addr": Out(spike_addr_bits(hw)), "data": In(hw.spike_word_bits)})


def spike_write_signature(hw: HardwareConfig) -> wiring.Signature:
    """A spike-buffer writer's request (``Out`` on the writer): written when ``valid``, lane group
    ``k`` of the word if bit ``k`` of ``en``."""
    return wiring.Signature({"valid": Out(1), "addr": Out(spike_addr_bits(hw)), "data": Out(hw.spike_word_bits),
                             "en": Out(lane_groups(hw))})


def u_layout(hw: HardwareConfig) -> data.ArrayLayout:
    """A row of the residual stream U: P lanes of ``u_bits``."""
    return data.ArrayLayout(signed(hw.u_bits), hw.lanes)


def v_layout(hw: HardwareConfig) -> data.ArrayLayout:
    """A row of LIF membranes or thresholds: P lanes of ``v_bits``."""
    return data.ArrayLayout(signed(hw.v_bits), hw.lanes)


def u_read_signature(hw: HardwareConfig) -> wiring.Signature:
    """A U reader's request (``Out`` on the reader): ``addr``; ``data`` the row at the previous
    cycle's ``addr``."""
    return wiring.Signature({"addr": Out(ceil_log2(hw.u_rows)), "data": In(u_layout(hw))})


def u_beat_layout(hw: HardwareConfig) -> data.StructLayout:
    """A beat of the U reader: a row and whether it is a sequence's first / last token."""
    return data.StructLayout({"x": u_layout(hw), "first": 1, "last": 1})


# ------------------------------------------------------------------------------- loop nests

#: Extra work of a loop step: synchronous statements, or a function that adds them (conditional ones).
Hook = Callable[[], None] | list | None


@dataclass
class Loop:
    """One counter of a loop nest: ``counter`` runs ``0 .. limit - 1``; ``on_step`` / ``on_wrap`` run
    when it increments / wraps back to 0."""

    counter: Value
    limit: Value
    on_step: Hook = None
    on_wrap: Hook = None


def _run_hook(m: Module, hook: Hook) -> None:
    if callable(hook):
        hook()
    elif hook:
        m.d.sync += hook


def step_loops(m: Module, loops: list[Loop], done: Hook = None) -> None:
    """Statements that advance a loop nest by one iteration, innermost loop first: a counter that
    reaches its limit wraps to 0 and carries into the next; ``done`` runs when the outermost wraps."""
    loop = loops[0]
    with m.If(loop.counter + 1 < loop.limit):
        m.d.sync += loop.counter.eq(loop.counter + 1)
        _run_hook(m, loop.on_step)
    with m.Else():
        m.d.sync += loop.counter.eq(0)
        _run_hook(m, loop.on_wrap)
        if len(loops) > 1:
            step_loops(m, loops[1:], done)
        else:
            _run_hook(m, done)
