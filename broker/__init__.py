"""The edge broker: a GRIP proxy to origins, client transports, the publish API, fan-out and a metering outbox.

Pure rules live in small modules (``grip``, ``publish``, ``wsevents``, ``events``, ``config``);
I/O sits at the edges (``app``, ``origin``, ``transports``, ``outbox``, ``shipper``, ``fanout``).
"""
