"""The host driver: one API over every transport.

::

    with Device.open("sim://") as dev:           # or "/dev/ttyUSB1", "socket://...", "pcie:///dev/xdma0"
        print(dev.hello())                        # protocol, hardware hash, capacities
        dev.load(qmodel)                          # compile for the device, stream program + weights
        results = dev.infer(images)               # [InferenceResult(logits, prediction, cycles)]
        print(dev.counters())                     # performance counters of the last run

Every command is one request frame and one reply (``docs/protocol.md``). A reply that does not
come within the timeout, or a device reporting a damaged frame (E_CRC / E_FRAME), is retried
with a new sequence number; all commands are idempotent, so a retried command whose first reply
was lost is harmless. Out of retries: :class:`LinkError`. The device refusing a command:
:class:`DeviceError`. A model that does not fit the device (:class:`ModelMismatch`, or the
compiler's ``CapacityError``) is refused before anything is written. A reply that is well framed
but does not fit its command (a READ of the wrong length, a WRITE reporting other rows than were
sent, a prediction that is no class): :class:`~spikeforge.host.protocol.ProtocolError`.
"""

from __future__ import annotations

import math
import numbers
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

from spikeforge.firmware.compiler import Compiled, compile_model, pixel_rows
from spikeforge.firmware.memory_map import (COUNTERS, LAYER_COUNTERS, READ_MAP, model_rows, named_counters,
                                            recorded_steps, step_counters)
from spikeforge.firmware.program import SPACES, HardwareConfig, row_words, words_per_row

from . import protocol as P
from .transport import Transport, TransportError, open_transport

__all__ = ["Device", "LinkError", "DeviceError", "ModelMismatch", "InferenceResult", "LoadInterrupted", "LinkStats"]

#: Statuses after which the same request is sent again (the frame was damaged on the way).
RETRYABLE = {P.STATUS["E_CRC"], P.STATUS["E_FRAME"]}


class LinkError(RuntimeError):
    """No valid reply after all retries (dead link, wrong port or baud, device not programmed)."""


class DeviceError(RuntimeError):
    """The device answered a command with an error status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


#: Most logits a RUN request asks for and its reply carries (``n_logits`` is a u8).
MAX_LOGITS = 255


class ModelMismatch(ValueError):
    """A compiled model was built for other hardware than the device's."""


class LoadInterrupted(LinkError):
    """A load stopped part-way; ``progress`` (the chunks acknowledged) resumes it: ``load(..., resume=exc.progress)``."""

    def __init__(self, message: str, progress: set):
        super().__init__(message)
        self.progress = progress


@dataclass
class LinkStats:
    """Traffic of one :class:`Device`: wire bytes both ways, frames, retries."""

    bytes_out: int = 0
    bytes_in: int = 0
    requests: int = 0
    retries: int = 0

    def snapshot(self) -> "LinkStats":
        return LinkStats(self.bytes_out, self.bytes_in, self.requests, self.retries)

    def since(self, before: "LinkStats") -> "LinkStats":
        return LinkStats(self.bytes_out - before.bytes_out, self.bytes_in - before.bytes_in,
                         self.requests - before.requests, self.retries - before.retries)


@dataclass(frozen=True)
class InferenceResult:
    logits: list[int]
    prediction: int          # the device's argmax (lowest index on ties)
    cycles: int


@dataclass
class _Loaded:
    compiled: Compiled
    n_classes: int
    chunks: int
    stats: LinkStats = field(default_factory=LinkStats)


