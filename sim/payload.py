"""Stream payloads as plain Python values: packing to and from the flat bit vectors of Verilog ports.

An Amaranth ``StructLayout`` payload is a ``dict`` of its fields, an ``ArrayLayout`` a ``list``,
a plain shape an ``int`` (negative for signed shapes). In the generated Verilog a payload is one
unsigned vector with the first field in the low bits; :func:`pack` and :func:`unpack` convert.
"""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack", "payload_shape"]


def payload_shape(component, port: str):
    """The payload shape (layout) of stream port ``port`` of an Amaranth component."""
    return component.signature.members[port].signature.members["payload"].shape


def pack(shape, value) -> int:
    """The unsigned bit pattern of ``value`` (dict / list / int) in ``shape``; out-of-range values raise."""
    if isinstance(shape, data.Layout):
        bits = 0
        for key, field in shape:
            if isinstance(value, dict):
                if key not in value:
                    raise KeyError(f"payload field {key!r} missing from {sorted(value)}")
                item = value[key]
            else:
                item = value[key]
            bits |= pack(field.shape, item) << field.offset
        return bits
    s = Shape.cast(shape)
    v = int(value)
    lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
    if not lo <= v <= hi:
        raise ValueError(f"value {v} does not fit {s}")
    return v & ((1 << s.width) - 1) if s.width else 0


def unpack(shape, bits: int):
    """The Python value (dict / list / int) of the bit pattern ``bits`` in ``shape``."""
    if isinstance(shape, data.Layout):
        items = {key: unpack(field.shape, (bits >> field.offset) & ((1 << field.width) - 1))
                 for key, field in shape}
        return items if isinstance(shape, data.StructLayout) else [items[i] for i in range(len(items))]
    s = Shape.cast(shape)
    v = bits & ((1 << s.width) - 1)
    if s.signed and s.width and v >> (s.width - 1):
        v -= 1 << s.width
    return v
