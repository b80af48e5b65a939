"""How many accounts one replica should hold: pure arithmetic, no I/O."""

from __future__ import annotations

import math


def fair_share(accounts: int, live_replicas: int) -> int:
    """At most this many accounts per replica: ``ceil(accounts / live replicas)``.

    ``live_replicas`` counts the asking replica too; a count of 0 (its own heartbeat not
    seen yet) is treated as 1, so a lone replica takes everything rather than nothing.
    """
    return math.ceil(accounts / max(1, live_replicas))


def rebalance(held: int, *, accounts: int, live_replicas: int) -> tuple[int, int]:
    """(how many to give back, how many more to try to take) for a replica holding ``held``."""
    target = fair_share(accounts, live_replicas)
    return max(0, held - target), max(0, target - held)
