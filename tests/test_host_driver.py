"""The host driver against the virtual board (BoardTop on Verilator): bytes go through the real
UART (or AXI4-Stream) gateware; results must equal the golden model. Plus the failure paths:
garbage on the line, an injected CRC error, a mismatched model, an interrupted load, a dead link,
and the PCIe transport against a stand-in for the XDMA device nodes."""

import hashlib
import json
import os
import pty
import random
import re
import socket
import struct
import threading
import time

import pytest

from conftest import need_simulator
from spikeforge.firmware.compiler import compile_model, hardware_for
from spikeforge.firmware.program import FORMAT_VERSION, SPACES, HardwareConfig, words_per_row
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


# ------------------------------------------------------------------------------ bad input, no traceback
# Every URL, parameter, manifest and device reply below is wrong; each must give the documented
# error (TransportError, ValueError for a parameter, ProtocolError for device bytes), never a traceback.

class _NoBuild:
    """Stands in for VirtualBoard: records its arguments, then stops before any simulator build."""

    made: list = []

    def __init__(self, hw, **kw):
        _NoBuild.made.append((hw, kw))

    def start(self):
        from spikeforge.sim.runner import BuildError

        raise BuildError("stopped before building (test)")


@pytest.fixture
def no_build(monkeypatch):
    import spikeforge.sim.virtual_board as vb

    _NoBuild.made = []
    monkeypatch.setattr(vb, "VirtualBoard", _NoBuild)
    return _NoBuild.made


@pytest.fixture
def tty():
    """A pseudo-terminal's path: a serial port that opens (nothing answers on it)."""
    master, slave = pty.openpty()
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


@pytest.mark.parametrize("query, match", [
    ("baud=0", r"option baud: expected an integer in 1\.\.4294967295, got '0'"),
    ("baud=-9600", r"option baud: expected an integer in 1\.\.4294967295, got '-9600'"),
    ("baud=abc", r"option baud: expected an integer in 1\.\.4294967295, got 'abc'"),
    ("baud=", r"option baud: expected an integer in 1\.\.4294967295, got ''"),
    ("baud=1.5", r"option baud: expected an integer in 1\.\.4294967295, got '1.5'"),
    ("baud=99999999999999999999", r"option baud: expected an integer in 1\.\.4294967295, got '9999"),
    ("baud=" + "9" * 5000, r"option baud: expected an integer in 1\.\.4294967295, got '9999"),
    ("speed=9600", r"unknown option\(s\) speed; options: baud"),
])
def test_serial_url_options_are_checked(tty, query, match):
    url = f"{tty}?{query}"
    with pytest.raises(TransportError, match=rf"^{re.escape(url)}: {match}"):
        open_transport(url)


def test_serial_transport_refuses_a_bad_baud(tty):
    for baud in (0, -1, 1 << 32):
        with pytest.raises(TransportError, match=rf"{tty}: option baud: expected an integer in 1\.\.4294967295, got {baud}"):
            SerialTransport(tty, baud=baud)


@pytest.mark.parametrize("tail, match", [
    ("?channel=x", r"option channel: expected an integer in 0\.\.3, got 'x'"),
    ("?channel=-1", r"option channel: expected an integer in 0\.\.3, got '-1'"),
    ("?channel=4", r"option channel: expected an integer in 0\.\.3, got '4'"),
    ("?chanel=1", r"unknown option\(s\) chanel; options: channel"),
])
def test_pcie_url_options_are_checked(tmp_path, tail, match):
    url = f"pcie://{tmp_path}/xdma0{tail}"
    with pytest.raises(TransportError, match=rf"^{re.escape(url)}: {match}"):
        open_transport(url)


def test_pcie_url_with_a_host_is_refused():
    with pytest.raises(TransportError, match=r"pcie://dev/xdma0: .*host part 'dev'.*pcie:///dev/xdma0"):
        open_transport("pcie://dev/xdma0")


