"""The link controller's parts in Amaranth's simulator, each on its own with random stalls.

:class:`FrameReceiver` (buffer, CRC check, verdict), :class:`ReplyFramer` (the reply's CRC) and
:class:`ArgMax` (RUN's prediction). References: the ``crc`` package's CRC-16/CCITT-FALSE
(``IBM_3740``) and Python's ``max``; the whole controller is tests/test_host_link.py.
"""

import random

import crc
import pytest

from spikeforge.firmware.protocol import MAX_FRAME, Status
from spikeforge.hdl.host_link import ArgMax, FrameReceiver, ReplyFramer
from spikeforge.sim.amaranth_streams import run_amaranth

_CRC = crc.Calculator(crc.Crc16.IBM_3740)


def _with_crc(body: bytes) -> bytes:
    return body + _CRC.checksum(body).to_bytes(2, "big")


def _receive(frames: list[dict], seed: int, idle: float = 0.4, pause: float = 0.3) -> list[dict]:
    """Play each ``{"bytes", "error", "early", "early_end"}`` into a receiver while it listens
    (``early`` beats and an ``early_end`` first, while it does not), with random gaps; after ``ended``, sample the verdict as the
    controller does, ``take`` the frame, read its payload back with random pauses of ``adv``, and
    ``clear``. Returns, per frame that ended, its verdict and payload read back."""
    rx = FrameReceiver()
    rng = random.Random(seed)
    got = []

    async def beat(ctx, **payload):
        ctx.set(rx.frames.valid, 1)
        ctx.set(rx.frames.payload, {"data": 0, "end": 0, "error": 0, **payload})
        ended = ctx.get(rx.ended)
        await ctx.tick()
        ctx.set(rx.frames.valid, 0)
        return ended

    async def main(ctx):
        for frame in frames:
            ctx.set(rx.listen, 0)
            for b in frame.get("early", b""):
                await beat(ctx, data=b)
            if frame.get("early_end"):
                await beat(ctx, end=1)
            ctx.set(rx.listen, 1)
            for b in frame["bytes"]:
                while rng.random() < idle:
                    await ctx.tick()
                assert not await beat(ctx, data=b)
            if not await beat(ctx, end=1, error=int(frame.get("error", False))):
                continue                                    # an empty frame: ignored
            ctx.set(rx.listen, 0)
            out = {"status": Status(ctx.get(rx.status)), "ok": ctx.get(rx.ok), "length": ctx.get(rx.length),
                   "cmd": ctx.get(rx.cmd), "seq": ctx.get(rx.seq), "payload": bytearray()}
            ctx.set(rx.take, 1)
            await ctx.tick()
            ctx.set(rx.take, 0)
            for _ in range(max(0, min(out["length"], MAX_FRAME) - 2)):
                while rng.random() < pause:
                    await ctx.tick()
                out["payload"].append(ctx.get(rx.byte))
                ctx.set(rx.adv, 1)
                await ctx.tick()
                ctx.set(rx.adv, 0)
            ctx.set(rx.clear, 1)
            await ctx.tick()
            ctx.set(rx.clear, 0)
            got.append(out)

    run_amaranth(rx, main)
    return got


@pytest.mark.parametrize("seed", range(3))
def test_receiver_keeps_the_frame_and_checks_its_crc(seed):
    rng = random.Random(seed)
    bodies = [bytes([rng.randrange(256) for _ in range(n)]) for n in (2, 3, 40, 300)]
    frames = [{"bytes": _with_crc(b)} for b in bodies]
    got = _receive(frames, seed)
    assert [(g["status"], g["ok"], g["length"], g["cmd"], g["seq"]) for g in got] == \
        [(Status.OK, 1, len(b) + 2, b[0], b[1]) for b in bodies]
    assert [bytes(g["payload"]) for g in got] == [b[2:] + _with_crc(b)[-2:] for b in bodies]


