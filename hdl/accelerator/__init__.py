"""The accelerator as components (``docs/accelerator.md``): :class:`Accelerator` (``top``)
instantiates the memories, the engines and its components and connects them; its contract
(read map, counters, program-row and write-port layouts, the control bus) is
:mod:`spikeforge.firmware.memory_map`, re-exported here for its users' convenience."""

from spikeforge.firmware.memory_map import (COUNTERS, LAYER_COUNTERS, PROFILE_COUNTERS, READ_MAP, descriptor_layout, hardware_counters,
                         named_counters, recorded_steps, step_counters, write_layout)
from .top import Accelerator

__all__ = ["Accelerator", "READ_MAP", "COUNTERS", "PROFILE_COUNTERS", "LAYER_COUNTERS", "hardware_counters",
           "named_counters", "recorded_steps", "step_counters", "write_layout", "descriptor_layout"]