@pytest.mark.parametrize("url, match", [
    ("sim://nonexist", r"unexpected host part 'nonexist'.*sim://, sim://\?OPTIONS or sim:///ABS/PATH"),
    ("sim://build/out", r"unexpected host part 'build'"),
    ("sim:relative/dir", r"not a sim:// URL \(the forms are sim://, sim://\?OPTIONS or sim:///ABS/PATH"),
    ("sim://?lanes=0", r"option lanes: expected a positive integer, got '0'"),
    ("sim://?lanes=abc", r"option lanes: expected a positive integer, got 'abc'"),
    ("sim://?baud=0", r"option baud: expected an integer in 1\.\.4294967295, got '0'"),
    ("sim://?baud=-3000000", r"option baud: expected an integer in 1\.\.4294967295, got '-3000000'"),
    ("sim://?clock=x", r"option clock: expected an integer in 1\.\.4294967295, got 'x'"),
    ("sim://?clock=99999999999", r"option clock: expected an integer in 1\.\.4294967295, got '99999999999'"),
    ("sim://?link=spi", r"option link: expected one of uart, stream, got 'spi'"),
    ("sim://?simulator=modelsim", r"option simulator: expected one of icarus, verilator, got 'modelsim'"),
])
def test_sim_url_options_are_checked(no_build, url, match):
    with pytest.raises(TransportError, match=rf"^{re.escape(url)}: {match}"):
        open_transport(url)
    assert no_build == []                         # refused before a board was made


def _manifest(tmp_path, text) -> str:
    (tmp_path / "manifest.json").write_text(text if isinstance(text, str) else json.dumps(text))
    return f"sim://{tmp_path}"


_HW = HardwareConfig(lanes=8, max_channels=64, max_embed=32).as_dict()
#: A valid `spikeforge build` manifest of that hardware (a UART board at 12 MHz, 3 Mbaud).
_BUILD = {"hardware": _HW, "hardware_hash": HardwareConfig.from_dict(_HW).config_hash(), "link": "uart",
          "clock_hz": 12_000_000, "baud": 3_000_000}


@pytest.mark.parametrize("manifest, match", [
    ("{not json", r"not valid JSON"),
    ([1, 2], r"expected a JSON object, got list"),
    ({"link": "uart"}, r"missing field\(s\) clock_hz, hardware, hardware_hash"),
    ({**_BUILD, "hardware": [1]}, r"hardware: expected an object of HardwareConfig fields, got list"),
    ({**_BUILD, "hardware": {**_HW, "lanes": 0}}, r"hardware: .*lanes"),
    ({**_BUILD, "hardware_hash": "0" * 64}, r"hardware_hash: expected [0-9a-f]{64} \(the hash of hardware\)"),
    ({**_BUILD, "baud": 0}, r"baud: expected an integer in 1\.\.4294967295, got 0"),
    ({**_BUILD, "baud": "fast"}, r"baud: expected an integer in 1\.\.4294967295, got 'fast'"),
    ({**_BUILD, "baud": 1.5e6}, r"baud: expected an integer in 1\.\.4294967295, got 1500000\.0"),
    ({**_BUILD, "link": "stream", "baud": -1}, r"baud: expected 0 or null \(a stream link has no UART\), got -1"),
    ({**_BUILD, "link": "spi"}, r"link: expected one of uart, stream, got 'spi'"),
    ({**_BUILD, "clock_hz": 0}, r"clock_hz: expected an integer in 1\.\.4294967295, got 0"),
])
def test_sim_manifest_is_checked(no_build, tmp_path, manifest, match):
    url = _manifest(tmp_path, manifest)
    with pytest.raises(TransportError, match=rf"^{re.escape(url)}: {re.escape(str(tmp_path / 'manifest.json'))}: {match}"):
        open_transport(url)
    assert no_build == []


def test_sim_folder_with_lanes_is_refused(no_build, tmp_path):
    url = _manifest(tmp_path, _BUILD) + "?lanes=8"
    with pytest.raises(TransportError, match=r"option lanes: the hardware is the folder's"):
        open_transport(url)
    assert no_build == []


