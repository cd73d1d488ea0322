"""Transports: how the driver's bytes reach a device. One interface, three kinds of URL:

* **serial**: any pyserial URL: ``/dev/ttyUSB0``, ``COM3``, ``socket://host:port``, ``loop://``,
  ``rfc2217://...`` (``?baud=N`` sets the baud rate of a real port; default 115200);
* **PCIe**: ``pcie:///dev/xdma0`` (``?channel=K``, K in 0..3 as XDMA has): the Xilinx XDMA
  driver's character devices ``/dev/xdma0_h2c_K`` (host to card) and ``/dev/xdma0_c2h_K`` (card to
  host), streaming the same framed bytes over AXI4-Stream (``docs/protocol.md`` states what the
  tests cover);
* **virtual board**: ``sim://`` (``?lanes=P&link=uart|stream&simulator=verilator|icarus&baud=B&clock=HZ``),
  or ``sim:///path/to/generated`` for the hardware of a ``spikeforge generate`` folder (or of a
  ``spikeforge build`` folder, with that board's link, clock and baud; the options override them):
  the board's gateware simulated on Verilator (:mod:`spikeforge.sim.virtual_board`), reached over
  pyserial ``socket://``. A ``sim://`` URL has no host part (``sim://DIR`` is refused: a folder is
  ``sim:///ABS/PATH``).

A transport moves bytes only; framing, retries and timeouts are the driver's
(:mod:`spikeforge.host.driver`). Errors opening a transport are :class:`TransportError` naming the
URL: an unknown option, or an option that is not what it must be (a positive integer, a channel,
one of the choices), names the option, what it expects and what it got.
"""

from __future__ import annotations

import os
import re
import select
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from spikeforge.firmware.program import LINKS, WORD_MAX

__all__ = ["Transport", "TransportError", "SerialTransport", "PCIeTransport", "SimTransport", "open_transport",
           "XDMA_CHANNELS"]

#: Streaming channels per direction of a Xilinx XDMA core (``?channel=`` of a ``pcie://`` URL).
XDMA_CHANNELS = 4


class TransportError(OSError):
    """A transport cannot be opened or used (the message names the URL and the cause)."""


