"""Host link gateware: UART PHY, COBS framing, CRC and the command controller (``docs/protocol.md``).

The byte protocol is :mod:`spikeforge.firmware.protocol` (the contract the host's codec,
:mod:`spikeforge.host.protocol`, follows too). The chain::

    rx bytes -> COBSDecoder -> LinkController -> (CRC appended) -> COBSEncoder -> tx bytes
                                 |  frame buffer (MAX_FRAME bytes), CRC-16 check
                                 +-> accelerator: write stream, start, reset, read_addr/read_data

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

from spikeforge.firmware.memory_map import READ_MAP, write_layout
from spikeforge.firmware.program import SPACES, HardwareConfig, space_rows, words_per_row, write_port_layout
from spikeforge.firmware.protocol import CMD, CRC_INIT, CRC_POLYNOMIAL, CRC_WIDTH, MAX_FRAME, STATUS

from .register_slice import RegisterSlice

__all__ = ["UARTReceiver", "UARTTransmitter", "COBSDecoder", "COBSEncoder", "LinkController", "HostLink",
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


def _accel_signature(write_layout) -> dict:
    """The controller's side of the accelerator's ports (``read_data``: the word at the previous
    cycle's ``read_addr``, as :class:`~spikeforge.hdl.accelerator.Accelerator` answers)."""
    return {"write": Out(stream.Signature(write_layout)), "start": Out(1), "accel_reset": Out(1),
            "read_addr": Out(16), "read_data": In(32)}


class LinkController(wiring.Component):
    """Receives decoded frames, checks them, executes their command on the accelerator, and sends
    the reply (with its CRC) as :data:`WIRE_BYTE` bytes.

    Parameters: ``hw`` (the :class:`~spikeforge.firmware.program.HardwareConfig` of the accelerator it
    drives: write-port layout, row geometry and capacities) and ``hello`` (the HELLO reply payload,
    :func:`spikeforge.firmware.protocol.hello_payload`, held in a ROM).

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
                          **_accel_signature(write_layout(hw))})

    def elaborate(self, platform):
        m = Module()
        cmd_fsm = _CommandFSM(self, m)
        with m.FSM(name="link") as fsm:
            cmd_fsm.receive_states()
            cmd_fsm.dispatch_states()
            cmd_fsm.write_states()
            cmd_fsm.run_states()
            cmd_fsm.reply_states()
        # bytes that arrive while the controller is busy are dropped; a frame whose head was dropped
        # fails with E_FRAME, while a frame that ended while busy is forgotten
        with m.If(self.frames.valid & ~fsm.ongoing("RX")):
            m.d.sync += cmd_fsm.lost.eq(~cmd_fsm.beat.end)
        return m


class _CommandFSM:
    """Builds :class:`LinkController`'s logic into ``m``: the frame buffer, the command registers and
    the reply stream (on construction), then the command FSM's states one group at a time (the
    caller opens the FSM): receive and check, dispatch, the WRITE path, RUN and RESET, the replies.
    """

    def __init__(self, ctl: LinkController, m: Module):
        self.ctl, self.m = ctl, m
        self._frame_buffer()
        self._registers()
        self._reply_stream()

    def _frame_buffer(self):
        """The frame buffer, written while receiving, read with a one-byte look-ahead while executing."""
        m, ctl = self.m, self.ctl
        m.submodules.buffer = buf = memory.Memory(shape=8, depth=MAX_FRAME, init=[])
        buf_wr, buf_rd = buf.write_port(), buf.read_port()
        m.submodules.rx_crc = rx_crc = crc.Processor(CRC16)
        m.submodules.tx_crc = tx_crc = crc.Processor(CRC16)
        m.submodules.hello = rom = memory.Memory(shape=8, depth=max(1, len(ctl.hello)), init=list(ctl.hello))
        rom_rd = rom.read_port()

        n = Signal(range(MAX_FRAME + 1))        # bytes received in this frame
        oversize = Signal()
        cobs_error = Signal()
        lost = Signal()                          # bytes arrived while busy: this frame lacks its head
        cmd = Signal(8)
        seq = Signal(8)
        status = Signal(8)
        plen = Signal(range(MAX_FRAME + 1))     # payload bytes
        rp = Signal(range(MAX_FRAME))            # buffer read pointer: buf_rd.data is buf[rp]
        adv = Signal()
        seek = Signal()
        seek_to = Signal(range(MAX_FRAME))
        m.d.comb += buf_rd.addr.eq(Mux(seek, seek_to, Mux(adv, rp + 1, rp)))
        m.d.sync += rp.eq(buf_rd.addr)
        # no read collides with a write: RX writes, and neither advances nor seeks the read pointer
        m.d.comb += buf_rd.en.eq(~buf_wr.en)
        byte = buf_rd.data

        beat = ctl.frames.payload
        m.d.comb += [ctl.frames.ready.eq(1), buf_wr.addr.eq(n), buf_wr.data.eq(beat.data),
                     rx_crc.data.eq(beat.data)]
        vars(self).update(buf_wr=buf_wr, rx_crc=rx_crc, tx_crc=tx_crc, rom_rd=rom_rd, n=n, oversize=oversize,
                          cobs_error=cobs_error, lost=lost, cmd=cmd, seq=seq, status=status, plen=plen, adv=adv,
                          seek=seek, seek_to=seek_to, byte=byte, beat=beat)

    def _registers(self):
        """The command registers: fields, the WRITE path's counters and checks, RUN's argmax."""
        m, ctl = self.m, self.ctl
        # little-endian field assembly: the write payload's data register (the accelerator only
        # takes it while ``write.valid``, and a WRITE's words are assembled in place)
        acc_sh = ctl.write.payload.data
        k = Signal(2)
        space = Signal(8)
        row = Signal(32)
        nwords = Signal(range(MAX_FRAME // 4 + 1))
        w = Signal(range(max(ctl.words_per_row.values()) + 1))
        rcount = Signal(range(MAX_FRAME // 4 + 1))
        rows_written = Signal(32)
        m.d.comb += rows_written.eq(rcount)
        cap_bits = max(ctl.rows.values()).bit_length()
        cur_row = Signal(cap_bits)
        raddr = Signal(16)
        count = Signal(8)
        nlog = Signal(8)
        run = Signal()                           # the WRITE is a RUN's pixels
        best = Signal(signed(ctl.hw.logit_bits))   # logits are read sign-extended from this width
        pred = Signal(8)
        # argmax, one cycle behind the logits being sent (a register between the accelerator's read
        # mux and the comparison); it settles while the last logit's other three bytes go out
        cand, cand_idx, cand_first, cand_valid = Signal.like(best), Signal(8), Signal(), Signal()
        m.d.sync += cand_valid.eq(0)
        with m.If(cand_valid & (cand_first | (cand > best))):
            m.d.sync += [best.eq(cand), pred.eq(cand_idx)]
        wpr = Array(Const(ctl.words_per_row[s], range(max(ctl.words_per_row.values()) + 1)) for s in SPACES)
        rows_cap = Array(Const(ctl.rows[s], cap_bits) for s in SPACES)
        space_wpr = Signal.like(wpr[0])          # the space's words per row and rows, once checked
        space_rows = Signal(cap_bits)
        left = Signal.like(nwords)               # words left to count, then to write
        row_end = Signal(max(cap_bits, len(rcount)) + 1)   # row + rows counted (registered; no wrap)
        row_high = Signal()                      # row has bits above every space's rows
        out_of_range = Signal()
        vars(self).update(acc_sh=acc_sh, k=k, space=space, row=row, nwords=nwords, w=w, rcount=rcount,
                          rows_written=rows_written, cap_bits=cap_bits, cur_row=cur_row, raddr=raddr, count=count,
                          nlog=nlog, run=run, pred=pred, cand=cand, cand_idx=cand_idx, cand_first=cand_first,
                          cand_valid=cand_valid, wpr=wpr, rows_cap=rows_cap, space_wpr=space_wpr,
                          space_rows=space_rows, left=left, row_end=row_end, row_high=row_high,
                          out_of_range=out_of_range)

    def _reply_stream(self):
        """The reply byte stream (its CRC appended by the CRC_HI / CRC_LO states) and the read address."""
        m, ctl = self.m, self.ctl
        out = ctl.reply
        m.d.comb += [self.tx_crc.data.eq(out.payload.data)]
        idx = Signal(range(4 * 256 + 1))
        next_idx = Signal(range(4 * 256 + 2))   # idx in the next cycle while a reply byte is sent
        m.d.comb += next_idx.eq(Mux(out.ready, idx + 1, idx))

        # The read address is a register (no path from the command state into the accelerator's read
        # map): each state sets it at least a cycle before the word is wanted. A read-map word is
        # sent from ``read_data`` for its first byte and from ``word_buf`` for the other three, so
        # the address moves on to the next word as soon as the first byte has gone.
        read_addr = Signal(16)
        word_buf = Signal(24)
        word_byte = Mux(idx[:2] == 0, ctl.read_data[:8], word_buf.word_select((idx[:2] - 1)[:2], 8))
        first_sent = Signal()                     # a word's first byte goes out this cycle
        m.d.comb += [ctl.read_addr.eq(read_addr), first_sent.eq(out.ready & (idx[:2] == 0))]
        emit_len = Signal.like(next_idx)         # the sending state's length (never 0)
        emit_last = Signal()                      # the byte sent is its last
        m.d.comb += emit_last.eq(idx + 1 == emit_len)
        vars(self).update(out=out, idx=idx, next_idx=next_idx, read_addr=read_addr, word_buf=word_buf,
                          word_byte=word_byte, first_sent=first_sent, emit_len=emit_len, emit_last=emit_last)

    # --- helpers the states share

    def send_words(self, next_addr):
        """Send read-map words (``emit`` them with ``word_byte``); after each word's first byte
        the address moves to ``next_addr``."""
        with self.m.If(self.first_sent):
            self.m.d.sync += [self.word_buf.eq(self.ctl.read_data[8:]), self.read_addr.eq(next_addr)]

    def emit(self, byte_value, length, nxt, first=False):
        """Send ``length`` (> 0) bytes ``byte_value`` (a Value of ``idx``), then go to state ``nxt``."""
        m, out, idx = self.m, self.out, self.idx
        m.d.comb += [out.valid.eq(1), out.payload.data.eq(byte_value), self.emit_len.eq(length),
                     self.tx_crc.valid.eq(out.ready), self.tx_crc.start.eq(first & (idx == 0))]
        with m.If(out.ready):
            m.d.sync += idx.eq(idx + 1)
            with m.If(self.emit_last):
                m.d.sync += idx.eq(0)
                m.next = nxt

    def field(self, target, nbytes, nxt):
        """Assemble the ``nbytes``-byte little-endian field at the read pointer into ``target``."""
        m, acc_sh, k, byte = self.m, self.acc_sh, self.k, self.byte
        m.d.comb += self.adv.eq(1)
        m.d.sync += [acc_sh.eq(Cat(acc_sh[8:], byte)), k.eq(k + 1)]
        with m.If(k == nbytes - 1):
            m.d.sync += [target.eq(Cat(acc_sh[32 - 8 * (nbytes - 1):], byte)), k.eq(0)]
            m.next = nxt

    def fail(self, code):
        self.m.d.sync += [self.status.eq(STATUS[code]), self.idx.eq(0)]
        self.m.next = "HEADER_ONLY"

    # --- the states, in the order they are declared

    def receive_states(self):
        """RX (a frame into the buffer) and CHECK (its verdict: E_FRAME, E_OVERSIZE, E_CRC or on)."""
        m, beat, n = self.m, self.beat, self.n
        with m.State("RX"):
            with m.If(self.ctl.frames.valid):
                with m.If(beat.end):
                    with m.If((n == 0) & ~beat.error & ~self.lost):
                        pass                                # an empty frame: a flush, ignored
                    with m.Else():
                        m.d.sync += self.cobs_error.eq(beat.error)
                        m.next = "CHECK"
                with m.Else():
                    with m.If(n == 0):
                        m.d.sync += [self.cmd.eq(beat.data), self.seq.eq(0)]
                    with m.If(n == 1):
                        m.d.sync += self.seq.eq(beat.data)
                    with m.If(n < MAX_FRAME):
                        m.d.comb += [self.buf_wr.en.eq(1), self.rx_crc.valid.eq(1), self.rx_crc.start.eq(n == 0)]
                        m.d.sync += n.eq(n + 1)
                    with m.Else():
                        m.d.sync += self.oversize.eq(1)

        with m.State("CHECK"):
            m.d.sync += [self.status.eq(STATUS["OK"]), self.plen.eq(n - 4), self.idx.eq(0), self.run.eq(0),
                         self.k.eq(0), self.w.eq(0), self.rcount.eq(0), self.lost.eq(0)]
            m.d.comb += [self.seek.eq(1), self.seek_to.eq(2)]
            with m.If(self.cobs_error | self.lost | ((n < 4) & ~self.oversize)):
                self.fail("E_FRAME")
            with m.Elif(self.oversize):
                self.fail("E_OVERSIZE")
            with m.Elif(~self.rx_crc.match_detected):
                self.fail("E_CRC")
            with m.Else():
                m.next = "DISPATCH"

    def dispatch_states(self):
        """DISPATCH (the command and its payload length) and READ's fields (addr:u16 count:u8)."""
        m, cmd, plen, fail = self.m, self.cmd, self.plen, self.fail
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

        with m.State("READ_ADDR"):
            self.field(self.raddr, 2, "READ_COUNT")
        with m.State("READ_COUNT"):
            self.field(self.count, 1, "HEADER")

    def write_states(self):
        """WRITE ``space:u8 row:u32 words`` (and RUN's pixels): the fields, then the checks a state
        each, from registers (short paths): the space, whole rows counted without writing (one
        cycle per word), the rows' range (compared in RANGE, acted on in ADMIT); then the words."""
        m, fail = self.m, self.fail
        space, row, left, w, nwords = self.space, self.row, self.left, self.w, self.nwords
        with m.State("WRITE_SPACE"):
            self.field(space, 1, "WRITE_ROW")
        with m.State("WRITE_ROW"):
            self.field(row, 4, "SPACE")
        with m.State("RUN_NLOG"):
            self.field(self.nlog, 1, "SPACE")
            m.d.sync += [space.eq(SPACES["pixels"]), row.eq(0)]
        with m.State("SPACE"):
            with m.If(space >= len(SPACES)):
                fail("E_RANGE")
            with m.Else():
                m.d.sync += [self.space_wpr.eq(self.wpr[space]), self.space_rows.eq(self.rows_cap[space]),
                             left.eq(nwords)]
                m.next = "VALIDATE"
        with m.State("VALIDATE"):
            with m.If(left != 0):
                m.d.sync += [left.eq(left - 1), w.eq(w + 1)]
                with m.If(w + 1 == self.space_wpr):
                    m.d.sync += [w.eq(0), self.rcount.eq(self.rcount + 1)]
            with m.Elif(w != 0):
                fail("E_LENGTH")
            with m.Else():
                m.d.sync += [self.row_end.eq(row[:self.cap_bits] + self.rcount),
                             self.row_high.eq(row[self.cap_bits:].any())]
                m.next = "RANGE"
        with m.State("RANGE"):
            m.d.sync += self.out_of_range.eq(self.row_high | (self.row_end > self.space_rows))
            m.next = "ADMIT"
        with m.State("ADMIT"):
            with m.If(self.out_of_range):
                fail("E_RANGE")
            with m.Else():
                m.d.sync += [left.eq(nwords), self.cur_row.eq(row), self.k.eq(0)]
                with m.If(nwords == 0):
                    m.next = "START"
                with m.Else():
                    m.next = "WRITE_WORDS"
        self._write_words_states()

    def _write_words_states(self):
        """WRITE_WORDS (a word into the accelerator's write port per four payload bytes) and WRITTEN."""
        m, ctl, k, acc_sh, w, left, cur_row = self.m, self.ctl, self.k, self.acc_sh, self.w, self.left, self.cur_row
        with m.State("WRITE_WORDS"):
            wb = ctl.write.payload
            with m.If(~ctl.write.valid | ctl.write.ready):
                m.d.comb += self.adv.eq(1)
                m.d.sync += [acc_sh.eq(Cat(acc_sh[8:], self.byte)), k.eq(k + 1), ctl.write.valid.eq(k == 3)]
                with m.If(k == 3):
                    m.d.sync += [wb.space.eq(self.space), wb.addr.eq((cur_row << ctl.word_bits) | w),
                                 left.eq(left - 1), w.eq(w + 1)]
                    with m.If(w + 1 == self.space_wpr):
                        m.d.sync += [w.eq(0), cur_row.eq(cur_row + 1)]
                    with m.If(left == 1):
                        m.next = "WRITTEN"
        with m.State("WRITTEN"):
            with m.If(ctl.write.ready):
                m.d.sync += ctl.write.valid.eq(0)
                with m.If(self.run):
                    m.next = "START"
                with m.Else():
                    m.next = "HEADER"

    def run_states(self):
        """RUN's start and wait, and RESET (a four-cycle reset pulse to the accelerator).

        The accelerator's read port is synchronous: read_data answers the previous cycle's
        read_addr, so START sets the (registered) address to the status word and ARM lets the
        status read in START (the previous run's) go by before WAIT."""
        m, ctl, idx = self.m, self.ctl, self.idx
        with m.State("START"):
            m.d.comb += ctl.start.eq(1)
            m.d.sync += self.read_addr.eq(READ_MAP["status"])
            m.next = "ARM"
        with m.State("ARM"):
            m.next = "WAIT"
        with m.State("WAIT"):
            status_word = ctl.read_data
            with m.If(status_word[2] | (status_word[1] & ~status_word[0])):
                m.d.sync += self.pred.eq(0xFF)
                with m.If(status_word[2]):
                    m.d.sync += self.status.eq(STATUS["E_ACCEL"])
                m.next = "HEADER"

        with m.State("RESET"):
            m.d.comb += ctl.accel_reset.eq(1)
            m.d.sync += idx.eq(idx + 1)
            with m.If(idx == 3):
                m.d.sync += idx.eq(0)
                m.next = "HEADER"

    def reply_states(self):
        """The replies: the header (with or without a body), each command's body, the CRC."""
        m, cmd, idx, out, emit = self.m, self.cmd, self.idx, self.out, self.emit
        header = Array([cmd | 0x80, self.seq, self.status])
        for name, final in (("HEADER", False), ("HEADER_ONLY", True)):
            with m.State(name):
                m.d.sync += self.read_addr.eq(self.raddr)       # READ's first word, or RUN's cycles
                emit(header[idx[:2]], 3, "CRC_HI", first=True)
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
        self._body_states()
        with m.State("CRC_HI"):
            m.d.comb += [out.valid.eq(1), out.payload.data.eq(self.tx_crc.crc[8:])]
            with m.If(out.ready):
                m.next = "CRC_LO"
        with m.State("CRC_LO"):
            m.d.comb += [out.valid.eq(1), out.payload.data.eq(self.tx_crc.crc[:8]), out.payload.last.eq(1)]
            with m.If(out.ready):
                m.d.sync += [self.n.eq(0), self.oversize.eq(0), self.cobs_error.eq(0)]
                m.next = "RX"

    def _body_states(self):
        """The reply bodies: HELLO's ROM, READ's words, WRITE's rows written, RUN's cycles, logits and
        prediction (the logits feed the argmax as their first bytes go)."""
        m, idx, emit, word_byte, read_addr = self.m, self.idx, self.emit, self.word_byte, self.read_addr
        with m.State("HELLO_DATA"):
            m.d.comb += self.rom_rd.addr.eq(self.next_idx)
            emit(self.rom_rd.data, len(self.ctl.hello), "CRC_HI")
        with m.State("READ_DATA"):
            self.send_words(read_addr + 1)
            emit(word_byte, self.count * 4, "CRC_HI")
        with m.State("WRITE_DATA"):
            emit(self.rows_written.word_select(idx[:2], 8), 4, "CRC_HI")
        with m.State("RUN_CYCLES"):
            self.send_words(READ_MAP["logits"])
            emit(word_byte, 4, "RUN_PRED")
            with m.If(self.out.ready & (idx == 3) & (self.nlog != 0)):
                m.next = "RUN_LOGITS"
        with m.State("RUN_LOGITS"):
            self.send_words(read_addr + 1)
            with m.If(self.first_sent):
                cand = self.cand
                m.d.sync += [cand.eq(self.ctl.read_data[:len(cand)]), self.cand_idx.eq(idx[2:]),
                             self.cand_first.eq(idx == 0), self.cand_valid.eq(1)]
            emit(word_byte, self.nlog * 4, "RUN_PRED")
        with m.State("RUN_PRED"):
            emit(self.pred, 1, "CRC_HI")


class HostLink(wiring.Component):
    """The protocol endpoint on byte streams: ``rx`` (wire bytes in) -> :class:`COBSDecoder` ->
    :class:`LinkController` -> :class:`COBSEncoder` -> ``tx`` (wire bytes out, ``last`` on each
    reply's delimiter), plus the controller's accelerator ports (``write``, ``start``,
    ``accel_reset``, ``read_addr``, ``read_data``). ``rx`` / ``tx`` are the AXI4-Stream-style port
    (``payload`` = TDATA, ``valid`` / ``ready`` = TVALID / TREADY, ``tx.payload.last`` = TLAST).
    """

    def __init__(self, hw: HardwareConfig, hello: bytes):
        self.hw, self.hello = hw, hello
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(WIRE_BYTE)),
                          **_accel_signature(write_layout(hw))})

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
        wiring.connect(m, ctl.write, wiring.flipped(self.write))
        m.d.comb += [self.start.eq(ctl.start), self.accel_reset.eq(ctl.accel_reset),
                     self.read_addr.eq(ctl.read_addr), ctl.read_data.eq(self.read_data)]
        return m
