"""Several replicas on one database: leases per account, fair share, run-once jobs."""
