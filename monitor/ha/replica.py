"""This process's identity among replicas: configured, or derived from host name and pid.

The identity is the ``holder`` of the leases this process takes, the ``replica`` label of
``linq_reputation_leader`` and a field of every log line of the daemon.
"""

from __future__ import annotations

import os
import socket

from monitor.core.identity import Identity


def identity(configured: str | None = None) -> Identity:
    """``[ha] replica`` if set, else ``<hostname>:<pid>`` (in Kubernetes: the pod name)."""
    host = socket.gethostname()
    pid = os.getpid()
    return Identity(name=configured or f"{host}:{pid}", host=host, pid=pid)
