"""A replica's identity: a value the store and the leases record, made by ``ha.replica``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    host: str
    pid: int

    def describe(self) -> str:
        return f"replica {self.name} (pid {self.pid} on host {self.host})"
