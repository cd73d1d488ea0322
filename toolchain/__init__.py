"""The toolchain flow: board definitions, Verilog export, and the open FPGA tools (YoWASP Yosys,
nextpnr, the packers) run on the gateware of :mod:`spikeforge.hdl`, with their reports parsed.

It sits above the gateware and below verification and the host: model -> firmware -> hdl ->
toolchain -> sim -> host. ``docs/build.md`` describes the builds; ``docs/architecture.md`` the packages.
"""