class Device:
    """A SpikeForge accelerator behind a :class:`~spikeforge.host.transport.Transport`."""

    def __init__(self, transport: Transport, timeout: float | None = None, retries: int = 3):
        _check_link_parameters(timeout, retries)
        self.transport = transport
        self.timeout = timeout if timeout is not None else transport.reply_timeout
        self.retries = retries
        self.stats = LinkStats()
        self.info: P.Hello | None = None
        self.loaded: _Loaded | None = None
        self._seq = 0
        self._splitter = P.FrameSplitter()
        self._pending: list[bytes | None] = []

    @classmethod
    def open(cls, url: str, timeout: float | None = None, retries: int = 3, progress=None) -> "Device":
        """The device at ``url`` (:func:`~spikeforge.host.transport.open_transport`); ``timeout``
        (seconds per reply, default the transport's) and ``retries`` are checked before it is opened."""
        _check_link_parameters(timeout, retries)
        return cls(open_transport(url, progress=progress), timeout=timeout, retries=retries)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ one command
    def transact(self, cmd: str, payload: bytes = b"", timeout: float | None = None) -> P.Reply:
        """Send ``cmd`` and return its reply (status OK); retries as the module docstring says."""
        timeout = self.timeout if timeout is None else timeout
        _check_link_parameters(timeout, self.retries)
        problems = []
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
            self._seq = (self._seq + 1) & 0xFF
            wire = P.request(cmd, self._seq, payload)
            self.transport.write(wire)
            self.stats.bytes_out += len(wire)
            self.stats.requests += 1
            reply, problem = self._await_reply(P.CMD[cmd], self._seq, timeout)
            if reply is None:
                problems.append(problem)
                continue
            if reply.status in RETRYABLE:
                problems.append(f"device reported {reply.status_name}")
                continue
            if reply.status != P.STATUS["OK"]:
                raise DeviceError(f"{self.transport.url}: {cmd} refused with {reply.status_name}"
                                  f"{_STATUS_HELP.get(reply.status_name, '')}", reply.status)
            return reply
        raise LinkError(f"{self.transport.url}: no valid reply to {cmd} after {self.retries + 1} attempt(s) "
                        f"({timeout:g} s each): {'; '.join(problems)}")

    def _await_reply(self, cmd: int, seq: int, timeout: float) -> tuple[P.Reply | None, str]:
        deadline = time.monotonic() + timeout
        while True:
            while self._pending:
                frame = self._pending.pop(0)
                if frame is None:
                    return None, "an oversized frame arrived"
                try:
                    reply = P.parse_reply(frame)
                except P.ProtocolError as exc:
                    return None, f"damaged reply ({exc})"
                if reply.cmd == cmd and reply.seq == seq:
                    return reply, ""
                # a stale reply (to an earlier attempt) or one to line noise: not ours, skip it
            left = deadline - time.monotonic()
            if left <= 0:
                return None, "timed out"
            data = self.transport.read(4096, left)
            self.stats.bytes_in += len(data)
            self._pending += self._splitter.feed(data)

    # ------------------------------------------------------------------ commands
    def hello(self) -> P.Hello:
        """The device's protocol version, hardware hash and capacities (cached in ``self.info``)."""
        info = P.parse_hello(self.transact("HELLO").payload)
        if not info.consistent:
            raise P.ProtocolError(f"{self.transport.url}: the device's capabilities do not hash to its reported "
                                  f"hardware hash {info.hardware_hash[:12]}")
        self.info = info
        return info

    def read(self, addr: int, count: int) -> list[int]:
        """``count`` words of the read map from ``addr`` (``READ_MAP``)."""
        if not 0 <= addr < 1 << 16 or not 0 <= count <= 255:
            raise ValueError(f"read: addr must be in 0..65535 and count in 0..255, got {addr}, {count}")
        payload = self.transact("READ", struct.pack("<HB", addr, count)).payload
        if len(payload) != 4 * count:
            raise P.ProtocolError(f"{self.transport.url}: READ reply of {len(payload)} bytes, expected {4 * count} "
                                  f"({count} words)")
        return list(struct.unpack(f"<{count}I", payload))

    def reset(self) -> None:
        """Reset the accelerator (memories keep their contents)."""
        self.transact("RESET")

    def write_rows(self, space: str, row: int, rows: list[int]) -> None:
        """Write whole rows (integers of the row's bits) to ``space`` from ``row``, as one WRITE."""
        hw = self._hardware()
        wpr = words_per_row(hw)[space]
        words = [w for v in rows for w in row_words(v, wpr)]
        reply = self.transact("WRITE", struct.pack("<BI", SPACES[space], row) + struct.pack(f"<{len(words)}I", *words))
        if len(reply.payload) != 4:                    # rows:u32, the rows the device wrote
            raise P.ProtocolError(f"{self.transport.url}: WRITE reply of {len(reply.payload)} bytes, expected 4 "
                                  f"(rows:u32)")
        (written,) = struct.unpack("<I", reply.payload)
        if written != len(rows):
            raise P.ProtocolError(f"{self.transport.url}: WRITE reply says {written} rows written, expected "
                                  f"{len(rows)} ({space} from row {row})")

    def load(self, model, progress=None, resume: set | None = None) -> dict:
        """Load a model: a ``QuantizedModel`` or ``.qmodel`` path (compiled here for the device's
        hardware), or a :class:`Compiled` (its manifest's hardware hash must be the device's).
        Returns ``{"bytes_out", "bytes_in", "requests",
        "retries", "chunks", "seconds"}``. ``progress(done, total)`` is called per chunk."""
        info = self.info or self.hello()
        compiled = self._compiled_for(model, info)
        n_classes = compiled.manifest["model"]["num_classes"]
        if n_classes > MAX_LOGITS:   # before anything is written
            raise ModelMismatch(f"the model has {n_classes} classes; RUN carries at most {MAX_LOGITS} logits "
                                f"(n_logits:u8); nothing was written")
        t0 = time.time()
        before = self.stats.snapshot()
        chunks = list(_chunks(compiled))
        done = set(resume or ())
        for i, (space, row, values) in enumerate(chunks):
            key = (space, row)
            if key in done:
                continue
            try:
                self.write_rows(space, row, values)
            except (LinkError, TransportError) as exc:
                raise LoadInterrupted(f"{exc} (load stopped at chunk {i + 1} of {len(chunks)}; resume with "
                                      f"load(..., resume=exc.progress))", done) from None
            done.add(key)
            if progress:
                progress(i + 1, len(chunks))
        self.loaded = _Loaded(compiled, n_classes, len(chunks))
        used = self.stats.since(before)
        return {"bytes_out": used.bytes_out, "bytes_in": used.bytes_in, "requests": used.requests,
                "retries": used.retries, "chunks": len(chunks), "seconds": time.time() - t0}

    def infer(self, images, progress=None) -> list[InferenceResult]:
        """Run ``images`` (``[B, C, H, W]`` integer pixels) one RUN each; the device's logits,
        prediction and cycle count per image."""
        if self.loaded is None:
            raise RuntimeError("infer: no model loaded on this device (call load() first)")
        hw, n = self._hardware(), self.loaded.n_classes
        out = []
        for i, img in enumerate(images):
            rows = [v for _, v in pixel_rows(hw, img)]
            wpr = words_per_row(hw)["pixels"]
            words = [w for v in rows for w in row_words(v, wpr)]
            payload = bytes([n]) + struct.pack(f"<{len(words)}I", *words)
            reply = self.transact("RUN", payload).payload
            if len(reply) != 4 + 4 * n + 1:
                raise P.ProtocolError(f"{self.transport.url}: RUN reply of {len(reply)} bytes, expected {4 + 4 * n + 1}")
            cycles, *logits = struct.unpack_from(f"<I{n}i", reply)
            prediction = reply[-1]
            if n and prediction >= n:
                raise P.ProtocolError(f"{self.transport.url}: RUN reply's prediction {prediction} is not a class "
                                      f"(0..{n - 1})")
            out.append(InferenceResult(logits=list(logits), prediction=prediction, cycles=cycles))
            if progress:
                progress(i + 1, len(images))
        return out

    def counters(self) -> dict:
        """Performance counters of the last run: the global ones and, with a model loaded, per step."""
        values = named_counters(self._hardware(), self.read(READ_MAP["counters"], len(COUNTERS)))
        status = self.read(READ_MAP["status"], 1)[0]
        out = {"counters": values, "status": {"busy": bool(status & 1), "done": bool(status & 2),
                                              "error": bool(status & 4)}}
        if self.loaded is not None:
            steps = recorded_steps(self.loaded.compiled.program)
            words = [self.read(READ_MAP["layers"] + 4 * s, len(LAYER_COUNTERS)) for s in range(len(steps))]
            layers = [{"name": d.name, **counts} for d, counts in zip(steps, step_counters(words))]
            out["layers"] = layers
        return out

    # ------------------------------------------------------------------ helpers
    def _hardware(self) -> HardwareConfig:
        return (self.info or self.hello()).hardware

    def _compiled_for(self, model, info: P.Hello) -> Compiled:
        from spikeforge.model.qfile import QuantizedModel, load_qmodel

        if isinstance(model, (str, Path)):
            model = load_qmodel(Path(model))
        if isinstance(model, Compiled):
            _check_hash("the compiled model", model.manifest["hardware_hash"], model.hardware, info)
            return model
        if isinstance(model, QuantizedModel):
            return compile_model(model, info.hardware)   # CapacityError names the layer and the knob
        raise TypeError(f"load: expected a QuantizedModel, a Compiled model or a .qmodel path, got "
                        f"{type(model).__name__}")


