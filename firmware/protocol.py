"""The host-link wire protocol: the contract the gateware and the host driver share (``docs/protocol.md``).

Both sides import it: :mod:`spikeforge.hdl.host_link` (the device's controller) and
:mod:`spikeforge.host.protocol` (the host's codec: frames, COBS, CRC, HELLO parsing). It holds
what the two must agree on and nothing that runs: framing constants, the CRC's parameters, the
command and status codes (:class:`Command`, :class:`Status`, ``amaranth.lib.enum`` enums the
gateware switches on), the body headers and the HELLO payload layout.

A **frame** on the wire is ``COBS(body + CRC16) 0x00``: COBS removes every zero byte from the
body so :data:`DELIMITER` only ever delimits frames. The CRC is CRC-16/CCITT-FALSE (polynomial
:data:`CRC_POLYNOMIAL`, initial value :data:`CRC_INIT`, not reflected, no final XOR) over the
body, appended most significant byte first, so the CRC of a whole valid frame is 0 (the residue
the gateware checks). Multi-byte fields are little-endian.

* request body: ``cmd:u8  seq:u8  payload``
* reply body:   ``cmd|REPLY_FLAG:u8  seq:u8  status:u8  payload``
"""

from __future__ import annotations

import dataclasses
import struct

from amaranth.lib.enum import IntEnum

from .program import FORMAT_VERSION, LINKS, MAX_MEMORY_ROWS, HardwareConfig

__all__ = ["PROTOCOL_VERSION", "MAX_FRAME", "MAX_REPLY", "MAX_ROW_WORDS", "MAX_DEVICE_ROWS", "DELIMITER",
           "REPLY_FLAG", "REQUEST_HEADER", "REPLY_HEADER", "CRC_BYTES", "CRC_WIDTH", "CRC_POLYNOMIAL", "CRC_INIT",
           "Command", "Status", "CMD", "STATUS", "STATUS_NAMES", "CAPABILITY_FIELDS", "DEPTH_FIELDS", "HELLO_HEAD",
           "hello_payload"]

#: Version of this protocol (HELLO reports it; the host refuses another). 2: the per-step words of
#: the read map are the global counters as each step ended (1: per-step counts).
PROTOCOL_VERSION = 2
#: The byte that ends a frame (COBS keeps it out of every frame's bytes).
DELIMITER = 0x00
#: Set in a reply's ``cmd`` byte (``cmd | REPLY_FLAG``): a reply is never taken for a request.
REPLY_FLAG = 0x80
#: Bytes before a request's payload (``cmd``, ``seq``) and before a reply's (``cmd``, ``seq``, ``status``).
REQUEST_HEADER, REPLY_HEADER = 2, 3
#: The CRC: CRC-16/CCITT-FALSE (not reflected, no final XOR), :data:`CRC_BYTES` big-endian after the body.
CRC_WIDTH, CRC_POLYNOMIAL, CRC_INIT, CRC_BYTES = 16, 0x1021, 0xFFFF, 2
#: Largest request body the device accepts (cmd, seq, payload and CRC): its frame buffer.
MAX_FRAME = 1024
#: Largest reply body (READ of 255 words).
MAX_REPLY = REPLY_HEADER + 4 * 255 + CRC_BYTES
#: Most words of one memory row a WRITE frame carries (the frame less cmd, seq, space, row and
#: CRC): the protocol writes whole rows, so a device whose rows are wider cannot be loaded.
MAX_ROW_WORDS = (MAX_FRAME - REQUEST_HEADER - 5 - CRC_BYTES) // 4
#: Deepest memory a device may report (each ``*_rows`` capability; HELLO's fields are u32): the bound
#: ``HardwareConfig`` has, ``MAX_MEMORY_ROWS``. A deeper one is a corrupt or hostile HELLO; refusing
#: it (before the config is built) keeps whatever the host sizes by a memory's rows bounded.
MAX_DEVICE_ROWS = MAX_MEMORY_ROWS
#: The capabilities that are memory depths (checked against :data:`MAX_DEVICE_ROWS`).
DEPTH_FIELDS = ("weight_rows", "bias_rows", "threshold_rows", "spike_rows", "u_rows", "program_rows")


class Command(IntEnum, shape=8):
    """Command codes (a request's ``cmd``; its reply carries ``cmd | REPLY_FLAG``)."""

    HELLO = 0x01
    WRITE = 0x02
    RUN = 0x03
    READ = 0x04
    RESET = 0x05
    RUN_EVENTS = 0x06


class Status(IntEnum, shape=8):
    """Reply status codes."""

    OK = 0
    E_CRC = 1           # the frame's CRC is wrong
    E_FRAME = 2         # malformed COBS, a frame shorter than cmd+seq+CRC, or bytes lost while busy
    E_OVERSIZE = 3      # the frame is longer than MAX_FRAME
    E_COMMAND = 4       # unknown command
    E_LENGTH = 5        # the payload length does not fit the command (e.g. a partial memory row)
    E_RANGE = 6         # memory space or row out of range
    E_ACCEL = 7         # the accelerator stopped with its error flag (bad program)
    E_UNSUPPORTED = 8   # a command this hardware does not implement (spike-event input)


#: :class:`Command` by name (``CMD["RUN"]``).
CMD = {c.name: c for c in Command}
#: :class:`Status` by name (``STATUS["OK"]``).
STATUS = {s.name: s for s in Status}
#: Status names by code.
STATUS_NAMES = {int(s): s.name for s in Status}
#: HardwareConfig fields in the order HELLO reports them (one u32 each).
CAPABILITY_FIELDS = tuple(f.name for f in dataclasses.fields(HardwareConfig))
#: HELLO payload head: ``protocol:u16 format:u16 hw_hash:32 bytes link:u8 clock_hz:u32 baud:u32
#: max_frame:u16 n:u8``, then ``n`` u32 capability fields (:data:`CAPABILITY_FIELDS`).
HELLO_HEAD = struct.Struct("<HH32sBIIHB")


def hello_payload(hw: HardwareConfig, link: str, clock_hz: int, baud: int) -> bytes:
    """The HELLO reply payload of a device built for ``hw`` (the gateware's ROM holds these bytes)."""
    fields = [int(getattr(hw, f)) for f in CAPABILITY_FIELDS]
    return HELLO_HEAD.pack(PROTOCOL_VERSION, FORMAT_VERSION, bytes.fromhex(hw.config_hash()), LINKS[link],
                           clock_hz, baud, MAX_FRAME, len(fields)) + struct.pack(f"<{len(fields)}I", *fields)
