"""Pure metering rules. Nothing here does I/O or imports a framework (see tests/unit/test_layering.py)."""
