"""``python -m spikeforge.host.cli``: the ``spikeforge`` command line."""

import sys

from spikeforge.host.cli import main

sys.exit(main())
