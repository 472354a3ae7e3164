"""Billing: rate cards, prices and statements from metered usage."""
