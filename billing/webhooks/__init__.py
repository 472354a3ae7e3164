"""Webhooks: endpoints, the outbox written in the caller's transaction, and its signed delivery."""
