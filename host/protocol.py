"""The host side of the host-link protocol: frames, COBS, CRC and HELLO parsing (``docs/protocol.md``).

What both ends agree on (commands, statuses, framing constants, the HELLO layout) is the contract
:mod:`spikeforge.firmware.protocol`, which the gateware (:class:`spikeforge.hdl.host_link.HostLink`)
imports too; this module re-exports those names and adds the host's codec, whose COBS and CRC are
the ``cobs`` and ``crc`` packages. A frame on the wire is ``COBS(body + CRC16) 0x00``:

* request body: ``cmd:u8  seq:u8  payload``
* reply body:   ``cmd|0x80:u8  seq:u8  status:u8  payload``

Every malformed input raises :class:`ProtocolError` (never anything else).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc as _crc
from cobs import cobs as _cobs

from spikeforge.firmware.program import LINKS, HardwareConfig, words_per_row
from spikeforge.firmware.protocol import (CAPABILITY_FIELDS, CMD, CRC_BYTES, CRC_INIT, CRC_POLYNOMIAL, CRC_WIDTH,
                                          DELIMITER, DEPTH_FIELDS, HELLO_HEAD, MAX_DEVICE_ROWS, MAX_FRAME, MAX_REPLY,
                                          MAX_ROW_WORDS, PROTOCOL_VERSION, REPLY_FLAG, REPLY_HEADER,
                                          STATUS, STATUS_NAMES, Command, Status, hello_payload)

__all__ = ["PROTOCOL_VERSION", "MAX_FRAME", "MAX_REPLY", "CMD", "STATUS", "Command", "Status", "ProtocolError", "crc16",
           "cobs_encode", "cobs_decode", "encode_frame", "decode_frame", "request", "Reply", "parse_reply",
           "Hello", "hello_payload", "parse_hello", "CAPABILITY_FIELDS", "LINKS", "FrameSplitter", "MAX_ROW_WORDS",
           "MAX_DEVICE_ROWS"]

#: The capabilities that set each memory space's row width (for the messages).
_ROW_WIDTH_FIELDS = {"weights": ("lanes", "weight_bits"), "biases": ("lanes", "acc_bits"),
                     "thresholds": ("lanes", "v_bits"), "pixels": ("max_in_channels", "pixel_bits")}


class ProtocolError(ValueError):
    """A frame or reply that does not follow the protocol (the message says what is wrong)."""


# ------------------------------------------------------------------------------------------ CRC, COBS

_CRC16 = _crc.Calculator(_crc.Configuration(width=CRC_WIDTH, polynomial=CRC_POLYNOMIAL, init_value=CRC_INIT,
                                            final_xor_value=0, reverse_input=False, reverse_output=False),
                         optimized=True)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (poly 0x1021, init 0xFFFF, no reflection, no final XOR)."""
    return _CRC16.checksum(bytes(data))


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: ``data`` without zero bytes (delimiter not included)."""
    return _cobs.encode(bytes(data))


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode` (no delimiter); :class:`ProtocolError` when malformed."""
    data = bytes(data)
    if DELIMITER in data:
        raise ProtocolError(f"COBS: zero byte inside a frame at offset {data.index(DELIMITER)}")
    try:
        return _cobs.decode(data)
    except _cobs.DecodeError as exc:
        raise ProtocolError(f"COBS: {exc} (truncated frame)") from None


# ------------------------------------------------------------------------------------------ frames

def encode_frame(body: bytes) -> bytes:
    """Wire bytes of one frame: ``COBS(body + CRC16 big-endian) 0x00``."""
    return cobs_encode(body + crc16(body).to_bytes(CRC_BYTES, "big")) + bytes([DELIMITER])


def decode_frame(wire: bytes) -> bytes:
    """The body of one frame's wire bytes (without the ``0x00`` delimiter); checks COBS and CRC."""
    raw = cobs_decode(wire)
    if len(raw) < 1 + CRC_BYTES:
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
    if len(body) + CRC_BYTES > MAX_FRAME:
        raise ProtocolError(f"{cmd} frame of {len(body) + CRC_BYTES} bytes exceeds the device's {MAX_FRAME}-byte frame buffer")
    return bytes([DELIMITER]) + encode_frame(body)


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
        return Command(self.cmd).name if self.cmd in CMD.values() else f"command 0x{self.cmd:02x}"


def parse_reply(wire: bytes) -> Reply:
    """A reply frame's wire bytes (no delimiter) -> :class:`Reply`; :class:`ProtocolError` if malformed."""
    body = decode_frame(wire)
    if not body[0] & REPLY_FLAG:
        raise ProtocolError(f"frame with cmd byte 0x{body[0]:02x} is a request, not a reply (is the link looped back?)")
    if len(body) < REPLY_HEADER:
        raise ProtocolError(f"reply of {len(body)} bytes is shorter than its {REPLY_HEADER}-byte header")
    return Reply(cmd=body[0] & ~REPLY_FLAG & 0xFF, seq=body[1], status=body[2], payload=bytes(body[REPLY_HEADER:]))


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


def parse_hello(payload: bytes) -> Hello:
    """A HELLO reply payload -> :class:`Hello`; :class:`ProtocolError` when it is malformed or reports
    capabilities the host cannot use (invalid, memories deeper than :data:`MAX_DEVICE_ROWS`, rows
    wider than a WRITE frame carries)."""
    if len(payload) < HELLO_HEAD.size:
        raise ProtocolError(f"HELLO reply of {len(payload)} bytes, expected at least {HELLO_HEAD.size}")
    proto, fmt, digest, link, clk, baud, max_frame, n = HELLO_HEAD.unpack_from(payload)
    if proto != PROTOCOL_VERSION:
        raise ProtocolError(f"device speaks protocol version {proto}, this host speaks {PROTOCOL_VERSION}")
    if len(payload) != HELLO_HEAD.size + 4 * n:
        raise ProtocolError(f"HELLO reply of {len(payload)} bytes, expected {HELLO_HEAD.size + 4 * n} for {n} fields")
    if n != len(CAPABILITY_FIELDS):
        raise ProtocolError(f"device reports {n} capability fields, this host knows {len(CAPABILITY_FIELDS)}")
    values = struct.unpack_from(f"<{n}I", payload, HELLO_HEAD.size)
    d = dict(zip(CAPABILITY_FIELDS, values))
    for name in HardwareConfig.bool_fields():
        d[name] = bool(d[name])
    for name in DEPTH_FIELDS:
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
