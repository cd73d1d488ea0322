"""cocotb stream source and sink for the Verilog of Amaranth ``stream`` ports (Icarus, Verilator).

An Amaranth stream member ``name`` becomes the Verilog ports ``name__valid``, ``name__ready`` and
``name__payload`` (one flat vector; :mod:`spikeforge.sim.payload` packs and unpacks it).

Timing discipline (the same on every simulator): inputs are driven after a falling clock edge and
sampled in the ``ReadOnly`` phase before the next rising edge, where a beat transfers if
``valid and ready``. Sources insert random idle cycles, sinks random back-pressure.
"""

from __future__ import annotations

import random

from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from .payload import pack, unpack

__all__ = ["StreamSource", "StreamSink", "port", "reset"]


async def reset(dut, cycles: int = 2) -> None:
    """Hold ``rst`` for ``cycles`` clock cycles; returns after a falling edge with ``rst`` low."""
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


def port(dut, name: str, member: str):
    return getattr(dut, f"{name}__{member}")


def _uint(handle) -> int:
    """The unsigned value of a signal (``Logic`` for 1 bit, ``LogicArray`` otherwise); X/Z raise."""
    value = handle.value
    if not value.is_resolvable:
        raise ValueError(f"{handle._name} is {value} (unresolved)")
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


class StreamSource:
    """Drives payloads into stream ``name``; ``idle`` is the probability of a cycle without ``valid``."""

    def __init__(self, dut, name: str, shape, rng: random.Random, idle: float = 0.0):
        self.dut, self.name, self.shape, self.rng, self.idle = dut, name, shape, rng, idle
        self.valid, self.ready, self.payload = (port(dut, name, m) for m in ("valid", "ready", "payload"))
        self.valid.value = 0

    async def send(self, payloads) -> None:
        pending = list(payloads)
        i = 0
        while i < len(pending):
            await FallingEdge(self.dut.clk)
            offer = not (self.idle and self.rng.random() < self.idle)
            self.valid.value = int(offer)
            if offer:
                self.payload.value = pack(self.shape, pending[i])
            await ReadOnly()
            if offer and _uint(self.ready):
                i += 1
        await FallingEdge(self.dut.clk)
        self.valid.value = 0


class StreamSink:
    """Accepts beats from stream ``name``; ``stall`` is the probability of a cycle without ``ready``."""

    def __init__(self, dut, name: str, shape, rng: random.Random, stall: float = 0.0):
        self.dut, self.name, self.shape, self.rng, self.stall = dut, name, shape, rng, stall
        self.valid, self.ready, self.payload = (port(dut, name, m) for m in ("valid", "ready", "payload"))
        self.ready.value = 0

    def offer_ready(self) -> bool:
        """Call after a falling edge: decides and drives ``ready`` for this cycle."""
        self.accepting = not (self.stall and self.rng.random() < self.stall)
        self.ready.value = int(self.accepting)
        return self.accepting

    def take(self):
        """Call in ``ReadOnly``: the payload that transfers this cycle, or ``None``."""
        if self.accepting and _uint(self.valid):
            return unpack(self.shape, _uint(self.payload))
        return None