def test_sim_manifest_that_cannot_be_read(no_build, tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.mkdir()
    with pytest.raises(TransportError, match=rf"^{re.escape(f'sim://{tmp_path}: {manifest}')}: cannot read"):
        open_transport(f"sim://{tmp_path}")


def test_sim_manifest_values_reach_the_board(no_build, tmp_path):
    """A valid build manifest's link, clock and baud are the board's (a stream build's baud 0 too);
    the URL's options override them."""
    url = _manifest(tmp_path, {**_BUILD, "link": "stream", "clock_hz": 100_000_000, "baud": 0})
    with pytest.raises(TransportError, match="stopped before building"):
        open_transport(url)
    with pytest.raises(TransportError, match="stopped before building"):
        open_transport(url + "?link=uart&baud=1000000&clock=24000000")
    (hw1, kw1), (hw2, kw2) = no_build
    assert hw1 == hw2 == HardwareConfig.from_dict(_HW)
    assert (kw1["link"], kw1["clock_hz"], kw1["baud"]) == ("stream", 100_000_000, 0)
    assert (kw2["link"], kw2["clock_hz"], kw2["baud"]) == ("uart", 24_000_000, 1_000_000)


def test_sim_uart_link_over_a_stream_manifest_needs_a_baud(no_build, tmp_path):
    url = _manifest(tmp_path, {**_BUILD, "link": "stream", "clock_hz": 100_000_000, "baud": 0})
    with pytest.raises(TransportError, match=r"link=uart needs a baud.*baud 0.*add baud=B"):
        open_transport(url + "?link=uart")
    assert no_build == []


@pytest.mark.parametrize("kw, match", [
    ({"retries": -1}, r"retries: expected an integer >= 0, got -1"),
    ({"retries": 1.5}, r"retries: expected an integer >= 0, got 1.5"),
    ({"timeout": 0}, r"timeout: expected a positive number of seconds, got 0"),
    ({"timeout": -2.0}, r"timeout: expected a positive number of seconds, got -2.0"),
    ({"timeout": float("nan")}, r"timeout: expected a positive number of seconds, got nan"),
])
def test_device_refuses_bad_retries_and_timeout(kw, match):
    with pytest.raises(ValueError, match=match):
        Device.open("loop://", **kw)
    with pytest.raises(ValueError, match=match):
        Device(_FakeDevice(), **kw)


def test_device_open_checks_parameters_before_opening(no_build):
    with pytest.raises(ValueError, match="retries"):
        Device.open("sim://", retries=-1)
    assert no_build == []


# A device in Python, for the driver's handling of the bytes a device sends back.

_FAKE_HW = HardwareConfig()                  # the defaults hold the embedded model


def _hello_bytes(fields: dict, link: int = 0, clock_hz: int = 12_000_000, baud: int = 3_000_000) -> bytes:
    """A HELLO payload reporting ``fields`` (a HardwareConfig's as a dict, possibly absurd) with
    their matching hash: a self-consistent device (built without HardwareConfig, which may refuse them)."""
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).digest()
    values = [int(fields[f]) for f in P.CAPABILITY_FIELDS]
    return struct.pack("<HH32sBIIHB", P.PROTOCOL_VERSION, FORMAT_VERSION, digest, link, clock_hz, baud,
                       P.MAX_FRAME, len(values)) + struct.pack(f"<{len(values)}I", *values)


