"""Verification harness: Amaranth-simulator and cocotb benches (Icarus, Verilator), stream
drivers and monitors with random stalls, golden-model scenarios and scoreboards, the RTL simulator
of the whole accelerator (:mod:`spikeforge.sim.accelerator_sim`) and the virtual board
(:mod:`spikeforge.sim.virtual_board`). ``docs/architecture.md`` places it in the pipeline."""
