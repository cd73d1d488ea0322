"""Amaranth gateware of the accelerator (``docs/architecture.md``, ``docs/engines.md``).

Engines, each a :class:`amaranth.lib.wiring.Component` with :mod:`amaranth.lib.stream` ports
(valid/ready back-pressure) and equal to a :mod:`spikeforge.model.golden` op function:

==================  =================================================  =========================
block               computes                                           golden op
==================  =================================================  =========================
SpikeEncoder        bit-packed spikes -> addresses of the set bits     (event list of the input)
SparseAccumulator   bias + sum of weight columns over events           ``sparse_accumulate``
SynapticEngine      SpikeEncoder + SparseAccumulator                   ``sparse_accumulate``
LIFArray            P LIF neurons per cycle                            ``lif``
SDSAUnit            Q AND LIF(2 * sum_tokens(K AND V))                 ``sdsa``
MaxPool / OrPool    window max of membranes / OR of spikes             ``max_pool`` / ``or_pool``
TokenSum            sum over tokens (GAP)                              ``token_sum``
ShortcutAdder       membrane shortcut U + X                            ``shortcut_add``
==================  =================================================  =========================

The whole-model overlay, :class:`~spikeforge.hdl.accelerator.Accelerator`, puts the engines
together behind a sequencer that runs a compiled program (``docs/accelerator.md``).

:data:`BLOCKS` maps the block names of ``spikeforge generate --block`` to their classes;
:func:`make_block` builds one from keyword parameters with a clear error for unknown ones.
"""

from __future__ import annotations

import inspect

from .accelerator import Accelerator
from .lif_array import LIFArray
from .reduce import LaneReducer, MaxPool, OrPool, TokenSum, pool3x3s2_windows
from .sdsa_unit import SDSAUnit
from .shortcut_adder import ShortcutAdder
from .sparse_accumulator import SparseAccumulator
from .spike_encoder import SpikeEncoder
from .synaptic_engine import SynapticEngine

__all__ = [
    "BLOCKS", "make_block", "block_parameters", "Accelerator",
    "SpikeEncoder", "SparseAccumulator", "SynapticEngine", "LIFArray", "SDSAUnit",
    "LaneReducer", "MaxPool", "OrPool", "TokenSum", "ShortcutAdder", "pool3x3s2_windows",
]

BLOCKS = {
    "spike_encoder": SpikeEncoder,
    "sparse_accumulator": SparseAccumulator,
    "synaptic_engine": SynapticEngine,
    "lif_array": LIFArray,
    "sdsa_unit": SDSAUnit,
    "max_pool": MaxPool,
    "or_pool": OrPool,
    "token_sum": TokenSum,
    "shortcut_adder": ShortcutAdder,
}


def block_parameters(name: str) -> dict[str, int]:
    """The integer construction parameters of a block and their defaults."""
    if name not in BLOCKS:
        raise ValueError(f"unknown block {name!r}; blocks: {', '.join(BLOCKS)}")
    sig = inspect.signature(BLOCKS[name].__init__)
    return {p.name: p.default for p in sig.parameters.values() if p.name != "self"}


def make_block(name: str, *, elaborated: bool = True, **params):
    """Construct block ``name`` with ``params`` (names as in :func:`block_parameters`).

    ``elaborated=False`` marks an instance built only to read its attributes (memory layouts,
    port shapes), which Amaranth would otherwise report as unused when it is garbage-collected.
    """
    known = block_parameters(name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"block {name!r} has no parameter {', '.join(unknown)}; "
                         f"parameters: {', '.join(f'{k}={v}' for k, v in known.items())}")
    block = BLOCKS[name](**params)
    if not elaborated:
        _silence(block)
    return block


def _silence(block) -> None:
    """Mark a block and its sub-blocks as deliberately never elaborated."""
    block._MustUse__silence = True
    for value in vars(block).values():
        if hasattr(value, "elaborate"):
            _silence(value)