def test_receiver_verdicts():
    body = bytes([3, 9, 1, 2, 3])
    bad_crc = bytearray(_with_crc(body))
    bad_crc[3] ^= 0x10
    frames = [
        {"bytes": b""},                                             # a flush: no frame
        {"bytes": bytes(bad_crc)},
        {"bytes": b"\x01\x02\x03"},                                 # shorter than cmd, seq and CRC
        {"bytes": _with_crc(body), "error": True},                  # the COBS decoder's error
        {"bytes": _with_crc(body)[3:], "early": _with_crc(body)[:3]},   # its head came while busy
        {"bytes": bytes([5]) * (MAX_FRAME + 3)},
        {"bytes": b"", "early": b"\x07\x07", "early_end": True},   # ended while busy: forgotten...
        {"bytes": _with_crc(body)},                                 # ...the next frame is fine
    ]
    got = _receive(frames, 5, idle=0.1, pause=0.0)
    assert [g["status"] for g in got] == [Status.E_CRC, Status.E_FRAME, Status.E_FRAME, Status.E_FRAME,
                                          Status.E_OVERSIZE, Status.OK]
    assert [g["ok"] for g in got] == [0] * 5 + [1]
    assert (got[1]["cmd"], got[1]["seq"], got[4]["length"]) == (1, 2, MAX_FRAME)


@pytest.mark.parametrize("seed", range(3))
def test_framer_appends_the_crc(seed):
    rng = random.Random(seed)
    bodies = [bytes([rng.randrange(256) for _ in range(n)]) for n in (1, 3, 7, 260)]
    framer = ReplyFramer()
    sent, dones = [], []

    async def send(ctx):
        for body in bodies:
            for b in body:
                while rng.random() < 0.3:
                    await ctx.tick()
                ctx.set(framer.body.valid, 1)
                ctx.set(framer.body.payload, b)
                while True:
                    _, _, ready = await ctx.tick().sample(framer.body.ready)
                    if ready:
                        break
                ctx.set(framer.body.valid, 0)
            ctx.set(framer.finish, 1)
            while True:
                _, _, done = await ctx.tick().sample(framer.done)
                if done:
                    break
            ctx.set(framer.finish, 0)

    async def main(ctx):
        frame = []
        while len(sent) < len(bodies):
            ready = rng.random() < 0.6
            ctx.set(framer.reply.ready, ready)
            _, _, valid, payload, done = await ctx.tick().sample(framer.reply.valid, framer.reply.payload, framer.done)
            dones.append(done)
            if valid and ready:
                frame.append(payload.data)
                if payload.last:
                    sent.append(bytes(frame))
                    frame = []
                    assert done

    run_amaranth(framer, main, send)
    assert sent == [_with_crc(b) for b in bodies]
    assert sum(dones) == len(bodies)


@pytest.mark.parametrize("seed", range(4))
def test_argmax_lowest_index_of_the_largest(seed):
    rng = random.Random(seed)
    bits = 12
    runs = [[rng.randrange(-5, 5) for _ in range(n)] for n in (1, 2, 10, 40)] + \
        [[rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1)) for _ in range(30)]]
    am = ArgMax(bits)
    preds = []

    async def main(ctx):
        for logits in runs:
            ctx.set(am.clear, 1)
            await ctx.tick()
            ctx.set(am.clear, 0)
            assert ctx.get(am.pred) == 0xFF
            for i, v in enumerate(logits):
                while rng.random() < 0.5:
                    await ctx.tick()
                ctx.set(am.logits.valid, 1)
                ctx.set(am.logits.payload, {"value": v, "index": i, "first": i == 0})
                await ctx.tick()
                ctx.set(am.logits.valid, 0)
            await ctx.tick().repeat(2)
            preds.append(ctx.get(am.pred))

    run_amaranth(am, main)
    assert preds == [max(range(len(r)), key=lambda k: (r[k], -k)) for r in runs]
