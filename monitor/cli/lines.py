"""Which lines ``status`` shows, and in what order: worst first, filtered as asked.

Pure: takes the lines read from the store and the labels the config gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from monitor.core import status as st
from monitor.core.model import LineRef

# The service status Linq sets on a line it has blocked: worse than any reputation.
FLAGGED = "FLAGGED"


class ShownLine(LineRef, Protocol):
    """What ordering and filtering read of a line (monitor.store.schema.Line)."""

    @property
    def status(self) -> str: ...
    @property
    def service_status(self) -> str | None: ...
    @property
    def since(self) -> datetime: ...


L = TypeVar("L", bound=ShownLine)


@dataclass(frozen=True, slots=True)
class LineFilter:
    """``--status``, ``--account`` and ``--label``: a line is shown when it passes each
    one given. Statuses are upper case and match the reputation status or the service
    status (``FLAGGED``); any listed status, any listed account, every listed label."""

    statuses: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, *, statuses: Iterable[str], accounts: Iterable[str],
           labels: Iterable[str]) -> LineFilter:
        """From the command line's values; ``labels`` are ``key=value`` strings."""
        return cls(frozenset(s.upper() for s in statuses), frozenset(accounts),
                   dict(label.split("=", 1) for label in labels))

    def __bool__(self) -> bool:
        return bool(self.statuses or self.accounts or self.labels)

    def describe(self) -> str:
        """The filter as the options that set it, for "no line matches ..."."""
        parts = [f"--status {','.join(sorted(self.statuses))}"] if self.statuses else []
        parts += [f"--account {a}" for a in sorted(self.accounts)]
        parts += [f"--label {k}={v}" for k, v in sorted(self.labels.items())]
        return " ".join(parts)

    def passes(self, line: ShownLine, labels: Mapping[str, str]) -> bool:
        if self.statuses and line.status.upper() not in self.statuses and (
                (line.service_status or "").upper() not in self.statuses):
            return False
        if self.accounts and line.account not in self.accounts:
            return False
        return all(labels.get(key) == value for key, value in self.labels.items())


def worst_first(lines: Sequence[L]) -> list[L]:
    """FLAGGED lines first, then by status (undocumented, CRITICAL, AT_RISK, WATCH, HEALTHY),
    then the longest in that status first; account and phone number break ties."""
    return sorted(lines, key=lambda line: (
        line.service_status != FLAGGED, -st.rank(line.status), line.since,
        line.account, line.phone_number))


def shown(lines: Sequence[L], wanted: LineFilter,
          labels_of: Callable[[L], Mapping[str, str]]) -> list[L]:
    """The lines ``wanted`` selects, worst first."""
    return worst_first([line for line in lines if wanted.passes(line, labels_of(line))])
