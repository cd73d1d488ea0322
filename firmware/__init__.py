"""Compiler from a quantized model and a hardware configuration to a program, a weight image
and a manifest. Nothing here yet (see ``../shared/ARCHITECTURE.md`` section 1)."""
