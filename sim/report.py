"""The report of a whole-accelerator RTL run against the golden model (``spikeforge sim``).

:func:`spikeforge.sim.accelerator_sim.simulate` builds a :class:`SimReport`; its
:meth:`~SimReport.as_dict` is the JSON ``spikeforge sim --json`` prints (keys in field order).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["LayerReport", "ImageCycles", "SimReport"]


@dataclass(frozen=True)
class LayerReport:
    """One program step, mean per image: ``cycles`` (RTL counter), ``bound_cycles`` (the
    event-driven bound, ``events * groups``; 0 for steps without synapses), ``events``
    (accumulator events), ``sops`` (RTL counter), ``golden_sops`` (the golden trace's),
    ``cycles_over_bound`` and ``utilization`` (``sops / (P * cycles)``), ``None`` where undefined."""

    name: str
    cycles: float
    bound_cycles: float
    events: float
    sops: float
    golden_sops: float
    cycles_over_bound: float | None
    utilization: float | None


@dataclass(frozen=True)
class ImageCycles:
    """One image: its ``cycles``, and per step (in the order of :attr:`SimReport.layers`)
    ``layer_cycles`` and ``layer_bound_cycles``; ``bound_cycles`` is their sum."""

    cycles: int
    layer_cycles: list[int]
    layer_bound_cycles: list[int]
    bound_cycles: int


@dataclass(frozen=True)
class SimReport:
    """RTL vs golden model on a batch of images.

    ``mismatches``: images whose logits differ from the golden model's (the first five in
    ``mismatch_details``, each ``{"image", "rtl", "golden"}``); ``sop_mismatches``: (image, step)
    pairs whose SOP counter differs from the golden trace. ``accuracy`` is ``None`` without labels.
    Cycles and SOPs are means per image; ``bound_cycles`` is the event-driven lower bound,
    ``utilization`` = SOPs / (P x cycles), ``bound_utilization`` = SOPs / (P x bound) (the
    utilisation a run at the bound would reach). ``engine_counters``: each accelerator counter,
    mean per image. ``sim_seconds``: wall time of the run, build included.
    """

    images: int
    mismatches: int
    mismatch_details: list[dict]
    sop_mismatches: int
    accuracy: float | None
    cycles_per_inference: float
    bound_cycles: float
    cycles_over_bound: float | None
    utilization: float
    lanes: int
    engine_counters: dict[str, float]
    event_driven: bool
    simulator: str
    sim_seconds: float
    images_per_second: float | None
    per_image: list[ImageCycles]
    sops_per_inference: float
    bound_utilization: float | None
    layers: list[LayerReport]

    def as_dict(self) -> dict:
        """The report as plain JSON-able values (what ``spikeforge sim --json`` prints)."""
        return dataclasses.asdict(self)
