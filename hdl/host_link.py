"""Host link gateware: UART PHY, COBS framing, CRC and the command controller (``docs/protocol.md``).

The byte protocol is :mod:`spikeforge.firmware.protocol` (the contract the host's codec,
:mod:`spikeforge.host.protocol`, follows too). The chain::

    rx bytes -> COBSDecoder -> LinkController -> COBSEncoder -> tx bytes
                               |
                               |  FrameReceiver -> command FSM -> ReplyFramer
                               |  (frame buffer,    |   (dispatch,      (CRC appended)
                               |   CRC-16 check)    |    write path,
                               |                    |    read path)  -> ArgMax (RUN's prediction)
                               +-> accelerator: control bus (write stream, start, read_addr/read_data), reset

:class:`HostLink` is that chain with byte-stream ports (``rx`` in, ``tx`` out with ``last`` on each
frame's delimiter): the AXI4-Stream-style port a PCIe DMA drives. :class:`UARTReceiver` and
:class:`UARTTransmitter` put it on two pins for small boards (``hdl/board.py`` assembles both).

A frame is executed only after its CRC checked, so a corrupted frame never writes a memory; every
malformed frame (bad CRC, COBS error, too short, oversized, bytes lost while the controller was
busy) gets an error reply and the controller returns to receiving. Empty frames (two delimiters in
a row) are ignored, so a host may begin every frame with a delimiter to flush line noise.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import crc, data, memory, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from spikeforge.firmware.memory_map import READ_MAP, control_bus
from spikeforge.firmware.program import SPACES, HardwareConfig, space_rows, words_per_row, write_port_layout
from spikeforge.firmware.protocol import (CMD, CRC_BYTES, CRC_INIT, CRC_POLYNOMIAL, CRC_WIDTH, MAX_FRAME, REPLY_FLAG,
                                          REPLY_HEADER, REQUEST_HEADER, STATUS, Status)

from .register_slice import RegisterSlice

__all__ = ["UARTReceiver", "UARTTransmitter", "COBSDecoder", "COBSEncoder", "FrameReceiver", "ReplyFramer", "ArgMax",
           "LinkController", "HostLink",
           "FRAME_BEAT", "WIRE_BYTE", "CRC16"]

#: The protocol's CRC: CRC-16/CCITT-FALSE on bytes (residue 0 over a frame and its big-endian CRC).
CRC16 = crc.Algorithm(crc_width=CRC_WIDTH, polynomial=CRC_POLYNOMIAL, initial_crc=CRC_INIT, reflect_input=False,
                      reflect_output=False, xor_output=0)(data_width=8)
#: A decoded frame byte, or (``end``) the end of a frame, with ``error`` when its COBS was malformed.
FRAME_BEAT = data.StructLayout({"data": 8, "end": 1, "error": 1})
#: A byte with ``last`` marking the final byte of a frame (the reply stream; the wire's delimiter).
WIRE_BYTE = data.StructLayout({"data": 8, "last": 1})


class UARTReceiver(wiring.Component):
    """8N1 UART receiver: the ``rx`` pin (idle high, LSB first) -> ``bytes``.

    ``divisor`` clock cycles per bit (at least 4); the bit is sampled mid-bit after a two-flop
    synchroniser. A received byte is offered on ``bytes`` until taken; a byte completed while the
    previous one is still waiting is dropped with an ``overrun`` pulse, a byte whose stop bit is
    low with a ``frame_error`` pulse. Cycle cost: ``10 * divisor`` per byte.
    """

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"UARTReceiver: divisor must be at least 4 cycles per bit, got {divisor}")
        self.divisor = divisor
        super().__init__({"rx": In(1), "bytes": Out(stream.Signature(8)), "overrun": Out(1),
                          "frame_error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(div))
        bit = Signal(range(8))
        shreg = Signal(8)
        with m.If(self.bytes.valid & self.bytes.ready):
            m.d.sync += self.bytes.valid.eq(0)
        with m.FSM(name="uart_rx"):
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                    m.next = "DATA"
                    with m.If(rx):   # a glitch, not a start bit
                        m.next = "IDLE"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(div - 1), shreg.eq(Cat(shreg[1:], rx)), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(~rx):
                        m.d.comb += self.frame_error.eq(1)
                    with m.Elif(self.bytes.valid & ~self.bytes.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.bytes.payload.eq(shreg), self.bytes.valid.eq(1)]
                    m.next = "IDLE"
        return m


class UARTTransmitter(wiring.Component):
    """8N1 UART transmitter: ``bytes`` -> the ``tx`` pin (idle high). ``divisor`` cycles per bit;
    cycle cost ``10 * divisor + 1`` per byte."""

    def __init__(self, divisor: int):
        if divisor < 1:
            raise ValueError(f"UARTTransmitter: divisor must be positive, got {divisor}")
        self.divisor = divisor
        super().__init__({"bytes": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(10)
        bits = Signal(range(11))
        timer = Signal(range(self.divisor))
        with m.FSM(name="uart_tx"):
            with m.State("IDLE"):
                m.d.comb += self.bytes.ready.eq(1)
                with m.If(self.bytes.valid):
                    m.d.sync += [shreg.eq(Cat(Const(0, 1), self.bytes.payload, Const(1, 1))), bits.eq(10), timer.eq(0)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(bits == 0):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg >> 1), bits.eq(bits - 1),
                                     timer.eq(self.divisor - 1)]
        return m


class COBSDecoder(wiring.Component):
    """COBS decoder: wire ``bytes`` -> ``frames`` beats (:data:`FRAME_BEAT`).

    A ``0x00`` byte ends a frame: it comes out as an ``end`` beat, with ``error`` set when the
    frame stopped inside a COBS block (truncated or garbage). A code byte ``c`` announces ``c - 1``
    data bytes followed (when ``c < 0xFF`` and more follows) by an implied zero. One output beat per
    cycle; an implied zero costs one cycle without consuming input.
    """

    def __init__(self):
        super().__init__({"bytes": In(stream.Signature(8)), "frames": Out(stream.Signature(FRAME_BEAT))})

    def elaborate(self, platform):
        m = Module()
        remain = Signal(8)          # data bytes left in the current block
        zero_pending = Signal()     # the current block ended with an implied zero
        b = self.bytes.payload
        out = self.frames
        fire = out.valid & out.ready
        with m.If(self.bytes.valid):
            with m.If(b == 0):
                m.d.comb += [out.valid.eq(1), out.payload.end.eq(1), out.payload.error.eq(remain != 0),
                             self.bytes.ready.eq(out.ready)]
                with m.If(fire):
                    m.d.sync += [remain.eq(0), zero_pending.eq(0)]
            with m.Elif(remain == 0):
                with m.If(zero_pending):
                    m.d.comb += [out.valid.eq(1), out.payload.data.eq(0)]
                    with m.If(fire):
                        m.d.sync += zero_pending.eq(0)
                with m.Else():
                    m.d.comb += self.bytes.ready.eq(1)
                    m.d.sync += [remain.eq(b - 1), zero_pending.eq(b != 0xFF)]
            with m.Else():
                m.d.comb += [out.valid.eq(1), out.payload.data.eq(b), self.bytes.ready.eq(out.ready)]
                with m.If(fire):
                    m.d.sync += remain.eq(remain - 1)
        return m


class COBSEncoder(wiring.Component):
    """COBS encoder: frame ``bytes`` (:data:`WIRE_BYTE`, ``last`` on a frame's final byte) -> wire
    ``bytes`` with the ``0x00`` delimiter appended (``last`` set on it).

    Non-zero bytes collect in a 254-byte block buffer; a zero byte, a full block or the frame's
    end sends the block's code and its bytes. Same output as :func:`spikeforge.host.protocol.cobs_encode`.
    Cycle cost: about two cycles per byte plus the output's back-pressure (one block buffered).
    """

    def __init__(self):
        super().__init__({"bytes": In(stream.Signature(WIRE_BYTE)), "wire": Out(stream.Signature(WIRE_BYTE))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = block = memory.Memory(shape=8, depth=256, init=[])
        wr, rd = block.write_port(), block.read_port()
        n = Signal(range(256))      # bytes in the block
        i = Signal(range(256))      # next byte of the block to send
        code = Signal(8)
        tail = Signal()             # the frame ended with a zero: an empty block follows
        end = Signal()              # the frame ends after this block
        out = self.wire
        inp = self.bytes.payload
        m.d.comb += [wr.addr.eq(n), wr.data.eq(inp.data), rd.addr.eq(i), rd.en.eq(~wr.en)]
        with m.FSM(name="cobs_enc"):
            with m.State("FILL"):
                m.d.comb += self.bytes.ready.eq(1)
                with m.If(self.bytes.valid):
                    m.d.sync += [i.eq(0), end.eq(inp.last)]
                    with m.If(inp.data == 0):
                        m.d.sync += [code.eq(n + 1), tail.eq(inp.last)]
                        m.next = "CODE"
                    with m.Else():
                        m.d.comb += wr.en.eq(1)
                        m.d.sync += [n.eq(n + 1), tail.eq(0)]
                        with m.If((n == 253) | inp.last):
                            m.d.sync += code.eq(n + 2)
                            m.next = "CODE"
            with m.State("CODE"):
                m.d.comb += [out.valid.eq(1), out.payload.data.eq(code)]
                with m.If(out.ready):
                    m.next = "DATA"
                    with m.If(code == 1):
                        m.next = "AFTER"
            with m.State("DATA"):
                m.d.comb += [out.valid.eq(1), out.payload.data.eq(rd.data)]
                with m.If(out.ready):
                    m.d.comb += rd.addr.eq(i + 1)
                    m.d.sync += i.eq(i + 1)
                    with m.If(i + 1 == n):
                        m.next = "AFTER"
            with m.State("AFTER"):
                m.d.sync += n.eq(0)
                m.next = "FILL"
                with m.If(tail):
                    m.next = "TAIL"
                with m.Elif(end):
                    m.next = "DELIM"
            with m.State("TAIL"):
                m.d.comb += [out.valid.eq(1), out.payload.data.eq(1)]
                with m.If(out.ready):
                    m.next = "DELIM"
            with m.State("DELIM"):
                m.d.comb += [out.valid.eq(1), out.payload.data.eq(0), out.payload.last.eq(1)]
                with m.If(out.ready):
                    m.next = "FILL"
        return m


def _accel_signature(hw: HardwareConfig) -> dict:
    """The controller's side of the accelerator's ports: ``bus``, the control bus
    (:func:`~spikeforge.firmware.memory_map.control_bus`; ``read_data`` is the word at the previous
    cycle's ``read_addr``, as :class:`~spikeforge.hdl.accelerator.Accelerator` answers), and
    ``accel_reset``."""
    return {"bus": Out(control_bus(hw)), "accel_reset": Out(1)}


class FrameReceiver(wiring.Component):
    """Stores one received frame and checks it: decoded ``frames`` beats -> a :data:`MAX_FRAME`-byte
    frame buffer, the frame's CRC-16, its length and verdict.

    Ports:

    * ``frames``: ``In(stream.Signature(FRAME_BEAT))``, always ready (no back-pressure: a beat that
      comes while the controller is not listening is dropped).
    * ``listen``: ``In(1)``, the controller waits for a frame. Each data beat then goes into the
      buffer at the next address and into the CRC (bytes past ``MAX_FRAME`` only mark the frame
      oversized); the first two are also kept as ``cmd`` and ``seq`` (``Out(8)``; ``seq`` 0 in a
      one-byte frame). The end beat of an empty frame (two delimiters in a row: a flush) is
      ignored; that of any other frame pulses ``ended`` (``Out(1)``, in the end beat's cycle).
    * ``length`` (bytes received), ``status`` (``Out(Status)``) and ``ok``: the frame's verdict,
      from the cycle after ``ended``: E_FRAME (a COBS error, fewer than 4 bytes, or beats of it
      dropped while not listening), else E_OVERSIZE, else E_CRC (the residue is not 0), else OK.
    * ``take``: ``In(1)``, one cycle: the controller takes the frame; the read pointer moves to
      byte 2 (the payload's first) and the dropped-beats mark clears. ``clear``: ``In(1)``, one
      cycle: the reply has gone; length and flags clear for the next frame.
    * ``byte``: ``Out(8)``, the buffer byte at the read pointer (the read port's address is the
      pointer's next value, so ``byte`` follows ``take`` and ``adv`` in the next cycle); ``adv``:
      ``In(1)``, the pointer moves on by one.

    Cycle cost: one cycle per beat; the verdict is ready the cycle after ``ended``.
    """

    def __init__(self):
        super().__init__({"frames": In(stream.Signature(FRAME_BEAT)), "listen": In(1), "ended": Out(1),
                          "cmd": Out(8), "seq": Out(8), "length": Out(range(MAX_FRAME + 1)), "status": Out(Status),
                          "ok": Out(1), "take": In(1), "clear": In(1), "byte": Out(8), "adv": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buf = memory.Memory(shape=8, depth=MAX_FRAME, init=[])
        wr, rd = buf.write_port(), buf.read_port()
        m.submodules.crc = rx_crc = crc.Processor(CRC16)
        n = self.length
        oversize = Signal()
        cobs_error = Signal()
        lost = Signal()                          # beats dropped while not listening: the frame lacks its head
        rp = Signal(range(MAX_FRAME))            # read pointer: ``byte`` is buf[rp]
        m.d.comb += rd.addr.eq(Mux(self.take, REQUEST_HEADER, Mux(self.adv, rp + 1, rp)))
        m.d.sync += rp.eq(rd.addr)
        # no read collides with a write: the buffer is written while listening, read while not
        m.d.comb += [rd.en.eq(~wr.en), self.byte.eq(rd.data)]

        beat = self.frames.payload
        m.d.comb += [self.frames.ready.eq(1), wr.addr.eq(n), wr.data.eq(beat.data), rx_crc.data.eq(beat.data)]
        with m.If(self.listen & self.frames.valid):
            with m.If(beat.end):
                with m.If((n != 0) | beat.error | lost):      # not an empty frame (a flush)
                    m.d.comb += self.ended.eq(1)
                    m.d.sync += cobs_error.eq(beat.error)
            with m.Else():
                with m.If(n == 0):
                    m.d.sync += [self.cmd.eq(beat.data), self.seq.eq(0)]
                with m.If(n == 1):
                    m.d.sync += self.seq.eq(beat.data)
                with m.If(n < MAX_FRAME):
                    m.d.comb += [wr.en.eq(1), rx_crc.valid.eq(1), rx_crc.start.eq(n == 0)]
                    m.d.sync += n.eq(n + 1)
                with m.Else():
                    m.d.sync += oversize.eq(1)
        with m.If(self.take):
            m.d.sync += lost.eq(0)
        with m.If(self.clear):
            m.d.sync += [n.eq(0), oversize.eq(0), cobs_error.eq(0)]
        # a frame whose head was dropped fails with E_FRAME, while one that ended unheard is forgotten
        with m.If(self.frames.valid & ~self.listen):
            m.d.sync += lost.eq(~beat.end)

        with m.If(cobs_error | lost | ((n < REQUEST_HEADER + CRC_BYTES) & ~oversize)):
            m.d.comb += self.status.eq(Status.E_FRAME)
        with m.Elif(oversize):
            m.d.comb += self.status.eq(Status.E_OVERSIZE)
        with m.Elif(~rx_crc.match_detected):
            m.d.comb += self.status.eq(Status.E_CRC)
        with m.Else():
            m.d.comb += [self.status.eq(Status.OK), self.ok.eq(1)]
        return m


class ReplyFramer(wiring.Component):
    """Ends each reply with its CRC-16: ``body`` bytes -> ``reply`` (:data:`WIRE_BYTE`), then the
    CRC of the bytes since the previous reply, high byte first, ``last`` on the low byte.

    Ports: ``body``: ``In(stream.Signature(8))``, passed through as it comes (``body.ready`` is
    ``reply.ready``); ``finish``: ``In(1)``, held by the sender once the body has gone (no body
    byte is offered from then until ``done``): the CRC follows; ``done``: ``Out(1)``, the CRC's low
    byte is taken this cycle (the CRC restarts for the next reply). ``reply``:
    ``Out(stream.Signature(WIRE_BYTE))``. Back-pressure: ``reply.ready`` throughout. Cycle cost:
    one cycle per body byte and two for the CRC (each as long as ``reply`` stalls).
    """

    def __init__(self):
        super().__init__({"body": In(stream.Signature(8)), "finish": In(1), "done": Out(1),
                          "reply": Out(stream.Signature(WIRE_BYTE))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = tx_crc = crc.Processor(CRC16)
        out, body = self.reply, self.body
        m.d.comb += [tx_crc.data.eq(body.payload), body.ready.eq(out.ready)]
        with m.FSM(name="framer"):
            with m.State("BODY"):
                with m.If(self.finish):
                    m.d.comb += [out.valid.eq(1), out.payload.data.eq(tx_crc.crc[8:])]
                    with m.If(out.ready):
                        m.next = "CRC_LO"
                with m.Else():
                    m.d.comb += [out.valid.eq(body.valid), out.payload.data.eq(body.payload),
                                 tx_crc.valid.eq(body.valid & out.ready)]
            with m.State("CRC_LO"):
                m.d.comb += [out.valid.eq(1), out.payload.data.eq(tx_crc.crc[:8]), out.payload.last.eq(1)]
                with m.If(out.ready):
                    m.d.comb += [self.done.eq(1), tx_crc.start.eq(1)]
                    m.next = "BODY"
        return m


class ArgMax(wiring.Component):
    """The index of the largest logit (the lowest index on ties, as the golden model's argmax) of
    the logits a RUN reply sends.

    Ports: ``logits``: ``In(stream.Signature({"value": signed(bits), "index": 8, "first": 1},
    always_ready=True))``, one logit a beat, ``first`` on a run's first; ``clear``: ``In(1)``,
    ``pred`` becomes 0xFF (a run whose reply has no logits); ``pred``: ``Out(8)``. Cycle cost: a
    logit is registered, then compared: ``pred`` holds it two cycles after its beat (a register
    between the accelerator's read mux and the comparison).
    """

    def __init__(self, bits: int):
        self.bits = bits
        layout = data.StructLayout({"value": signed(bits), "index": 8, "first": 1})
        super().__init__({"logits": In(stream.Signature(layout, always_ready=True)), "clear": In(1), "pred": Out(8)})

    def elaborate(self, platform):
        m = Module()
        cand = Signal(self.logits.payload.shape())
        cand_valid = Signal()
        best = Signal(signed(self.bits))
        m.d.sync += cand_valid.eq(0)
        with m.If(self.logits.valid):
            m.d.sync += [cand.eq(self.logits.payload), cand_valid.eq(1)]
        with m.If(cand_valid & (cand.first | (cand.value > best))):
            m.d.sync += [best.eq(cand.value), self.pred.eq(cand.index)]
        with m.If(self.clear):
            m.d.sync += self.pred.eq(0xFF)
        return m


class LinkController(wiring.Component):
    """Receives decoded frames, checks them, executes their command on the accelerator, and sends
    the reply (with its CRC) as :data:`WIRE_BYTE` bytes.

    Parameters: ``hw`` (the :class:`~spikeforge.firmware.program.HardwareConfig` of the accelerator it
    drives: write-port layout, row geometry and capacities) and ``hello`` (the HELLO reply payload,
    :func:`spikeforge.firmware.protocol.hello_payload`, held in a ROM).

    Ports: ``frames`` (``In(stream.Signature(FRAME_BEAT))``, always ready), ``reply``
    (``Out(stream.Signature(WIRE_BYTE))``), ``bus`` (``Out(control_bus(hw))``, the accelerator's
    control bus; ``busy`` and ``done`` unused: a run is followed through the status word) and
    ``accel_reset``.

    Parts: :class:`FrameReceiver` (buffer, CRC check, verdict), the command FSM (dispatch, the
    WRITE / RUN write path with its checks, the read path, the reply bytes), :class:`ArgMax` (RUN's
    prediction) and :class:`ReplyFramer` (the reply's CRC).

    Commands (``docs/protocol.md``): HELLO; WRITE ``space row words`` (whole rows, checked against the
    space's rows before anything is written); RUN ``n_logits pixel-words`` (pixels from row 0, start,
    wait for done; replies cycles, logits, prediction); READ ``addr count`` (read map words); RESET
    (a reset pulse to the accelerator; memories keep their contents); RUN_EVENTS is refused with
    E_UNSUPPORTED. Cycle cost: about one cycle per received byte to check a WRITE, one per byte to
    execute it, and one per reply byte (plus the transmitter's back-pressure).
    """

    def __init__(self, hw: HardwareConfig, hello: bytes):
        if not hello:
            raise ValueError("LinkController: the HELLO payload is empty (hello_payload() builds it)")
        self.hw = hw
        self.hello = bytes(hello)
        self.words_per_row = words_per_row(hw)
        self.word_bits = write_port_layout(hw)[0]
        self.rows = space_rows(hw)
        super().__init__({"frames": In(stream.Signature(FRAME_BEAT)), "reply": Out(stream.Signature(WIRE_BYTE)),
                          **_accel_signature(hw)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = rx = FrameReceiver()
        m.submodules.framer = framer = ReplyFramer()
        m.submodules.argmax = argmax = ArgMax(self.hw.logit_bits)
        m.submodules.hello = rom = memory.Memory(shape=8, depth=max(1, len(self.hello)), init=list(self.hello))
        wiring.connect(m, wiring.flipped(self.frames), rx.frames)
        wiring.connect(m, framer.reply, wiring.flipped(self.reply))
        fsm = _CommandFSM(m, self, rx, framer, argmax, rom.read_port())
        with m.FSM(name="link"):
            with m.State("RX"):
                m.d.comb += rx.listen.eq(1)
                with m.If(rx.ended):
                    m.next = "CHECK"
            fsm.dispatch_states()
            fsm.write_states()
            fsm.run_states()
            fsm.reply_states()
        return m


class _CommandFSM:
    """The command FSM of :class:`LinkController`: its registers, the helpers its states share, and
    one method per group of states (called inside the controller's ``m.FSM``)."""

    def __init__(self, m: Module, ctl: LinkController, rx: FrameReceiver, framer: ReplyFramer, argmax: ArgMax,
                 rom_rd):
        self.m, self.ctl, self.rx, self.framer, self.argmax, self.rom_rd = m, ctl, rx, framer, argmax, rom_rd
        self.bus = bus = ctl.bus
        wpr, rows = ctl.words_per_row, ctl.rows
        # little-endian field assembly: the write payload's data register (the accelerator only
        # takes it while ``write.valid``, and a WRITE's words are assembled in place)
        self.acc_sh = bus.write.payload.data
        self.k = Signal(2)
        self.status = Signal(8)
        self.plen = Signal(range(MAX_FRAME + 1))     # payload bytes
        self.space = Signal(8)
        self.row = Signal(32)
        self.nwords = Signal(range(MAX_FRAME // 4 + 1))
        self.w = Signal(range(max(wpr.values()) + 1))
        self.rcount = Signal(range(MAX_FRAME // 4 + 1))
        self.rows_written = Signal(32)
        m.d.comb += self.rows_written.eq(self.rcount)
        self.cap_bits = cap_bits = max(rows.values()).bit_length()
        self.cur_row = Signal(cap_bits)
        self.raddr = Signal(16)
        self.count = Signal(8)
        self.nlog = Signal(8)
        self.run = Signal()                          # the WRITE is a RUN's pixels
        self.wpr = Array(Const(wpr[s], range(max(wpr.values()) + 1)) for s in SPACES)
        self.rows_cap = Array(Const(rows[s], cap_bits) for s in SPACES)
        self.space_wpr = Signal.like(self.wpr[0])   # the space's words per row and rows, once checked
        self.space_rows = Signal(cap_bits)
        self.left = Signal.like(self.nwords)         # words left to count, then to write
        self.row_end = Signal(max(cap_bits, len(self.rcount)) + 1)   # row + rows counted (registered; no wrap)
        self.row_high = Signal()                     # row has bits above every space's rows
        self.out_of_range = Signal()

        # --- reply bytes (the framer appends the CRC)
        self.out = out = framer.body
        self.idx = idx = Signal(range(4 * 256 + 1))
        self.next_idx = Signal(range(4 * 256 + 2))   # idx in the next cycle while a reply byte is sent
        m.d.comb += self.next_idx.eq(Mux(out.ready, idx + 1, idx))
        # The read address is a register (no path from the command state into the accelerator's read
        # map): each state sets it at least a cycle before the word is wanted. A read-map word is
        # sent from ``read_data`` for its first byte and from ``word_buf`` for the other three, so
        # the address moves on to the next word as soon as the first byte has gone.
        self.read_addr = Signal(16)
        self.word_buf = Signal(24)
        self.word_byte = Mux(idx[:2] == 0, bus.read_data[:8], self.word_buf.word_select((idx[:2] - 1)[:2], 8))
        self.first_sent = Signal()                   # a word's first byte goes out this cycle
        m.d.comb += [bus.read_addr.eq(self.read_addr), self.first_sent.eq(out.ready & (idx[:2] == 0))]
        # a logit is taken by the argmax as its first byte goes (RUN_LOGITS sets ``valid``)
        logit = argmax.logits.payload
        m.d.comb += [logit.value.eq(bus.read_data[:len(logit.value)]), logit.index.eq(idx[2:]), logit.first.eq(idx == 0)]
        self.emit_len = Signal.like(self.next_idx)   # the sending state's length (never 0)
        self.emit_last = Signal()                    # the byte sent is its last
        m.d.comb += self.emit_last.eq(idx + 1 == self.emit_len)

    # ---------------------------------------------------------------------------- helpers
    def send_words(self, next_addr):
        """Send read-map words (``emit`` them with ``word_byte``); after each word's first byte the
        address moves to ``next_addr``."""
        with self.m.If(self.first_sent):
            self.m.d.sync += [self.word_buf.eq(self.bus.read_data[8:]), self.read_addr.eq(next_addr)]

    def emit(self, byte_value, length, nxt):
        """Send ``length`` (> 0) bytes ``byte_value`` (a Value of ``idx``), then go to state ``nxt``."""
        m, out, idx = self.m, self.out, self.idx
        m.d.comb += [out.valid.eq(1), out.payload.eq(byte_value), self.emit_len.eq(length)]
        with m.If(out.ready):
            m.d.sync += idx.eq(idx + 1)
            with m.If(self.emit_last):
                m.d.sync += idx.eq(0)
                m.next = nxt

    def field(self, target, nbytes, nxt):
        """Assemble the ``nbytes``-byte little-endian field at the read pointer into ``target``."""
        m, acc_sh, k, byte = self.m, self.acc_sh, self.k, self.rx.byte
        m.d.comb += self.rx.adv.eq(1)
        m.d.sync += [acc_sh.eq(Cat(acc_sh[8:], byte)), k.eq(k + 1)]
        with m.If(k == nbytes - 1):
            m.d.sync += [target.eq(Cat(acc_sh[32 - 8 * (nbytes - 1):], byte)), k.eq(0)]
            m.next = nxt

    def fail(self, code):
        self.m.d.sync += [self.status.eq(STATUS[code]), self.idx.eq(0)]
        self.m.next = "HEADER_ONLY"

    # ---------------------------------------------------------------------------- states
    def dispatch_states(self):
        """CHECK (the receiver's verdict) and DISPATCH (each command's length check)."""
        m, rx, cmd, plen, fail = self.m, self.rx, self.rx.cmd, self.plen, self.fail
        with m.State("CHECK"):
            m.d.sync += [self.status.eq(rx.status), plen.eq(rx.length - 4), self.idx.eq(0), self.run.eq(0),
                         self.k.eq(0), self.w.eq(0), self.rcount.eq(0)]
            m.d.comb += rx.take.eq(1)
            with m.If(rx.ok):
                m.next = "DISPATCH"
            with m.Else():
                m.next = "HEADER_ONLY"

        with m.State("DISPATCH"):
            with m.Switch(cmd):
                with m.Case(CMD["HELLO"], CMD["RESET"]):
                    with m.If(plen != 0):
                        fail("E_LENGTH")
                    with m.Elif(cmd == CMD["HELLO"]):
                        m.next = "HEADER"
                    with m.Else():
                        m.d.sync += self.idx.eq(0)
                        m.next = "RESET"
                with m.Case(CMD["READ"]):
                    with m.If(plen != 3):
                        fail("E_LENGTH")
                    with m.Else():
                        m.next = "READ_ADDR"
                with m.Case(CMD["WRITE"]):
                    with m.If((plen < 9) | (plen[:2] != 1)):    # space, row, at least one word
                        fail("E_LENGTH")
                    with m.Else():
                        m.d.sync += self.nwords.eq((plen - 5) >> 2)
                        m.next = "WRITE_SPACE"
                with m.Case(CMD["RUN"]):
                    with m.If(plen[:2] != 1):                  # n_logits, whole pixel words
                        fail("E_LENGTH")
                    with m.Else():
                        # (the reply starts with the cycles counter: HEADER reads it)
                        m.d.sync += [self.nwords.eq((plen - 1) >> 2), self.run.eq(1),
                                     self.raddr.eq(READ_MAP["counters"])]
                        m.next = "RUN_NLOG"
                with m.Case(CMD["RUN_EVENTS"]):
                    fail("E_UNSUPPORTED")
                with m.Default():
                    fail("E_COMMAND")

        # ------------------------------------------------------------ READ addr:u16 count:u8
        with m.State("READ_ADDR"):
            self.field(self.raddr, 2, "READ_COUNT")
        with m.State("READ_COUNT"):
            self.field(self.count, 1, "HEADER")

    def write_states(self):
        """The write path: WRITE's and RUN's fields, the checks (space, whole rows, the rows'
        range: nothing is written unless all pass) and the words into the write port."""
        m, fail = self.m, self.fail
        space, row, w, left, rcount = self.space, self.row, self.w, self.left, self.rcount
        cap_bits = self.cap_bits
        # ------------------------------------------------------------ WRITE space:u8 row:u32 words
        with m.State("WRITE_SPACE"):
            self.field(space, 1, "WRITE_ROW")
        with m.State("WRITE_ROW"):
            self.field(row, 4, "SPACE")
        with m.State("RUN_NLOG"):
            self.field(self.nlog, 1, "SPACE")
            m.d.sync += [space.eq(SPACES["pixels"]), row.eq(0)]
        # The checks take a state each, from registers (short paths): the space, then whole rows
        # counted without writing (one cycle per word), then the rows' range (compared in RANGE,
        # acted on in ADMIT).
        with m.State("SPACE"):
            with m.If(space >= len(SPACES)):
                fail("E_RANGE")
            with m.Else():
                m.d.sync += [self.space_wpr.eq(self.wpr[space]), self.space_rows.eq(self.rows_cap[space]),
                             left.eq(self.nwords)]
                m.next = "VALIDATE"
        with m.State("VALIDATE"):
            with m.If(left != 0):
                m.d.sync += [left.eq(left - 1), w.eq(w + 1)]
                with m.If(w + 1 == self.space_wpr):
                    m.d.sync += [w.eq(0), rcount.eq(rcount + 1)]
            with m.Elif(w != 0):
                fail("E_LENGTH")
            with m.Else():
                m.d.sync += [self.row_end.eq(row[:cap_bits] + rcount), self.row_high.eq(row[cap_bits:].any())]
                m.next = "RANGE"
        with m.State("RANGE"):
            m.d.sync += self.out_of_range.eq(self.row_high | (self.row_end > self.space_rows))
            m.next = "ADMIT"
        with m.State("ADMIT"):
            with m.If(self.out_of_range):
                fail("E_RANGE")
            with m.Else():
                m.d.sync += [left.eq(self.nwords), self.cur_row.eq(row), self.k.eq(0)]
                with m.If(self.nwords == 0):
                    m.next = "START"
                with m.Else():
                    m.next = "WRITE_WORDS"
        with m.State("WRITE_WORDS"):
            write, acc_sh, k = self.bus.write, self.acc_sh, self.k
            with m.If(~write.valid | write.ready):
                m.d.comb += self.rx.adv.eq(1)
                m.d.sync += [acc_sh.eq(Cat(acc_sh[8:], self.rx.byte)), k.eq(k + 1), write.valid.eq(k == 3)]
                with m.If(k == 3):
                    m.d.sync += [write.payload.space.eq(space),
                                 write.payload.addr.eq((self.cur_row << self.ctl.word_bits) | w),
                                 left.eq(left - 1), w.eq(w + 1)]
                    with m.If(w + 1 == self.space_wpr):
                        m.d.sync += [w.eq(0), self.cur_row.eq(self.cur_row + 1)]
                    with m.If(left == 1):
                        m.next = "WRITTEN"
        with m.State("WRITTEN"):
            with m.If(self.bus.write.ready):
                m.d.sync += self.bus.write.valid.eq(0)
                with m.If(self.run):
                    m.next = "START"
                with m.Else():
                    m.next = "HEADER"

    def run_states(self):
        """RUN's start and wait, and RESET's pulse."""
        m, bus = self.m, self.bus
        # the accelerator's read port is synchronous: read_data answers the previous cycle's
        # read_addr, so START sets the (registered) address to the status word and ARM lets the
        # status read in START (the previous run's) go by before WAIT
        with m.State("START"):
            m.d.comb += bus.start.eq(1)
            m.d.sync += self.read_addr.eq(READ_MAP["status"])
            m.next = "ARM"
        with m.State("ARM"):
            m.next = "WAIT"
        with m.State("WAIT"):
            status_word = bus.read_data
            with m.If(status_word[2] | (status_word[1] & ~status_word[0])):
                m.d.comb += self.argmax.clear.eq(1)
                with m.If(status_word[2]):
                    m.d.sync += self.status.eq(STATUS["E_ACCEL"])
                m.next = "HEADER"
        with m.State("RESET"):
            m.d.comb += self.ctl.accel_reset.eq(1)
            m.d.sync += self.idx.eq(self.idx + 1)
            with m.If(self.idx == 3):
                m.d.sync += self.idx.eq(0)
                m.next = "HEADER"

    def reply_states(self):
        """The reply: header, each command's payload (HELLO's ROM, read-map words, rows written,
        cycles, logits and prediction), then the framer's CRC."""
        m, idx, cmd, out = self.m, self.idx, self.rx.cmd, self.out
        emit, send_words, word_byte, first_sent = self.emit, self.send_words, self.word_byte, self.first_sent
        header = Array([cmd | REPLY_FLAG, self.rx.seq, self.status])
        for name, final in (("HEADER", False), ("HEADER_ONLY", True)):
            with m.State(name):
                m.d.sync += self.read_addr.eq(self.raddr)       # READ's first word, or RUN's cycles
                emit(header[idx[:2]], REPLY_HEADER, "CRC")
                if not final:
                    with m.If(out.ready & (idx == 2)):
                        with m.Switch(cmd):
                            with m.Case(CMD["HELLO"]):
                                m.next = "HELLO_DATA"
                            with m.Case(CMD["READ"]):
                                with m.If(self.count != 0):
                                    m.next = "READ_DATA"
                            with m.Case(CMD["WRITE"]):
                                m.next = "WRITE_DATA"
                            with m.Case(CMD["RUN"]):
                                m.next = "RUN_CYCLES"
        with m.State("HELLO_DATA"):
            m.d.comb += self.rom_rd.addr.eq(self.next_idx)
            emit(self.rom_rd.data, len(self.ctl.hello), "CRC")
        with m.State("READ_DATA"):
            send_words(self.read_addr + 1)
            emit(word_byte, self.count * 4, "CRC")
        with m.State("WRITE_DATA"):
            emit(self.rows_written.word_select(idx[:2], 8), 4, "CRC")
        with m.State("RUN_CYCLES"):
            send_words(READ_MAP["logits"])
            emit(word_byte, 4, "RUN_PRED")
            with m.If(out.ready & (idx == 3) & (self.nlog != 0)):
                m.next = "RUN_LOGITS"
        with m.State("RUN_LOGITS"):
            send_words(self.read_addr + 1)
            m.d.comb += self.argmax.logits.valid.eq(first_sent)
            emit(word_byte, self.nlog * 4, "RUN_PRED")
        with m.State("RUN_PRED"):
            emit(self.argmax.pred, 1, "CRC")
        with m.State("CRC"):
            m.d.comb += self.framer.finish.eq(1)
            with m.If(self.framer.done):
                m.d.comb += self.rx.clear.eq(1)
                m.next = "RX"


class HostLink(wiring.Component):
    """The protocol endpoint on byte streams: ``rx`` (wire bytes in) -> :class:`COBSDecoder` ->
    :class:`LinkController` -> :class:`COBSEncoder` -> ``tx`` (wire bytes out, ``last`` on each
    reply's delimiter), plus the controller's accelerator ports (``bus``, the control bus of
    :func:`~spikeforge.firmware.memory_map.control_bus`, and ``accel_reset``). ``rx`` / ``tx`` are the AXI4-Stream-style port
    (``payload`` = TDATA, ``valid`` / ``ready`` = TVALID / TREADY, ``tx.payload.last`` = TLAST).
    """

    def __init__(self, hw: HardwareConfig, hello: bytes):
        self.hw, self.hello = hw, hello
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(WIRE_BYTE)),
                          **_accel_signature(hw)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.decoder = dec = COBSDecoder()
        m.submodules.controller = ctl = LinkController(self.hw, self.hello)
        m.submodules.encoder = enc = COBSEncoder()
        wiring.connect(m, wiring.flipped(self.rx), dec.bytes)
        wiring.connect(m, dec.frames, ctl.frames)
        # a register slice between the controller's reply and the encoder: no path crosses it
        m.submodules.reply_slice = reply_slice = RegisterSlice(WIRE_BYTE)
        wiring.connect(m, ctl.reply, reply_slice.i)
        wiring.connect(m, reply_slice.o, enc.bytes)
        wiring.connect(m, enc.wire, wiring.flipped(self.tx))
        wiring.connect(m, ctl.bus, wiring.flipped(self.bus))
        m.d.comb += self.accel_reset.eq(ctl.accel_reset)
        return m
