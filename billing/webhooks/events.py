"""The webhook event types: the ``type`` of every payload and what an endpoint subscribes to."""

from __future__ import annotations

STATEMENT_DRAFTED = "statement.drafted"
STATEMENT_FINALIZED = "statement.finalized"
CREDIT_NOTE_ISSUED = "credit_note.issued"
USAGE_THRESHOLD_CROSSED = "usage.threshold_crossed"
FANOUT_ENABLED = "fanout.enabled"
FANOUT_DISABLED = "fanout.disabled"

EVENT_TYPES: tuple[str, ...] = (
    STATEMENT_DRAFTED,
    STATEMENT_FINALIZED,
    CREDIT_NOTE_ISSUED,
    USAGE_THRESHOLD_CROSSED,
    FANOUT_ENABLED,
    FANOUT_DISABLED,
)
