"""The client side: how a held connection reaches its client, one module per transport.

- ``dispatch``: which hold an HTTP request becomes (relayed, long-poll or stream), start to end;
- ``held_request``: what every held HTTP request shares (``ClientRequest``, ``HoldContext``, open, release);
- ``long_poll``: ``response`` holds, with Pushpin's retry through ``Grip-Last``;
- ``stream``: HTTP streaming and SSE (``stream`` holds), with recovery through the next link;
- ``websocket``: WebSocket clients, bridged to the origin with WebSocket-over-HTTP;
- ``connection``: a held connection: its bounded delivery queue, byte counters and end.
"""
