"""The host-link protocol: COBS-framed, CRC-checked command and reply frames (``docs/protocol.md``).

A **frame** on the wire is ``COBS(body + CRC16) 0x00``: COBS removes every zero byte from the
body so ``0x00`` only ever delimits frames. The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021,
initial value 0xFFFF, not reflected) over the body, appended most significant byte first, so the
CRC of a whole valid frame is 0 (the residue the gateware checks). Multi-byte fields are little-endian.

* request body: ``cmd:u8  seq:u8  payload``
* reply body:   ``cmd|0x80:u8  seq:u8  status:u8  payload``

The gateware side of the same protocol is :class:`spikeforge.hdl.host_link.HostLink`; this module
is the host's codec (and the reference the gateware tests compare with). Every malformed input
raises :class:`ProtocolError` (never anything else).
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass

from spikeforge.firmware.program import FORMAT_VERSION, LINKS, MAX_MEMORY_ROWS, HardwareConfig, words_per_row

__all__ = ["PROTOCOL_VERSION", "MAX_FRAME", "MAX_REPLY", "CMD", "STATUS", "ProtocolError", "crc16",
           "cobs_encode", "cobs_decode", "encode_frame", "decode_frame", "request", "Reply", "parse_reply",
           "Hello", "hello_payload", "parse_hello", "CAPABILITY_FIELDS", "LINKS", "FrameSplitter", "MAX_ROW_WORDS",
           "MAX_DEVICE_ROWS"]

#: Version of this protocol (HELLO reports it; the host refuses another). 2: the per-step words of
#: the read map are the global counters as each step ended (1: per-step counts).
PROTOCOL_VERSION = 2
#: Largest request body the device accepts (cmd, seq, payload and CRC): its frame buffer.
MAX_FRAME = 1024
#: Largest reply body (READ of 255 words).
MAX_REPLY = 3 + 4 * 255 + 2
#: Most words of one memory row a WRITE frame carries (the frame less cmd, seq, space, row and
#: CRC): the protocol writes whole rows, so a device whose rows are wider cannot be loaded.
MAX_ROW_WORDS = (MAX_FRAME - 2 - 5 - 2) // 4
#: Deepest memory a device may report (each ``*_rows`` capability; HELLO's fields are u32): the bound
#: ``HardwareConfig`` has, ``MAX_MEMORY_ROWS``. A deeper one is a corrupt or hostile HELLO; refusing
#: it (before the config is built) keeps whatever the host sizes by a memory's rows bounded.
MAX_DEVICE_ROWS = MAX_MEMORY_ROWS
#: The capabilities that are memory depths (checked against :data:`MAX_DEVICE_ROWS`).
_DEPTH_FIELDS = ("weight_rows", "bias_rows", "threshold_rows", "spike_rows", "u_rows", "program_rows")
#: The capabilities that set each memory space's row width (for the messages).
_ROW_WIDTH_FIELDS = {"weights": ("lanes", "weight_bits"), "biases": ("lanes", "acc_bits"),
                     "thresholds": ("lanes", "v_bits"), "pixels": ("max_in_channels", "pixel_bits")}

#: Command codes (request ``cmd``; the reply carries ``cmd | 0x80``).
CMD = {"HELLO": 0x01, "WRITE": 0x02, "RUN": 0x03, "READ": 0x04, "RESET": 0x05, "RUN_EVENTS": 0x06}
#: Reply status codes.
STATUS = {
    "OK": 0,
    "E_CRC": 1,          # the frame's CRC is wrong
    "E_FRAME": 2,        # malformed COBS, a frame shorter than cmd+seq+CRC, or bytes lost while busy
    "E_OVERSIZE": 3,     # the frame is longer than MAX_FRAME
    "E_COMMAND": 4,      # unknown command
    "E_LENGTH": 5,       # the payload length does not fit the command (e.g. a partial memory row)
    "E_RANGE": 6,        # memory space or row out of range
    "E_ACCEL": 7,        # the accelerator stopped with its error flag (bad program)
    "E_UNSUPPORTED": 8,  # a command this hardware does not implement (spike-event input)
}
STATUS_NAMES = {v: k for k, v in STATUS.items()}
#: HardwareConfig fields in the order HELLO reports them (one u32 each).
CAPABILITY_FIELDS = tuple(f.name for f in dataclasses.fields(HardwareConfig))


class ProtocolError(ValueError):
    """A frame or reply that does not follow the protocol (the message says what is wrong)."""


# ------------------------------------------------------------------------------------------ CRC

def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (poly 0x1021, init 0xFFFF, no reflection, no final XOR)."""
    crc = 0xFFFF
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ b]
    return crc


