"""Persistence: schema, engine and sessions, queries, migrate-at-start."""
