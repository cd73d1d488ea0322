"""cocotb test modules, run inside Icarus or Verilator by :mod:`spikeforge.sim.runner` (not by pytest)."""
