"""The broker's metering output: CloudEvents about its own work, made durable, shipped to the pipeline.

- ``events``: pure builders of the CloudEvents a node writes (DESIGN.md, "Event contract");
- ``meter``: counts opens, alives, closes, publishes and deliveries as those events;
- ``outbox``: the node's durable SQLite outbox and its group-commit writer;
- ``shipper``: sends sealed outbox batches to the metering pipeline until it has recorded them.
"""
