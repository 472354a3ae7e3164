"""Pure billing rules: money, rate cards, graduated pricing and statements.

Nothing here does I/O or imports a framework; the only outside dependency is
``metering.domain``'s value types (the usage report a statement is built from).
"""
