"""A request budget: at most N requests in any minute, decided from times the caller gives."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

MINUTE = timedelta(minutes=1)


class RequestBudget:
    """A sliding window: a request is allowed when fewer than `per_minute` were spent in
    the minute before it. Pure: the caller passes `now` (never a clock read here)."""

    def __init__(self, per_minute: int) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._spent: deque[datetime] = deque()

    def allows(self, now: datetime) -> bool:
        while self._spent and self._spent[0] <= now - MINUTE:
            self._spent.popleft()
        return len(self._spent) < self.per_minute

    def spend(self, now: datetime) -> None:
        """Count one request at `now` (call only after `allows(now)`)."""
        self._spent.append(now)

    @property
    def interval(self) -> timedelta:
        """The even spacing that uses the budget exactly: how often to try."""
        return MINUTE / self.per_minute