class _FakeDevice(Transport):
    """Answers each request as a device of ``hw`` would (HELLO, WRITE with its rows, READ with
    zeros, RUN with zero logits and prediction 0, RESET); ``replies[cmd]`` (a payload, or a function
    of the request payload returning one) overrides a command's reply."""

    url = "fake://"
    reply_timeout = 0.05

    def __init__(self, hello: bytes | None = None, **replies):
        self.hello = hello or P.hello_payload(_FAKE_HW, "uart", 12_000_000, 3_000_000)
        self.replies, self.out, self.splitter, self.requests = replies, bytearray(), P.FrameSplitter(), []

    def _default(self, cmd: str, payload: bytes) -> bytes:
        if cmd == "HELLO":
            return self.hello
        if cmd == "WRITE":
            space = {v: k for k, v in SPACES.items()}[payload[0]]
            return struct.pack("<I", (len(payload) - 5) // 4 // words_per_row(_FAKE_HW)[space])
        if cmd == "READ":
            return bytes(4 * payload[2])
        if cmd == "RUN":
            return struct.pack(f"<I{payload[0]}iB", 100, *[0] * payload[0], 0)
        return b""

    def write(self, data):
        for frame in self.splitter.feed(data):
            body = P.decode_frame(frame)
            cmd = {v: k for k, v in P.CMD.items()}[body[0]]
            self.requests.append(cmd)
            reply = self.replies.get(cmd, self._default)
            if callable(reply):
                reply = reply(cmd, bytes(body[2:]))
            self.out += P.encode_frame(bytes([body[0] | 0x80, body[1], 0]) + reply)

    def read(self, size, timeout):
        data = bytes(self.out[:size])
        del self.out[:size]
        return data


def _fake(**replies) -> Device:
    return Device(_FakeDevice(**replies), retries=0)


def test_fake_device_loads_and_infers(qm, digits):
    """The fake device answers as the gateware does: a load and a run go through without complaint."""
    dev = _fake()
    report = dev.load(qm)
    assert report["chunks"] == report["requests"] > 0 and report["retries"] == 0
    (result,) = dev.infer(digits.test_pixels[:1].long())
    assert (result.cycles, result.prediction) == (100, 0)
    assert dev.counters()["status"] == {"busy": False, "done": False, "error": False}


def test_read_reply_of_the_wrong_length_is_a_protocol_error():
    dev = _fake(READ=bytes(3))
    with pytest.raises(P.ProtocolError, match=r"fake://: READ reply of 3 bytes, expected 8 \(2 words\)"):
        dev.read(0, 2)
    with pytest.raises(P.ProtocolError, match=r"READ reply of 3 bytes"):
        dev.counters()


@pytest.mark.parametrize("reply, match", [
    (b"", r"WRITE reply of 0 bytes, expected 4 \(rows:u32\)"),
    (struct.pack("<IB", 1, 0), r"WRITE reply of 5 bytes, expected 4 \(rows:u32\)"),
    (struct.pack("<I", 0), r"WRITE reply says 0 rows written, expected 1"),
    (struct.pack("<I", 2), r"WRITE reply says 2 rows written, expected 1"),
])
def test_write_reply_must_count_the_rows_written(reply, match):
    dev = _fake(WRITE=reply)
    with pytest.raises(P.ProtocolError, match=rf"fake://: {match}"):
        dev.write_rows("biases", 0, [0])


def test_load_stops_on_a_wrong_rows_count(qm):
    dev = _fake(WRITE=struct.pack("<I", 0))
    with pytest.raises(P.ProtocolError, match="WRITE reply says 0 rows written"):
        dev.load(qm)
    assert dev.loaded is None


@pytest.mark.parametrize("prediction", [10, 0xFF])
def test_run_reply_prediction_out_of_range_is_a_protocol_error(qm, digits, prediction):
    n = qm.config["num_classes"]
    dev = _fake(RUN=lambda cmd, payload: struct.pack(f"<I{n}iB", 5, *range(n), prediction))
    dev.load(qm)
    with pytest.raises(P.ProtocolError, match=rf"fake://: RUN reply's prediction {prediction} is not a class "
                                              rf"\(0\.\.{n - 1}\)"):
        dev.infer(digits.test_pixels[:1].long())


@pytest.mark.parametrize("field, value, match", [
    ("lanes", 1 << 20, r"lanes.*1048576"),
    ("weight_rows", 1 << 30, r"weight_rows 1073741824 exceeds the host's limit of 1048576"),
    ("program_rows", 1 << 30, r"program_rows 1073741824 exceeds the host's limit of 1048576"),
    ("v_bits", 1 << 20, r"v_bits.*1048576"),
])
def test_device_reporting_absurd_capabilities_is_refused(qm, field, value, match):
    """A self-consistent HELLO (fields hash to the reported hash) with capabilities no device has:
    refused before load() compiles anything for them (2**20 lanes would exhaust memory)."""
    fields = _FAKE_HW.as_dict() | {field: value}
    if field == "lanes":
        fields |= {"max_channels": 4 * value, "max_embed": value}
    dev = Device(_FakeDevice(hello=_hello_bytes(fields)), retries=0)
    with pytest.raises(P.ProtocolError, match=match):
        dev.hello()
    assert dev.info is None


def test_a_baud_the_port_cannot_take_names_the_url(tty):
    """4e9 fits the u32 range but not the tty driver (pyserial raises OverflowError)."""
    url = f"{tty}?baud=4000000000"
    with pytest.raises(TransportError, match=rf"^{re.escape(tty)}: cannot open the serial port at 4000000000 baud \("):
        open_transport(url)
