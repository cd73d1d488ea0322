"""cocotb bench of the virtual board: :class:`~spikeforge.hdl.board.BoardTop` on a TCP socket.

The bench listens on ``127.0.0.1:$SPIKEFORGE_BOARD_PORT``; the host connects (pyserial
``socket://``, as to a networked serial port) and every byte it sends is driven into the board:
bit by bit onto the ``rx`` pin at the UART's divisor (``link=uart``), or as beats of the
``s_axis`` byte stream (``link=stream``). What the board sends (``tx`` pin / ``m_axis``) goes
back to the host. The run ends when the host closes the connection.

Environment: ``SPIKEFORGE_BOARD_PORT``, ``SPIKEFORGE_BOARD_LINK`` (``uart`` / ``stream``),
``SPIKEFORGE_BOARD_DIVISOR`` (clock cycles per UART bit), ``SPIKEFORGE_BOARD_ACCEPT_S``
(how long to wait for the host).
"""

from __future__ import annotations

import os
import random
import select
import socket

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from spikeforge.sim.cocotb_streams import StreamSource, reset

PERIOD_NS = 10
IDLE_CYCLES = 2000      # simulated between polls of the socket while nothing is sent


async def _uart_send(dut, data: bytes, div: int):
    for b in data:
        for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
            dut.rx.value = bit
            await Timer(div * PERIOD_NS, unit="ns")


async def _uart_monitor(dut, conn, div: int):
    while True:
        await FallingEdge(dut.tx)
        await Timer(div * PERIOD_NS * 3 // 2, unit="ns")      # middle of bit 0
        value = 0
        for i in range(8):
            value |= int(dut.tx.value) << i
            await Timer(div * PERIOD_NS, unit="ns")
        # now in the middle of the stop bit
        conn.sendall(bytes([value]))


async def _stream_monitor(dut, conn):
    dut.m_axis__ready.value = 1
    frame = bytearray()
    while True:
        await FallingEdge(dut.clk)
        if not int(dut.m_axis__valid.value):
            await RisingEdge(dut.m_axis__valid)
            continue
        beat = int(dut.m_axis__payload.value)
        frame.append(beat & 0xFF)
        if beat >> 8:          # TLAST: the frame's delimiter
            conn.sendall(bytes(frame))
            frame.clear()


@cocotb.test()
async def virtual_board(dut):
    port = int(os.environ["SPIKEFORGE_BOARD_PORT"])
    link = os.environ.get("SPIKEFORGE_BOARD_LINK", "uart")
    div = int(os.environ.get("SPIKEFORGE_BOARD_DIVISOR", "0"))
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    await FallingEdge(dut.clk)
    if link == "uart":
        dut.rx.value = 1
    else:
        dut.s_axis__valid.value = 0
        dut.m_axis__ready.value = 1
    await reset(dut, 4)

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1)
    server.settimeout(float(os.environ.get("SPIKEFORGE_BOARD_ACCEPT_S", "120")))
    conn, _ = server.accept()
    server.close()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if link == "uart":
        cocotb.start_soon(_uart_monitor(dut, conn, div))
    else:
        cocotb.start_soon(_stream_monitor(dut, conn))
    sent = 0
    while True:
        readable, _, _ = select.select([conn], [], [], 0.001)
        if readable:
            try:
                data = conn.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                break                       # the host closed the link
            sent += len(data)
            if link == "uart":
                await _uart_send(dut, data, div)
            else:
                await StreamSource(dut, "s_axis", 8, random.Random(0)).send(data)
        else:
            await Timer(IDLE_CYCLES * PERIOD_NS, unit="ns")
    conn.close()
    dut._log.info(f"virtual board: host sent {sent} bytes; link closed")
