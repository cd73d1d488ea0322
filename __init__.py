"""SpikeForge: FPGA accelerators for Spike-driven Transformers.

Subpackages (the repository's top-level folders):

* :mod:`spikeforge.model`: the float Spike-driven Transformer, data and training.
* :mod:`spikeforge.firmware`: compiler from a quantized model to a program and weight image.
* :mod:`spikeforge.hdl`: Amaranth gateware.
* :mod:`spikeforge.sim`: verification harness (cocotb benches, virtual board).
* :mod:`spikeforge.host`: host driver and the ``spikeforge`` command line.
"""

__version__ = "0.1.0"
