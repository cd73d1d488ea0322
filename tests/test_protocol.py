"""The host-link protocol codec (host/protocol.py) against independent references, and fuzzed.

References: the PyPI ``cobs`` package for COBS and Amaranth's CRC catalogue for the CRC. The
fuzz tests (hypothesis) check that arbitrary bytes from a device only ever raise the documented
errors, in the codec and in the driver.
"""

import random
import struct
from types import SimpleNamespace

import pytest
import torch
from amaranth.lib.crc import catalog
from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeforge.firmware.program import HardwareConfig
from spikeforge.host import protocol as P
from spikeforge.host.driver import Device, DeviceError, LinkError
from spikeforge.host.transport import Transport


def _payload(n: int, zeros: float, seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(0 if rng.random() < zeros else rng.randrange(1, 256) for _ in range(n))


@pytest.mark.parametrize("n", [0, 1, 2, 253, 254, 255, 256, 507, 508, 509, 1000])
@pytest.mark.parametrize("zeros", [0.0, 0.02, 0.5, 1.0])
def test_cobs_matches_reference_package(n, zeros):
    data = _payload(n, zeros, n)
    assert P.cobs_encode(data) == cobs.encode(data)
    assert P.cobs_decode(cobs.encode(data)) == data


def test_crc16_is_crc16_ccitt_false_with_zero_residue():
    ref = catalog.CRC16_CCITT_FALSE(8)
    for n in (0, 1, 9, 100):
        data = _payload(n, 0.1, n)
        assert P.crc16(data) == ref.compute(data)
        assert P.crc16(data + P.crc16(data).to_bytes(2, "big")) == ref.residue() == 0
    assert P.crc16(b"123456789") == 0x29B1   # the catalogue's check value


def test_frame_roundtrip_and_errors():
    body = bytes([0x81, 7, 0]) + b"\x00\x01\x00"
    wire = P.encode_frame(body)
    assert wire.count(0) == 1 and wire[-1] == 0
    reply = P.parse_reply(wire[:-1])
    assert (reply.cmd, reply.seq, reply.status, reply.payload) == (1, 7, 0, b"\x00\x01\x00")
    bad = bytearray(wire[:-1])
    bad[2] ^= 0x10
    with pytest.raises(P.ProtocolError, match="CRC mismatch|COBS"):
        P.parse_reply(bytes(bad))
    with pytest.raises(P.ProtocolError, match="is a request"):
        P.parse_reply(P.request("HELLO", 1)[1:-1])
    with pytest.raises(P.ProtocolError, match="exceeds the device's 1024-byte frame buffer"):
        P.request("WRITE", 1, bytes(1021))
    with pytest.raises(P.ProtocolError, match="unknown command 'FLASH'"):
        P.request("FLASH", 1)


@pytest.mark.parametrize("lanes", [8, 16])
def test_hello_roundtrip(lanes):
    hw = HardwareConfig(lanes=lanes, max_channels=64, max_embed=32)
    info = P.parse_hello(P.hello_payload(hw, "uart", 12_000_000, 115_200))
    assert info.hardware == hw and info.consistent
    assert (info.link, info.clock_hz, info.baud, info.max_frame) == ("uart", 12_000_000, 115_200, P.MAX_FRAME)
    with pytest.raises(P.ProtocolError, match="protocol version 9"):
        P.parse_hello(struct.pack("<H", 9) + P.hello_payload(hw, "uart", 1, 1)[2:])


def test_frame_splitter_bounds_memory():
    s = P.FrameSplitter(limit=10)
    assert s.feed(b"\x00\x01\x02\x00" + b"\x05" * 50 + b"\x00\x03\x00") == [b"\x01\x02", None, b"\x03"]


# ------------------------------------------------------------------------------------------ fuzzing

@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_reply_decoder_raises_only_protocol_error(data):
    for frame in P.FrameSplitter().feed(data + b"\x00"):
        if frame is None:
            continue
        try:
            reply = P.parse_reply(frame)
        except P.ProtocolError:
            continue
        try:
            P.parse_hello(reply.payload)
        except P.ProtocolError:
            pass


class _ScriptedTransport(Transport):
    """Answers every request with the scripted bytes (fuzz input), then silence."""

    url = "fuzz://"
    reply_timeout = 0.01

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.written = 0

    def write(self, data):
        self.written += len(data)

    def read(self, size, timeout):
        return self.chunks.pop(0)[:size] if self.chunks else b""


def _valid_reply(cmd: str, seq: int, status: int, payload: bytes) -> bytes:
    return P.encode_frame(bytes([P.CMD[cmd] | 0x80, seq, status]) + payload)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=200),
                          st.builds(lambda s, st_, p: _valid_reply("HELLO", s, st_, p),
                                    st.integers(0, 3), st.integers(0, 9), st.binary(max_size=200))),
                max_size=6))
def test_fuzz_driver_raises_only_documented_errors(chunks):
    dev = Device(_ScriptedTransport(chunks), timeout=0.01, retries=2)
    try:
        dev.hello()
    except (LinkError, DeviceError, P.ProtocolError):
        pass


_HW8 = HardwareConfig(lanes=8, max_channels=64, max_embed=32)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["READ", "WRITE", "RUN"]), st.binary(max_size=80))
def test_fuzz_command_replies_raise_only_documented_errors(cmd, payload):
    """A well-framed OK reply carrying any payload, to READ, WRITE or RUN: the driver returns or
    raises ProtocolError (never struct.error, IndexError, ...)."""
    dev = Device(_ScriptedTransport([_valid_reply(cmd, 1, 0, payload)]), timeout=0.01, retries=0)
    dev.info = P.parse_hello(P.hello_payload(_HW8, "uart", 12_000_000, 115_200))
    dev.loaded = SimpleNamespace(n_classes=3)          # what infer() reads of a loaded model
    try:
        if cmd == "READ":
            assert dev.read(0, 2) == list(struct.unpack("<2I", payload))
        elif cmd == "WRITE":
            dev.write_rows("biases", 0, [0])
            assert payload == struct.pack("<I", 1)
        else:
            (result,) = dev.infer(torch.zeros(1, 1, 2, 2, dtype=torch.long))
            assert 0 <= result.prediction < 3
    except P.ProtocolError:
        pass
