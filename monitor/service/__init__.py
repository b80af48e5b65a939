"""The running daemon: the runtime built once, the scheduler, the poll cycle, audits,
the monitor's own trouble and the digest jobs."""