class Transport:
    """Bytes to and from a device. ``wire_baud`` is the link's baud when it is a UART (for the
    wire-time estimate), ``None`` otherwise; ``reply_timeout`` is how long a reply may take."""

    url: str = ""
    wire_baud: int | None = None
    reply_timeout: float = 1.0

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read(self, size: int, timeout: float) -> bytes:
        """Up to ``size`` bytes, waiting at most ``timeout`` seconds for the first; ``b""`` if none came."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialTransport(Transport):
    """A pyserial port (any URL :func:`serial.serial_for_url` accepts)."""

    def __init__(self, url: str, baud: int = 115200, reply_timeout: float | None = None):
        import serial

        self.url = url
        baud = _int_value(f"{url}: option baud", baud, hi=WORD_MAX)
        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=0)
        except (serial.SerialException, ValueError, OverflowError, OSError) as exc:
            raise TransportError(f"{url}: cannot open the serial port at {baud} baud ({exc})") from None
        self.wire_baud = baud if not url.startswith(("socket://", "loop://", "rfc2217://")) else None
        # a reply of ~1 KiB must fit in the timeout at the port's baud
        self.reply_timeout = 0.5 + 10 * 2048 / baud if reply_timeout is None else reply_timeout

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"{self.url}: write failed ({exc})") from None

    def read(self, size: int, timeout: float) -> bytes:
        import serial

        try:
            self.port.timeout = timeout
            first = self.port.read(1)
            if not first:
                return b""
            self.port.timeout = 0
            return first + self.port.read(min(size - 1, max(0, self.port.in_waiting)))
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"{self.url}: read failed ({exc})") from None

    def close(self) -> None:
        self.port.close()


class PCIeTransport(Transport):
    """Xilinx XDMA streaming channel: writes to ``<dev>_h2c_<K>``, reads from ``<dev>_c2h_<K>``.

    With the real driver a c2h read returns when the card ends a packet (TLAST, sent on each
    reply's delimiter); the transport accumulates whatever the read returns, so any character
    device or FIFO with those names works (that is how the tests stand in for the driver).
    """

    def __init__(self, url: str, reply_timeout: float = 2.0):
        parts = urlsplit(url)
        _no_host(url, parts, "the form is pcie:///dev/xdma0[?channel=K]")
        base = parts.path
        q = _options(url, parts.query, {"channel"})
        channel = _int_value(f"{url}: option channel", q.get("channel", 0), lo=0, hi=XDMA_CHANNELS - 1)
        self.url = url
        self.h2c_path, self.c2h_path = f"{base}_h2c_{channel}", f"{base}_c2h_{channel}"
        self.reply_timeout = reply_timeout
        for path in (self.h2c_path, self.c2h_path):
            if not os.path.exists(path):
                raise TransportError(f"{url}: {path} does not exist (is the XDMA driver loaded and the card "
                                     f"enumerated? `ls {os.path.dirname(path) or '.'}`)")
        try:
            self.c2h = os.open(self.c2h_path, os.O_RDONLY | os.O_NONBLOCK)
            self.h2c = os.open(self.h2c_path, os.O_WRONLY)
        except OSError as exc:
            raise TransportError(f"{url}: cannot open {exc.filename} ({exc.strerror})") from None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.h2c, view)
                view = view[n:]
        except OSError as exc:
            raise TransportError(f"{self.url}: write to {self.h2c_path} failed ({exc.strerror})") from None

    def read(self, size: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b""
            ready, _, _ = select.select([self.c2h], [], [], left)
            if not ready:
                return b""
            try:
                data = os.read(self.c2h, size)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise TransportError(f"{self.url}: read from {self.c2h_path} failed ({exc.strerror})") from None
            if data:
                return data
            time.sleep(0.001)       # a FIFO with no writer reads as end-of-file: wait for the card

    def close(self) -> None:
        for fd in (self.h2c, self.c2h):
            try:
                os.close(fd)
            except OSError:
                pass


class SimTransport(Transport):
    """The virtual board: builds and starts :class:`~spikeforge.sim.virtual_board.VirtualBoard`,
    then talks to it through pyserial ``socket://``. Replies may take simulated seconds, hence the
    long ``reply_timeout``."""

    def __init__(self, url: str, hardware=None, progress=None, reply_timeout: float = 60.0):
        from spikeforge.sim.runner import SIMULATORS, BuildError
        from spikeforge.sim.virtual_board import VirtualBoard

        self.url = url
        if not url.startswith("sim://"):
            raise TransportError(f"{url}: not a sim:// URL (the forms are {_SIM_FORMS})")
        parts = urlsplit(url)
        _no_host(url, parts, f"the forms are {_SIM_FORMS}")
        q = _options(url, parts.query, {"lanes", "link", "simulator", "baud", "clock"})
        lanes = _int_value(f"{url}: option lanes", q.get("lanes", 16))
        if "lanes" in q and parts.path not in ("", "/"):
            raise TransportError(f"{url}: option lanes: the hardware is the folder's ({parts.path}); lanes sizes "
                                 f"the embedded model's board (sim://?lanes=P) only")
        simulator = _choice(f"{url}: option simulator", q.get("simulator", "verilator"), SIMULATORS)
        given = {}                                  # the board settings the URL gives (they override a build's)
        if "link" in q:
            given["link"] = _choice(f"{url}: option link", q["link"], LINKS)
        for option, key in (("baud", "baud"), ("clock", "clock_hz")):
            if option in q:
                given[key] = _int_value(f"{url}: option {option}", q[option], hi=WORD_MAX)
        try:
            hw, built = _sim_hardware(parts.path, lanes, hardware)
        except (TransportError, ValueError) as exc:
            raise TransportError(f"{url}: {exc}") from None
        board = {"link": "uart", "baud": 3_000_000, "clock_hz": 12_000_000} | built | given
        if board["link"] == "uart" and board["baud"] == 0:       # a stream build's manifest has no UART baud
            raise TransportError(f"{url}: link=uart needs a baud, and {Path(parts.path) / 'manifest.json'} has "
                                 f"baud 0 (a stream link's); add baud=B to the URL")
        try:
            self.board = VirtualBoard(hw, simulator=simulator, progress=progress, **board)
            socket_url = self.board.start()
        except (ValueError, BuildError, OSError) as exc:
            raise TransportError(f"{url}: {exc}") from None
        self.wire_baud = self.board.top.baud or None
        self.reply_timeout = reply_timeout
        deadline = time.time() + 120
        while True:
            try:
                self.serial = SerialTransport(socket_url, reply_timeout=reply_timeout)
                break
            except TransportError as exc:
                if not self.board.running or time.time() > deadline:
                    raise TransportError(f"{url}: the virtual board did not come up ({exc}); "
                                         f"see {self.board.log}") from None
                time.sleep(0.2)

    def write(self, data: bytes) -> None:
        self.serial.write(data)

    def read(self, size: int, timeout: float) -> bytes:
        return self.serial.read(size, timeout)

    def close(self) -> None:
        self.serial.close()
        self.board.stop()


def _sim_hardware(path: str, lanes: int, hardware=None):
    """The virtual board's HardwareConfig and board settings
    (:func:`spikeforge.sim.virtual_board.board_settings`; :class:`ValueError` when refused)."""
    from spikeforge.sim.virtual_board import board_settings

    return board_settings(path, lanes, hardware)


# ------------------------------------------------------------------------------ URL options

_SIM_FORMS = "sim://, sim://?OPTIONS or sim:///ABS/PATH"


def _no_host(url: str, parts, forms: str) -> None:
    """Refuse a host part where the URL names a local path (``sim://DIR``, ``pcie://dev/xdma0``)."""
    if parts.netloc:
        raise TransportError(f"{url}: unexpected host part {parts.netloc!r} ({forms}: a path follows three slashes)")


def _options(url: str, query: str, known: set[str]) -> dict[str, str]:
    """The options of ``url``'s query (the last of a repeated one; an empty one is kept, to be refused)."""
    q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(q) - known)
    if unknown:
        raise TransportError(f"{url}: unknown option(s) {', '.join(unknown)}; options: {', '.join(sorted(known))}")
    return q


def _int_value(what: str, value, lo: int = 1, hi: int | None = None) -> int:
    """``value`` (a URL option's text, digits only, or an int) as an integer in ``lo..hi``; else a
    :class:`TransportError` "``what``: expected ..., got ...", ``what`` naming the URL (or file) and the option."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,20}", value):   # more digits: refused unparsed
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        number = None
    if number is None or number < lo or (hi is not None and number > hi):
        expected = ("a positive integer" if lo == 1 else f"an integer >= {lo}") if hi is None else \
            f"an integer in {lo}..{hi}"
        raise TransportError(f"{what}: expected {expected}, got {value!r}")
    return number


def _choice(what: str, value, choices) -> str:
    """``value`` if it is one of ``choices``; else a :class:`TransportError` naming ``what`` and the choices."""
    if value not in tuple(choices):
        raise TransportError(f"{what}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def open_transport(url: str, progress=None) -> Transport:
    """The transport for ``url`` (see the module docstring)."""
    if url.startswith("sim:"):
        return SimTransport(url, progress=progress)
    if url.startswith("pcie:"):
        return PCIeTransport(url)
    parts = urlsplit(url)
    if parts.scheme in ("", "file") or "://" not in url:
        q = _options(url, parts.query, {"baud"})
        baud = _int_value(f"{url}: option baud", q.get("baud", 115200), hi=WORD_MAX)
        return SerialTransport(parts.path if parts.query else url, baud=baud)
    return SerialTransport(url)
