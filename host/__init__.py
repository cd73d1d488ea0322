"""Host side: the driver (:mod:`spikeforge.host.driver`), its transports
(:mod:`spikeforge.host.transport`), the link protocol codec (:mod:`spikeforge.host.protocol`)
and the ``spikeforge`` command line (:mod:`spikeforge.host.cli`)."""
