"""The program format and hardware configuration (:mod:`spikeforge.firmware.program`) and the
compiler from a quantized model's layer graph to a program, memory images and a manifest
(:mod:`spikeforge.firmware.compiler`). ``docs/firmware.md`` describes both."""
