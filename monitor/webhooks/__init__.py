"""Linq webhooks: verify the signature, record the event once, apply it like a poll would."""
