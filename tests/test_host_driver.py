"""The host driver against the virtual board (BoardTop on Verilator): bytes go through the real
UART (or AXI4-Stream) gateware; results must equal the golden model. Plus the failure paths:
garbage on the line, an injected CRC error, a mismatched model, an interrupted load, a dead link,
and the PCIe transport against a stand-in for the XDMA device nodes."""

import json
import os
import pty
import random
import socket
import struct
import threading
import time

import pytest

from conftest import need_simulator
from spikeforge.firmware.compiler import compile_model, hardware_for
from spikeforge.host import protocol as P
from spikeforge.host.cli import main
from spikeforge.host.driver import Device, DeviceError, LinkError, LoadInterrupted, ModelMismatch
from spikeforge.host.transport import PCIeTransport, SerialTransport, Transport, TransportError, open_transport
from spikeforge.model import golden
from spikeforge.model.quantize import embedded_qmodel


@pytest.fixture(scope="module")
def qm():
    return embedded_qmodel()


@pytest.fixture(scope="module")
def board():
    """One virtual board (UART link, 3 Mbaud at 12 MHz) for the module's tests."""
    need_simulator("verilator")
    dev = Device.open("sim://")
    yield dev
    dev.close()


@pytest.fixture(scope="module")
def loaded(board, qm):
    report = board.load(qm)
    return board, report


def _golden(qm, pixels):
    return [golden.forward(qm, pixels[i:i + 1])[0].tolist() for i in range(len(pixels))]


def test_virtual_board_infers_bit_exact(loaded, qm, digits):
    dev, report = loaded
    info = dev.info
    assert info.consistent and info.hardware_hash == hardware_for(qm, lanes=16).config_hash()
    assert (info.link, info.baud, info.clock_hz) == ("uart", 3_000_000, 12_000_000)
    assert report["chunks"] == report["requests"] and report["retries"] == 0
    pixels = digits.test_pixels[:3].long()
    results = dev.infer(pixels)
    for r, want in zip(results, _golden(qm, pixels)):
        assert r.logits == want
        assert r.prediction == max(range(len(want)), key=lambda k: (want[k], -k))
    counters = dev.counters()
    assert counters["counters"]["cycles"] == results[-1].cycles
    assert counters["status"] == {"busy": False, "done": True, "error": False}
    layers, total = counters["layers"], counters["counters"]
    assert sum(layer["sops"] for layer in layers) == total["sops"] > 0
    assert sum(layer["events"] for layer in layers) == total["events"] > 0
    # the steps' cycles add up to the run's less its last 3: recording the last step, fetching END
    assert total["cycles"] - sum(layer["cycles"] for layer in layers) == 3


def _replies_until_quiet(dev, want: int, quiet: float = 3.0) -> list:
    """Replies the board sends (after raw writes) until ``want`` came or it was quiet for ``quiet`` s."""
    seen, splitter, last = [], P.FrameSplitter(), time.time()
    while len(seen) < want and time.time() - last < quiet:
        data = dev.transport.read(4096, 0.5)
        if data:
            last = time.time()
        for frame in splitter.feed(data):
            seen.append(P.parse_reply(frame))
    return seen


def test_gateware_rejects_garbage_and_corrupted_frames_then_answers(loaded):
    """Random bytes, a frame with a flipped CRC bit and a truncated frame each get an error reply
    from the UART gateware (sent one at a time, as the device handles one frame at a time); then
    HELLO still answers."""
    dev, _ = loaded
    rng = random.Random(3)
    dev.transport.write(bytes(rng.randrange(256) for _ in range(600)) + b"\x00")
    junk = _replies_until_quiet(dev, 1000)
    assert junk and all(r.status_name in ("E_CRC", "E_FRAME") for r in junk), junk
    bad = bytearray(P.request("HELLO", 77))
    bad[-2] ^= 0x40                                      # a CRC bit
    assert bad[-2] != 0
    dev.transport.write(bytes(bad))
    (reply,) = _replies_until_quiet(dev, 1)
    assert (reply.command_name, reply.seq, reply.status_name) == ("HELLO", 77, "E_CRC")
    dev.transport.write(P.request("READ", 78, struct.pack("<HB", 0, 2))[:-3] + b"\x00")
    (reply,) = _replies_until_quiet(dev, 1)
    assert (reply.command_name, reply.seq, reply.status_name) == ("READ", 78, "E_FRAME")
    assert dev.hello().consistent                         # not wedged


class _FlipOnce(Transport):
    """Passes bytes through, flipping one bit of the next request's payload."""

    def __init__(self, inner):
        self.inner, self.url, self.reply_timeout, self.armed = inner, inner.url, inner.reply_timeout, True

    def write(self, data):
        if self.armed:
            self.armed = False
            data = bytearray(data)
            data[5] ^= 0x20
        self.inner.write(bytes(data))

    def read(self, size, timeout):
        return self.inner.read(size, timeout)


def test_driver_retries_after_injected_crc_error(loaded):
    dev, _ = loaded
    flaky = Device(_FlipOnce(dev.transport), timeout=dev.timeout)
    flaky.info = dev.info
    assert flaky.read(0x181, 1) == [1]                     # the format version, after one retry
    assert flaky.stats.retries == 1