# ------------------------------------------------------------------------------------------ COBS

def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: ``data`` without zero bytes (delimiter not included)."""
    out = bytearray()
    block = bytearray()
    full_end = False   # the data so far ends with a full 254-byte block (code 0xFF, no implied zero)
    for b in data:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
            full_end = False
            continue
        block.append(b)
        full_end = len(block) == 254
        if full_end:
            out += b"\xff" + block
            block.clear()
    if not full_end:   # the final block (none after a full block that ends the data)
        out += bytes([len(block) + 1]) + block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode` (no delimiter); :class:`ProtocolError` when malformed."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise ProtocolError(f"COBS: zero byte inside a frame at offset {i}")
        end = i + code
        if end > n:
            raise ProtocolError(f"COBS: block at offset {i} needs {code - 1} bytes, {n - i - 1} left (truncated frame)")
        block = data[i + 1:end]
        if 0 in block:
            raise ProtocolError(f"COBS: zero byte inside a frame at offset {i + 1 + block.index(0)}")
        out += block
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


# ------------------------------------------------------------------------------------------ frames

def encode_frame(body: bytes) -> bytes:
    """Wire bytes of one frame: ``COBS(body + CRC16 big-endian) 0x00``."""
    return cobs_encode(body + crc16(body).to_bytes(2, "big")) + b"\x00"


def decode_frame(wire: bytes) -> bytes:
    """The body of one frame's wire bytes (without the ``0x00`` delimiter); checks COBS and CRC."""
    raw = cobs_decode(wire)
    if len(raw) < 3:
        raise ProtocolError(f"frame of {len(raw)} bytes is shorter than a header and CRC")
    if crc16(raw) != 0:
        got, want = int.from_bytes(raw[-2:], "big"), crc16(raw[:-2])
        raise ProtocolError(f"CRC mismatch: frame says 0x{got:04x}, body gives 0x{want:04x}")
    return raw[:-2]


def request(cmd: str, seq: int, payload: bytes = b"") -> bytes:
    """Wire bytes of a request (a leading ``0x00`` ends any garbage the device may hold)."""
    if cmd not in CMD:
        raise ProtocolError(f"unknown command {cmd!r}; commands: {', '.join(CMD)}")
    body = bytes([CMD[cmd], seq & 0xFF]) + payload
    if len(body) + 2 > MAX_FRAME:
        raise ProtocolError(f"{cmd} frame of {len(body) + 2} bytes exceeds the device's {MAX_FRAME}-byte frame buffer")
    return b"\x00" + encode_frame(body)


@dataclass(frozen=True)
class Reply:
    """A decoded reply: the command it answers, its sequence number, status and payload."""

    cmd: int
    seq: int
    status: int
    payload: bytes

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, f"status {self.status}")

    @property
    def command_name(self) -> str:
        return {v: k for k, v in CMD.items()}.get(self.cmd, f"command 0x{self.cmd:02x}")


def parse_reply(wire: bytes) -> Reply:
    """A reply frame's wire bytes (no delimiter) -> :class:`Reply`; :class:`ProtocolError` if malformed."""
    body = decode_frame(wire)
    if not body[0] & 0x80:
        raise ProtocolError(f"frame with cmd byte 0x{body[0]:02x} is a request, not a reply (is the link looped back?)")
    if len(body) < 3:
        raise ProtocolError(f"reply of {len(body)} bytes is shorter than its 3-byte header")
    return Reply(cmd=body[0] & 0x7F, seq=body[1], status=body[2], payload=bytes(body[3:]))


class FrameSplitter:
    """Splits a byte stream into frames at ``0x00`` delimiters; frames over ``limit`` bytes are
    dropped (reported as ``None``) so a babbling link cannot exhaust memory."""

    def __init__(self, limit: int = 2 * MAX_REPLY):
        self.limit = limit
        self.buffer = bytearray()
        self.overflow = False

    def feed(self, data: bytes) -> list[bytes | None]:
        frames: list[bytes | None] = []
        for b in data:
            if b == 0:
                if self.overflow:
                    frames.append(None)
                elif self.buffer:
                    frames.append(bytes(self.buffer))
                self.buffer.clear()
                self.overflow = False
            elif not self.overflow:
                self.buffer.append(b)
                if len(self.buffer) > self.limit:
                    self.overflow = True
                    self.buffer.clear()
        return frames


