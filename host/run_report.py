"""The report of a model run on a device against the golden model (``spikeforge run``).

:func:`run_report` compares a device's results with the golden model's logits and adds the link
traffic and its UART wire time; :meth:`RunReport.as_dict` is the JSON ``spikeforge run --json``
prints (keys in field order).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from spikeforge.firmware.program import uart_wire_seconds

__all__ = ["DeviceSummary", "LoadTraffic", "InferenceTraffic", "WireTime", "RunReport", "run_report",
           "REFERENCE_BAUDS"]

#: Baud rates every report gives the UART wire time at (the common 115,200 and the builds' 3,000,000).
REFERENCE_BAUDS = (115_200, 3_000_000)


@dataclass(frozen=True)
class DeviceSummary:
    """What the device's HELLO reported (``baud`` and ``clock_hz`` are 0 on a link without a UART)."""

    hardware_hash: str
    link: str
    baud: int
    clock_hz: int
    lanes: int


@dataclass(frozen=True)
class LoadTraffic:
    """The model load: wire bytes both ways, frames, retries, chunks, wall seconds, and its time on
    the UART (``None`` when the link is not a UART)."""

    bytes_out: int
    bytes_in: int
    requests: int
    retries: int
    chunks: int
    seconds: float
    wire_seconds: float | None

    @property
    def bytes(self) -> int:
        return self.bytes_out + self.bytes_in


@dataclass(frozen=True)
class InferenceTraffic:
    """The inferences: wire bytes per image both ways, retries, wall seconds, and UART time per image
    (``None`` when the link is not a UART)."""

    bytes_out_per_image: float
    bytes_in_per_image: float
    retries: int
    seconds: float
    wire_seconds_per_image: float | None

    @property
    def bytes_per_image(self) -> float:
        return self.bytes_out_per_image + self.bytes_in_per_image


@dataclass(frozen=True)
class WireTime:
    """UART wire seconds of the load and of one inference at one baud rate."""

    load: float
    per_image: float


@dataclass(frozen=True)
class RunReport:
    """A run of ``images`` test images on the device at ``port``: the device's and the golden model's
    predictions, how many predictions and whole logit vectors equal the golden model's, accuracy
    against the labels, mean cycles per inference, the traffic, the UART time at each of
    :data:`REFERENCE_BAUDS` (keyed by the baud as a string) and the wall ``seconds`` of the whole run."""

    port: str
    model: str
    device: DeviceSummary
    images: int
    predictions: list[int]
    golden_predictions: list[int]
    predictions_equal_golden: int
    logits_equal_golden: int
    accuracy: float
    cycles_per_inference: float
    load: LoadTraffic
    inference: InferenceTraffic
    wire_seconds_at: dict[str, WireTime]
    seconds: float

    @property
    def ok(self) -> bool:
        """Every image's logits equal the golden model's."""
        return self.logits_equal_golden == self.images

    def as_dict(self) -> dict:
        """The report as plain JSON-able values (what ``spikeforge run --json`` prints)."""
        return dataclasses.asdict(self)


def run_report(port: str, model: str, hello, load: dict, results, traffic, golden_logits, labels, baud: int | None,
               infer_seconds: float, seconds: float) -> RunReport:
    """Compare a device run with the golden model.

    ``hello``: the device's HELLO (:class:`~spikeforge.host.protocol.Hello`); ``load``: what
    :meth:`~spikeforge.host.driver.Device.load` returned; ``results``: one
    :class:`~spikeforge.host.driver.InferenceResult` per image; ``traffic``: the
    :class:`~spikeforge.host.driver.LinkStats` of the inferences; ``golden_logits`` ``[B, classes]``
    and ``labels`` ``[B]`` of the same images; ``baud``: the link's UART baud (``None``: no UART).
    """
    n = len(results)
    want, golden_pred = golden_logits.tolist(), golden_logits.argmax(1).tolist()
    preds = [r.prediction for r in results]
    load_bytes = load["bytes_out"] + load["bytes_in"]
    per_image = (traffic.bytes_out + traffic.bytes_in) / n
    return RunReport(
        port=port, model=model,
        device=DeviceSummary(hello.hardware_hash, hello.link, hello.baud, hello.clock_hz, hello.hardware.lanes),
        images=n, predictions=preds, golden_predictions=golden_pred,
        predictions_equal_golden=sum(p == g for p, g in zip(preds, golden_pred)),
        logits_equal_golden=sum(r.logits == w for r, w in zip(results, want)),
        accuracy=sum(p == int(y) for p, y in zip(preds, labels)) / n,
        cycles_per_inference=sum(r.cycles for r in results) / n,
        load=LoadTraffic(**load, wire_seconds=uart_wire_seconds(load_bytes, baud) if baud else None),
        inference=InferenceTraffic(traffic.bytes_out / n, traffic.bytes_in / n, traffic.retries, infer_seconds,
                                   uart_wire_seconds(per_image, baud) if baud else None),
        wire_seconds_at={str(b): WireTime(uart_wire_seconds(load_bytes, b), uart_wire_seconds(per_image, b))
                         for b in REFERENCE_BAUDS},
        seconds=seconds,
    )