def test_mismatched_model_is_refused_before_writing(loaded, qm):
    dev, _ = loaded
    other = compile_model(qm, hardware_for(qm, lanes=8))
    before = dev.stats.bytes_out
    with pytest.raises(ModelMismatch, match="lanes: model needs 8, device has 16.*nothing was written"):
        dev.load(other)
    assert dev.stats.bytes_out == before


def test_device_errors_name_the_status(loaded):
    dev, _ = loaded
    with pytest.raises(DeviceError, match="RUN_EVENTS refused with E_UNSUPPORTED"):
        dev.transact("RUN_EVENTS", bytes([10, 0, 1, 2, 3]))
    with pytest.raises(DeviceError, match="WRITE refused with E_RANGE"):
        dev.write_rows("biases", dev.info.hardware.bias_rows, [0])


class _DropAfter(Transport):
    def __init__(self, inner, frames):
        self.inner, self.url, self.reply_timeout, self.left = inner, inner.url, inner.reply_timeout, frames

    def write(self, data):
        if self.left == 0:
            raise TransportError(f"{self.url}: link dropped (test)")
        self.left -= 1
        self.inner.write(data)

    def read(self, size, timeout):
        return self.inner.read(size, timeout)


def test_interrupted_load_resumes(loaded, qm, digits):
    dev, _ = loaded
    dev.reset()
    cut = Device(_DropAfter(dev.transport, 5), timeout=dev.timeout, retries=0)
    cut.info = dev.info
    with pytest.raises(LoadInterrupted, match="chunk 6 of") as exc:
        cut.load(qm)
    assert len(exc.value.progress) == 5
    report = dev.load(qm, resume=exc.value.progress)
    assert report["requests"] == report["chunks"] - 5
    pixels = digits.test_pixels[10:12].long()
    assert [r.logits for r in dev.infer(pixels)] == _golden(qm, pixels)


def test_dead_link_times_out_with_a_clear_message():
    master, slave = pty.openpty()            # a real serial device with nothing on the other end
    try:
        dev = Device(SerialTransport(os.ttyname(slave), baud=115200), timeout=0.2, retries=1)
        with pytest.raises(LinkError, match=r"no valid reply to HELLO after 2 attempt\(s\) \(0.2 s each\): timed out"):
            dev.hello()
        dev.close()
    finally:
        os.close(master)
        os.close(slave)


def test_transport_url_errors(tmp_path):
    with pytest.raises(TransportError, match="xdma9_h2c_0 does not exist"):
        open_transport(f"pcie://{tmp_path}/xdma9")
    with pytest.raises(TransportError, match="unknown option.*bogus"):
        open_transport("sim://?bogus=1")
    with pytest.raises(TransportError, match="cannot open the serial port"):
        open_transport(str(tmp_path / "ttyNOPE"))


def test_pcie_transport_against_xdma_stand_in(tmp_path, qm, digits):
    """XDMA character devices stood in by two FIFOs, bridged to a virtual board's AXI4-Stream port."""
    need_simulator("verilator")
    from spikeforge.sim.virtual_board import VirtualBoard

    hw = hardware_for(qm, lanes=16)
    board = VirtualBoard(hw, link="stream")
    url = board.start()
    port = int(url.rsplit(":", 1)[1])
    h2c, c2h = tmp_path / "xdma0_h2c_0", tmp_path / "xdma0_c2h_0"
    os.mkfifo(h2c)
    os.mkfifo(c2h)
    deadline = time.time() + 120
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            assert board.running and time.time() < deadline, f"virtual board did not come up; see {board.log}"
            time.sleep(0.2)

    def card_to_host():
        fd = os.open(c2h, os.O_WRONLY)
        while data := sock.recv(4096):
            os.write(fd, data)
        os.close(fd)

    def host_to_card():
        fd = os.open(h2c, os.O_RDONLY)
        while data := os.read(fd, 4096):
            sock.sendall(data)
        os.close(fd)
        sock.shutdown(socket.SHUT_WR)

    threads = [threading.Thread(target=f, daemon=True) for f in (card_to_host, host_to_card)]
    for t in threads:
        t.start()
    dev = Device(PCIeTransport(f"pcie://{tmp_path}/xdma0", reply_timeout=60))
    try:
        info = dev.hello()
        assert (info.link, info.baud, info.hardware_hash) == ("stream", 0, hw.config_hash())
        dev.load(qm)
        pixels = digits.test_pixels[:2].long()
        assert [r.logits for r in dev.infer(pixels)] == _golden(qm, pixels)
    finally:
        dev.close()
        for t in threads:
            t.join(30)
        sock.close()
        board.stop()


def test_cli_run_on_the_virtual_board(capsys):
    need_simulator("verilator")
    assert main(["run", "--port", "sim://", "--images", "20", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 20
    assert report["predictions_equal_golden"] == report["logits_equal_golden"] == 20
    assert report["predictions"] == report["golden_predictions"]
    assert report["load"]["bytes_out"] > 30_000 and report["load"]["retries"] == 0
    assert report["wire_seconds_at"]["115200"]["load"] == pytest.approx(
        10 * (report["load"]["bytes_out"] + report["load"]["bytes_in"]) / 115200)


def test_cli_run_errors(capsys, tmp_path):
    assert main(["run", "--port", f"pcie://{tmp_path}/xdma0", "--images", "1"]) == 2
    assert "xdma0_h2c_0 does not exist" in capsys.readouterr().err
