"""Host-link gateware in Amaranth's simulator: UART, COBS, and the command controller.

The controller runs against :class:`~spikeforge.sim.link_sim.StubAccelerator`; its write beats are
compared with :meth:`Accelerator.write_words` (the beats the bit-exact accelerator bench loads
with), its replies parsed by the host codec. The whole board on Verilator is tests/test_host_driver.py.
"""

import random
import struct

import pytest
from amaranth.sim import Simulator

from spikeforge.firmware.program import SPACES, HardwareConfig, space_rows, words_per_row
from spikeforge.hdl.accelerator import Accelerator
from spikeforge.hdl.host_link import COBSDecoder, COBSEncoder, UARTReceiver, UARTTransmitter
from spikeforge.host import protocol as P
from spikeforge.sim.amaranth_streams import run_amaranth, stream_send
from spikeforge.sim.link_sim import LinkHarness, exchange

HW = {8: HardwareConfig(lanes=8, max_channels=64, max_embed=32, weight_rows=300, bias_rows=20, threshold_rows=20,
                        program_rows=16),
      16: HardwareConfig(lanes=16, max_channels=128, max_embed=32, weight_rows=1781, bias_rows=26, threshold_rows=25,
                         program_rows=16)}
LOGITS = [5, -3, 9, 9, 2, -100, 0, 1, 8, 7]


def _replies(tx: bytes) -> list[P.Reply]:
    return [P.parse_reply(f) for f in P.FrameSplitter().feed(tx)]


def _harness(lanes, **stub):
    geo = Accelerator(HW[lanes])   # its write_words: the beats the accelerator bench loads with
    hello = P.hello_payload(HW[lanes], "stream", 100_000_000, 0)
    return geo, hello, LinkHarness(HW[lanes], hello, **{"logits": LOGITS, "run_cycles": 40, **stub})


def _write(space: str, row: int, words: list[int], seq: int = 1) -> bytes:
    return P.request("WRITE", seq, struct.pack("<BI", SPACES[space], row) + struct.pack(f"<{len(words)}I", *words))


@pytest.mark.parametrize("lanes", [8, 16])
def test_commands(lanes):
    geo, hello, h = _harness(lanes)
    rng = random.Random(lanes)
    wpr = words_per_row(HW[lanes])
    writes = {s: (rng.randrange(4), [rng.getrandbits(32) for _ in range(2 * wpr[s])]) for s in SPACES}
    pixels = [rng.getrandbits(8) for _ in range(HW[lanes].max_positions * wpr["pixels"])]
    sends = [P.request("HELLO", 1)] + [_write(s, row, ws, 2) for s, (row, ws) in writes.items()] + [
        P.request("READ", 3, struct.pack("<HB", 0, 4)),
        P.request("RUN", 4, bytes([len(LOGITS)]) + struct.pack(f"<{len(pixels)}I", *pixels)),
        P.request("RUN", 5, bytes([0])),
        P.request("RESET", 6), P.request("RUN_EVENTS", 7, bytes(8)), P.request("HELLO", 8, b"x"),
        P.encode_frame(bytes([0x33, 9])),
    ]
    r = exchange(h, [(s, 1) for s in sends], idle=0.2, stall=0.3, seed=lanes)
    got = _replies(r["tx"])
    assert [(x.command_name, x.seq, x.status_name) for x in got] == [
        ("HELLO", 1, "OK"), *[("WRITE", 2, "OK")] * len(SPACES), ("READ", 3, "OK"), ("RUN", 4, "OK"),
        ("RUN", 5, "OK"), ("RESET", 6, "OK"), ("RUN_EVENTS", 7, "E_UNSUPPORTED"), ("HELLO", 8, "E_LENGTH"),
        ("command 0x33", 9, "E_COMMAND")]
    assert got[0].payload == hello
    assert all(x.payload == struct.pack("<I", 2) for x in got[1:1 + len(SPACES)])   # rows written
    assert got[6].payload == struct.pack("<4i", *LOGITS[:4])
    cycles, *logits = struct.unpack_from(f"<I{len(LOGITS)}i", got[7].payload)
    assert (cycles, logits, got[7].payload[-1]) == (40, LOGITS, 2)   # argmax, lowest index on the tie 9/9
    assert got[8].payload == struct.pack("<I", 40) + b"\xff"           # no logits asked: prediction 0xFF
    # the write beats are exactly the accelerator's own (row by row, words in order)
    want = []
    for s, (row, ws) in writes.items():
        for i in range(2):
            value = sum(w << (32 * k) for k, w in enumerate(ws[i * wpr[s]:(i + 1) * wpr[s]]))
            want += [(b["space"], b["addr"], b["data"]) for b in geo.write_words(s, row + i, value)]
    for row in range(HW[lanes].max_positions):
        want += [(b["space"], b["addr"], b["data"]) for b in geo.write_words("pixels", row, pixels[row])]
    assert r["writes"] == want
    assert r["starts"] == 2 and r["reset_cycles"] > 0


