"""The services a broker serves, and where they come from.

- ``model``: ``ServiceConfig`` and ``BrokerConfig``, the values every other part reads (pure);
- ``file``: those values from a TOML or JSON services file (``--config``);
- ``database``: the broker's read model of the admin service's tables, and the one query over them;
- ``rows``: the rules turning those rows into services: which are served, origin, tokens, GRIP key (pure);
- ``refresh``: reading the services again periodically, keeping the last good ones on failure.
"""
