"""Host side: the driver (:mod:`spikeforge.host.driver`), its transports
(:mod:`spikeforge.host.transport`), the link protocol codec (:mod:`spikeforge.host.protocol`),
the report of a model run on a device (:mod:`spikeforge.host.run_report`) and the ``spikeforge``
command line (:mod:`spikeforge.host.cli`, one module per command)."""
