"""Bounds of the integer contract (``docs/arithmetic.md``), shared by the quantizer, the ``.sfq``
loader and, through :mod:`spikeforge.firmware.program`, the hardware.

They live here, at the bottom of the dependency order (model -> firmware -> hdl -> sim -> host),
because the integer contract is the model's: the program format and the gateware take them from it.
"""

__all__ = ["MAX_WEIGHT_SHIFT", "MAX_WIDTH_BITS"]

#: Largest per-layer weight shift: a residual branch's weights may be stored at most 2**16 times
#: coarser than the finest branch's (the accumulator's shifter; a program's ``weight_shift`` field).
MAX_WEIGHT_SHIFT = 16
#: Widest value of any datapath width (weights, accumulators and biases, U, membranes and
#: thresholds, token sums, logits, pixels): the golden model and the simulators compute in
#: ``torch.int64``, which still holds the sum of two 63-bit values (a LIF's ``X - V``, a shortcut's
#: ``U + X``); at 64 bits they would not.
MAX_WIDTH_BITS = 63
