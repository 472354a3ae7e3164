"""The ``fanmeter`` command: the entry points that wire metering, billing and the broker together."""
