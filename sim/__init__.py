"""Verification harness: cocotb benches, stream drivers/monitors, scoreboards against the golden
model and the virtual board. Nothing here yet (see ``../shared/ARCHITECTURE.md`` section 6)."""
