"""The GRIP protocol as pure rules: what origins and publishers send, parsed into values (no I/O).

- ``instructions``: ``Grip-*`` headers and ``application/grip-instruct`` bodies of an origin's answer;
- ``publish``: the publish API's body, its formats, and which transport takes which format;
- ``wsevents``: WebSocket-over-HTTP events and ``c:`` control messages;
- ``reliability``: Pushpin's reliable delivery (last ids, ``prev-id`` order, when to ask again).
"""
