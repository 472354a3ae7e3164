"""`fanmeter pushpin-stats`: bill an existing Pushpin deployment from its ZeroMQ stats socket.

``records`` parses Pushpin's stats frames, ``routemap`` maps Pushpin routes and channels to
fanmeter accounts and services, ``translate`` turns records into fanmeter's CloudEvents (all
three pure); ``adapter`` is the process: a SUB socket, the durable outbox and its shipper.
"""
