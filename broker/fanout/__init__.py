"""Getting published items to the connections that hold their channels.

- ``hub``: this node's subscriptions (service, channel -> connections) and the queueing of items to them;
- ``nodes``: across nodes: ``LocalFanout`` (this node only) or ``RedisFanout`` (every node, Redis pub/sub).
"""
