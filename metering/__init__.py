"""Metering: CloudEvents in, exact connection minutes, messages and bytes out."""
