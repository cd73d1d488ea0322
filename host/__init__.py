"""Host side: the ``spikeforge`` command line (:mod:`spikeforge.host.cli`); the driver and its
transports arrive with the host-link issue."""
