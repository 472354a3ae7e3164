"""The edge broker: a GRIP proxy to origins, client transports, the publish API, fan-out and a metering outbox.

The map (one request: ``app`` routes it, ``origin`` asks the origin, ``grip`` reads the answer,
``transports.dispatch`` holds it, ``fanout`` brings it published items, ``usage`` meters it):

- ``app``: the ASGI app: routing, the publish API endpoint, the GRIP proxy wired together;
- ``bootstrap``: the composition root (settings, services, outbox, fan-out, shipper) and uvicorn's options;
- ``serving``: the HTTP server's limits on a request's head (uvicorn's httptools protocol, 431/408);
- ``settings``: ``BrokerSettings`` (``FANMETER_BROKER_*``, Redis), read once at start;
- ``exceptions``: the broker's errors, each with a reason a client or operator can act on;
- ``asgi``: small helpers over raw ASGI messages;
- ``grip/``: the GRIP protocol as pure rules: instructions, publish bodies, WebSocket events, reliability;
- ``transports/``: the client side: dispatch of held requests, long-poll, stream/SSE, WebSocket, connections;
- ``origin/``: requests to origins: signing and TLS (``client``), the HTTP/1.1 client (``http11``);
- ``fanout/``: published items to subscribers: this node's ``hub``, and across ``nodes`` (Redis);
- ``services/``: what is served: the values (``model``), from a ``file`` or the ``database``, refreshed;
- ``usage/``: the metering output: CloudEvents, the meter, the durable outbox, the shipper.

Pure rules live in ``grip/``, ``services/model.py``, ``services/rows.py``, ``usage/events.py`` and
``exceptions.py``; I/O sits in the rest.
"""
