"""Amaranth gateware of the accelerator (engines, sequencer, host link, board tops).

Nothing here yet: the engines arrive with the issue that asks for them
(see ``../shared/ARCHITECTURE.md`` section 4).
"""
