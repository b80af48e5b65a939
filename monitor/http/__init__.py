"""The HTTP server: its guard (limits, deadlines), probes, /metrics, the gate API and the
webhook endpoint."""