def _check_link_parameters(timeout, retries) -> None:
    """``timeout`` (``None``: the transport's) must be a positive number of seconds and ``retries``
    an integer >= 0 (:class:`ValueError` naming the parameter otherwise)."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, numbers.Real)
                                or not math.isfinite(timeout) or timeout <= 0):
        raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
    if isinstance(retries, bool) or not isinstance(retries, numbers.Integral) or retries < 0:
        raise ValueError(f"retries: expected an integer >= 0, got {retries!r}")


def _check_hash(what: str, digest: str | None, hw: HardwareConfig, info: P.Hello) -> None:
    if digest == info.hardware_hash:
        return
    theirs, ours = hw.as_dict(), info.hardware.as_dict()
    diff = [f"{k}: model needs {theirs[k]}, device has {ours[k]}" for k in ours if theirs.get(k) != ours[k]]
    raise ModelMismatch(f"{what} was compiled for hardware {str(digest)[:12]}, the device is {info.hardware_hash[:12]}"
                        f" ({'; '.join(diff) or 'same fields, different hash'}); nothing was written")


def _chunks(compiled: Compiled):
    """``(space, first_row, [row values])`` WRITE chunks of whole, consecutive rows within a frame."""
    wpr = words_per_row(compiled.hardware)
    for space, rows in model_rows(compiled).items():
        per = max(1, P.MAX_ROW_WORDS // wpr[space])
        run: list = []
        for row, value in rows:
            if run and (row != run[0][0] + len(run) or len(run) == per):
                yield space, run[0][0], [v for _, v in run]
                run = []
            run.append((row, value))
        if run:
            yield space, run[0][0], [v for _, v in run]


_STATUS_HELP = {
    "E_RANGE": " (a memory space or row beyond the device's capacities)",
    "E_LENGTH": " (the payload does not fit the command: a partial memory row?)",
    "E_ACCEL": " (the accelerator stopped with its error flag: is a valid program loaded?)",
    "E_UNSUPPORTED": " (this hardware does not implement the command)",
    "E_COMMAND": " (the device does not know the command: protocol version mismatch?)",
    "E_OVERSIZE": " (the frame exceeds the device's frame buffer)",
}