@pytest.mark.parametrize("case, status", [
    ("partial_row", "E_LENGTH"), ("past_last_row", "E_RANGE"), ("bad_space", "E_RANGE"), ("odd_bytes", "E_LENGTH"),
    ("run_partial_pixels", "E_RANGE"), ("row_beyond_every_space", "E_RANGE"), ("last_row_u32", "E_RANGE")])
def test_refused_writes_write_nothing(case, status):
    geo, _, h = _harness(16)
    wpr = words_per_row(HW[16])
    frame = {
        "partial_row": _write("program", 0, list(range(wpr["program"] + 1))),
        "past_last_row": _write("weights", HW[16].weight_rows - 1, list(range(2 * wpr["weights"]))),
        "bad_space": P.request("WRITE", 1, struct.pack("<BI", 7, 0) + bytes(4)),
        "odd_bytes": P.request("WRITE", 1, struct.pack("<BI", 1, 0) + bytes(6)),
        "run_partial_pixels": P.request("RUN", 1, bytes([3]) + bytes(4 * (HW[16].max_positions + 1))),
        # rows whose bits lie above the widest space's row count (the check must not truncate them)
        "row_beyond_every_space": _write("biases", 1 << 20, list(range(wpr["biases"]))),
        "last_row_u32": _write("biases", (1 << 32) - 1, list(range(wpr["biases"]))),
    }[case]
    r = exchange(h, [(frame, 1)])
    (reply,) = _replies(r["tx"])
    assert reply.status_name == status and r["writes"] == [] and r["starts"] == 0


def test_row_range_check_holds_when_a_frame_carries_more_rows_than_any_space():
    """A WRITE can carry up to MAX_FRAME // 4 one-word rows, more than a small accelerator's
    largest space has: the rows' range check must not wrap (it refuses, and writes nothing)."""
    hw = HardwareConfig(lanes=8, max_channels=64, max_embed=32, weight_rows=100, bias_rows=20,
                        threshold_rows=20, program_rows=16)
    h = LinkHarness(hw, P.hello_payload(hw, "stream", 100_000_000, 0), logits=LOGITS, run_cycles=40)
    wpr = words_per_row(hw)["pixels"]
    rows = (P.MAX_FRAME - 16) // (4 * wpr)                    # as many pixel rows as a frame holds
    assert rows > max(space_rows(hw).values())
    r = exchange(h, [(_write("pixels", space_rows(hw)["pixels"] - 1, list(range(rows * wpr))), 1)])
    (reply,) = _replies(r["tx"])
    assert reply.status_name == "E_RANGE" and r["writes"] == []


def test_malformed_frames_get_error_replies_and_never_wedge():
    _, hello, h = _harness(16, run_cycles=5)
    rng = random.Random(7)
    good = _write("biases", 0, list(range(words_per_row(HW[16])["biases"])))
    flipped = bytearray(good)
    flipped[9] ^= 0x04                                          # a payload bit: CRC fails
    sends = [
        (bytes([0]) + bytes(rng.randrange(1, 256) for _ in range(300)) + b"\x00", 1),   # garbage: E_CRC / E_FRAME
        (bytes(flipped), 1),                                                            # E_CRC, echoes cmd/seq
        (b"\x00\x05\x01\x02\x00", 1),                             # COBS block cut short by the delimiter
        (b"\x00\x02\x01\x00", 1),                                 # 1-byte frame
        (b"\x00" + P.cobs_encode(bytes(range(1, 250)) * 5) + b"\x00", 1),            # 1245 bytes: E_OVERSIZE
        (b"\x00\x00\x00", 0),                                     # empty frames: ignored
        (P.request("HELLO", 42), 1),
    ]
    r = exchange(h, sends, idle=0.1, stall=0.2)
    got = _replies(r["tx"])
    assert [x.status_name for x in got[:5]] in (["E_CRC", "E_CRC", "E_FRAME", "E_FRAME", "E_OVERSIZE"],
                                                ["E_FRAME", "E_CRC", "E_FRAME", "E_FRAME", "E_OVERSIZE"])
    assert (got[1].command_name, got[1].seq) == ("WRITE", 1)
    assert (got[5].command_name, got[5].seq, got[5].status_name, got[5].payload) == ("HELLO", 42, "OK", hello)
    assert r["writes"] == []


