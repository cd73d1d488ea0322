"""Construction-parameter checks shared by the blocks: a clear ``ValueError`` naming the block and
the parameter, and no "created but never used" warning for the refused instance.

Every integer parameter has a lower bound (given by the block) and an upper bound by its kind
(:func:`upper_bound`), so that no parameter can ask for an unbounded design: the limits of
:class:`~spikeforge.firmware.program.HardwareConfig` (lanes up to ``MAX_LANES``, widths up to
:data:`MAX_BITS`, capacities and depths up to :data:`MAX_CAPACITY` entries).
"""

from __future__ import annotations

from spikeforge.firmware.program import MAX_LANES, MAX_MEMORY_BITS, MAX_MEMORY_ROWS, MAX_WIDTH_BITS

__all__ = ["refuse", "check_ints", "check_memories", "upper_bound", "MAX_MEMORY_BITS", "MAX_LANES", "MAX_BITS", "MAX_CAPACITY", "MAX_PLANE_BITS"]

#: Widest value (accumulators, membranes, weights): the golden model computes in int64.
MAX_BITS = MAX_WIDTH_BITS
#: Largest capacity or memory depth of one block: the deepest memory a HardwareConfig may ask for
#: (the accelerator's weight memory is a SparseAccumulator's). Amaranth's Verilog generation grows
#: with a memory's depth x width (measured: 65,536 x 128 bits, 76 s and 1.3 GB), so deep memories
#: are slow to generate; they belong in external memory.
MAX_CAPACITY = MAX_MEMORY_ROWS
#: Bit-plane index bits: pixels of up to 2**6 = 64 bits.
MAX_PLANE_BITS = 6


def upper_bound(name: str) -> int:
    """The largest value a block parameter called ``name`` may take."""
    if name == "lanes":
        return MAX_LANES
    if name == "plane_bits":
        return MAX_PLANE_BITS
    if name.endswith("_bits"):
        return MAX_BITS
    if name.endswith("shift"):
        return MAX_BITS - 1
    return MAX_CAPACITY   # capacities, depths, chunk widths


def refuse(owner, message: str):
    """Raise ``ValueError("<Block>: <message>")`` for a block whose construction is refused."""
    owner._MustUse__silence = True  # Amaranth would otherwise warn that the half-built block was unused
    raise ValueError(f"{type(owner).__name__}: {message}")


def check_ints(owner, **params: tuple[object, int]) -> None:
    """``name=(value, minimum)``: each value must be an ``int`` from its minimum to :func:`upper_bound`."""
    for name, (value, lo) in params.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            refuse(owner, f"{name} must be an integer >= {lo}, got {value!r}")
        hi = upper_bound(name)
        if value > hi:
            refuse(owner, f"{name} must be at most {hi}, got {value}")


def check_memories(owner, **memories: tuple[int, int]) -> None:
    """``name=(depth, width)``: the block's memories together hold at most :data:`MAX_MEMORY_BITS`
    bits (the bound of a whole accelerator; Verilog generation grows with a memory's size)."""
    total = sum(depth * width for depth, width in memories.values())
    if total > MAX_MEMORY_BITS:
        shown = ", ".join(f"{name} {depth:,} x {width}" for name, (depth, width) in memories.items())
        refuse(owner, f"its memories ({shown}) hold {total:,} bits, more than the {MAX_MEMORY_BITS:,} "
                      f"(MAX_MEMORY_BITS) a generated block may hold")
