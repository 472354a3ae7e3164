"""Talking to a service's origin.

- ``client``: ``Origins``: requests signed with ``Grip-Sig``, TLS verified against the public CA bundle;
- ``http11``: the small HTTP/1.1 client underneath (keep-alive connections per origin, httptools parsing).
"""
