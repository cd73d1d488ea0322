"""Benchmarks: scripts that measure and write reports (never timed unit tests).

* :mod:`spikeforge.benchmarks.bench`: ``spikeforge bench``, the performance report (event-driven
  scaling, utilisation, linear attention, lanes sweep, CPU and projected board latency, simulator
  speed) with its plots; ``docs/performance.md`` explains each figure.
* :mod:`~spikeforge.benchmarks.machine`: the machine and tool versions every figure is labelled with.
* :mod:`~spikeforge.benchmarks.workloads`: controlled synthetic inputs (firing rate, attention shapes).
* ``engines.py``, ``accelerator.py``, ``build.py``: the per-issue benchmark scripts (block cycles and
  resources, the whole accelerator on the digits test split, board place and route).
"""
