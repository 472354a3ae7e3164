"""Billing tables. None yet: statements are computed from the usage rollups on demand."""