# ------------------------------------------------------------------------------------------ HELLO

@dataclass(frozen=True)
class Hello:
    """What a device reports about itself (the HELLO reply)."""

    protocol: int
    format_version: int
    hardware_hash: str       # hex SHA-256 of the HardwareConfig
    link: str                # "uart" or "stream"
    clock_hz: int
    baud: int                # 0 on a stream link
    max_frame: int
    hardware: HardwareConfig

    @property
    def consistent(self) -> bool:
        """Whether the reported capabilities hash to the reported hash."""
        return self.hardware.config_hash() == self.hardware_hash


_HELLO_HEAD = struct.Struct("<HH32sBIIHB")


def hello_payload(hw: HardwareConfig, link: str, clock_hz: int, baud: int) -> bytes:
    """The HELLO reply payload of a device built for ``hw`` (the gateware's ROM holds these bytes)."""
    fields = [int(getattr(hw, f)) for f in CAPABILITY_FIELDS]
    return _HELLO_HEAD.pack(PROTOCOL_VERSION, FORMAT_VERSION, bytes.fromhex(hw.config_hash()), LINKS[link],
                            clock_hz, baud, MAX_FRAME, len(fields)) + struct.pack(f"<{len(fields)}I", *fields)


def parse_hello(payload: bytes) -> Hello:
    """A HELLO reply payload -> :class:`Hello`; :class:`ProtocolError` when it is malformed or reports
    capabilities the host cannot use (invalid, memories deeper than :data:`MAX_DEVICE_ROWS`, rows
    wider than a WRITE frame carries)."""
    if len(payload) < _HELLO_HEAD.size:
        raise ProtocolError(f"HELLO reply of {len(payload)} bytes, expected at least {_HELLO_HEAD.size}")
    proto, fmt, digest, link, clk, baud, max_frame, n = _HELLO_HEAD.unpack_from(payload)
    if proto != PROTOCOL_VERSION:
        raise ProtocolError(f"device speaks protocol version {proto}, this host speaks {PROTOCOL_VERSION}")
    if len(payload) != _HELLO_HEAD.size + 4 * n:
        raise ProtocolError(f"HELLO reply of {len(payload)} bytes, expected {_HELLO_HEAD.size + 4 * n} for {n} fields")
    if n != len(CAPABILITY_FIELDS):
        raise ProtocolError(f"device reports {n} capability fields, this host knows {len(CAPABILITY_FIELDS)}")
    values = struct.unpack_from(f"<{n}I", payload, _HELLO_HEAD.size)
    d = dict(zip(CAPABILITY_FIELDS, values))
    for name in HardwareConfig.bool_fields():
        d[name] = bool(d[name])
    for name in _DEPTH_FIELDS:
        if d[name] > MAX_DEVICE_ROWS:
            raise ProtocolError(f"HELLO reply: {name} {d[name]} exceeds the host's limit of {MAX_DEVICE_ROWS} "
                                f"rows (MAX_DEVICE_ROWS)")
    try:
        hw = HardwareConfig.from_dict(d)
    except ValueError as exc:
        raise ProtocolError(f"HELLO reply: invalid capabilities ({exc})") from None
    for space, words in words_per_row(hw).items():
        if words > MAX_ROW_WORDS:
            width = " x ".join(f"{f} {d[f]}" for f in _ROW_WIDTH_FIELDS.get(space, ()))
            raise ProtocolError(f"HELLO reply: a {space} row ({width}) is {words} words; one WRITE frame carries "
                                f"at most {MAX_ROW_WORDS} (MAX_ROW_WORDS)")
    links = {v: k for k, v in LINKS.items()}
    if link not in links:
        raise ProtocolError(f"HELLO reply: unknown link kind {link}")
    return Hello(protocol=proto, format_version=fmt, hardware_hash=digest.hex(), link=links[link], clock_hz=clk,
                 baud=baud, max_frame=max_frame, hardware=hw)
