"""Alert delivery: the outbox deliverer and the Apprise notifier."""