def test_bytes_during_a_run_are_dropped_and_reported():
    _, hello, h = _harness(16, run_cycles=3000)
    run = P.request("RUN", 1, bytes([2]))
    # a second frame sent while the RUN executes is lost (E_FRAME for its tail, or nothing); HELLO then works
    r = exchange(h, [(run + P.request("HELLO", 2)[1:9], 1), (b"\x00", 0), (P.request("HELLO", 3), 1)])
    got = _replies(r["tx"])
    assert (got[0].command_name, got[0].status_name) == ("RUN", "OK")
    assert (got[-1].seq, got[-1].status_name, got[-1].payload) == (3, "OK", hello)


def test_accelerator_error_is_reported():
    _, _, h = _harness(8, fail=True)
    (reply,) = _replies(exchange(h, [(P.request("RUN", 1, bytes([1])), 1)])["tx"])
    assert reply.status_name == "E_ACCEL"


@pytest.mark.parametrize("data", [b"\x00", bytes(range(1, 255)), bytes(range(1, 255)) + b"\x00",
                                  bytes([7]) * 255, bytes([7]) * 508 + b"\x00\x00", bytes(300)])
def test_cobs_gateware_roundtrip(data):
    """COBSEncoder output == host cobs_encode; COBSDecoder recovers the frame."""
    enc, dec = COBSEncoder(), COBSDecoder()
    out = {"wire": bytearray(), "frame": bytearray(), "end": None}

    async def feed(ctx):
        await stream_send(ctx, enc.bytes, [{"data": b, "last": i == len(data) - 1} for i, b in enumerate(data)])

    async def main(ctx):
        ctx.set(enc.wire.ready, 1)
        while True:
            _, _, valid, payload = await ctx.tick().sample(enc.wire.valid, enc.wire.payload)
            if valid:
                out["wire"].append(payload.data)
                if payload.last:
                    break

    from amaranth.hdl import Module
    m = Module()
    m.submodules.enc = enc
    run_amaranth(m, main, feed)
    assert bytes(out["wire"]) == P.cobs_encode(data) + b"\x00"

    async def decode(ctx):
        ctx.set(dec.frames.ready, 1)
        for b in bytes(out["wire"]):
            ctx.set(dec.bytes.payload, b)
            ctx.set(dec.bytes.valid, 1)
            while True:
                _, _, ready, fv, fp = await ctx.tick().sample(dec.bytes.ready, dec.frames.valid, dec.frames.payload)
                if fv:
                    if fp.end:
                        out["end"] = fp.error
                    else:
                        out["frame"].append(fp.data)
                if ready:
                    break
        ctx.set(dec.bytes.valid, 0)

    m2 = Module()
    m2.submodules.dec = dec
    sim = Simulator(m2)
    sim.add_clock(1e-6)
    sim.add_testbench(decode)
    sim.run()
    assert bytes(out["frame"]) == data and out["end"] == 0


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_uart_loopback(divisor):
    """UARTTransmitter -> pin -> UARTReceiver at ``divisor`` cycles per bit, back to back."""
    from amaranth.hdl import Module

    tx, rx = UARTTransmitter(divisor), UARTReceiver(divisor)
    m = Module()
    m.submodules.tx, m.submodules.rx = tx, rx
    m.d.comb += rx.rx.eq(tx.tx)
    data = bytes(random.Random(divisor).randrange(256) for _ in range(40)) + b"\x00\xff\x55"
    got = bytearray()

    async def send(ctx):
        await stream_send(ctx, tx.bytes, data)

    async def main(ctx):
        ctx.set(rx.bytes.ready, 1)
        for _ in range(len(data) * (10 * divisor + 4) + 100):
            _, _, valid, payload, ov, fe = await ctx.tick().sample(rx.bytes.valid, rx.bytes.payload, rx.overrun,
                                                                   rx.frame_error)
            assert not ov and not fe
            if valid:
                got.append(payload)
            if len(got) == len(data):
                break

    run_amaranth(m, main, send)
    assert bytes(got) == data


def test_uart_divisor_errors():
    from spikeforge.hdl.board import uart_divisor

    assert uart_divisor(12_000_000, 3_000_000) == 4
    assert uart_divisor(12_000_000, 115_200) == 104
    with pytest.raises(ValueError, match="at least 4 clock cycles per bit"):
        uart_divisor(12_000_000, 6_000_000)
    with pytest.raises(ValueError, match="off by"):
        uart_divisor(10_000_000, 2_000_000 + 300_000)
