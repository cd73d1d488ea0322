"""Utilities every package uses and none owns (file writes that are whole or not at all); below
all of them in the dependency order (``docs/architecture.md``)."""
