"""The daily digest's content, read from the database: ``build_digest``.

Four questions over the last 24 hours: which lines are not HEALTHY now and since when,
what changed, how long each line spent AT_RISK or CRITICAL, and how the polls of each
account went. The reads are monitor/store/digest.py's; which lines a channel's digest
covers and what they are called, ``core.digest.DigestLines``; the time accounting is the
``report`` command's (``core.report``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from monitor.config import ChannelConfig
from monitor.core import status as st
from monitor.core.digest import Digest, DigestLines, LineMetaLookup, LineTime
from monitor.core.model import Message
from monitor.core.report import account_line
from monitor.store.digest import read_digest
from monitor.store.queries import LineHistory
from monitor.store.troubles import queue_once

__all__ = ["Digest", "DigestRenderer", "LineMetaLookup", "build_digest", "send_digest"]

DIGEST_WINDOW = timedelta(hours=24)


class DigestRenderer(Protocol):
    """A channel's digest text (its templates over the default)."""

    def render_digest(self, digest: Digest, *, now: datetime) -> Message: ...


def build_digest(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    accounts: Collection[str] | None = None,
    window: timedelta = DIGEST_WINDOW,
    max_changes: int = 200,
    line_meta: LineMetaLookup | None = None,
    labels: Mapping[str, str] | None = None,
) -> Digest:
    """Read one digest over ``[now - window, now]``, for ``accounts`` (None: all) and the
    lines carrying all of ``labels`` (a channel's selector; None or empty: every line).

    Every account in ``accounts`` appears in the poll health, even with no polls. At most
    ``max_changes`` changes are kept (newest first); the total is counted. Raises
    StoreError if the database fails. Reads only.
    """
    start = now - window
    lines = DigestLines(line_meta, labels)
    # Labels live in the config, not the database: with a selector, every change of the
    # window is read, then filtered and counted here before the cap.
    found = read_digest(sessions, start=start, end=now, accounts=accounts,
                        max_changes=None if labels else max_changes)
    changes = [change for change in found.changes if lines.covers(change)]
    return Digest(
        start=start, end=now,
        degraded=tuple(lines.named(line) for line in found.degraded if lines.covers(line)),
        changes=tuple(lines.named(change) for change in changes[:max_changes]),
        change_count=len(changes) if labels else found.change_count,
        time_degraded=_time_degraded(
            (h for h in found.histories if lines.covers(h)), lines, start=start, end=now),
        polls=found.polls,
    )


def _time_degraded(histories: Iterable[LineHistory], lines: DigestLines, *,
                   start: datetime, end: datetime) -> tuple[LineTime, ...]:
    """Time each line spent degraded in ``[start, end]``, most time CRITICAL first; lines
    never degraded are left out."""
    spent = (_line_time(history, lines, start=start, end=end) for history in histories)
    return tuple(sorted((t for t in spent if t.degraded > timedelta(0)),
                        key=lambda t: (-t.critical - t.other, -t.at_risk, t.account,
                                       t.phone_number)))


def _line_time(history: LineHistory, lines: DigestLines, *, start: datetime,
               end: datetime) -> LineTime:
    report = account_line(history.initial, history.changes, start=start, end=end)
    other = sum(s for status, s in report.seconds.items() if not st.is_known(status))
    return LineTime(history.account, history.line_id, history.phone_number,
                    at_risk=timedelta(seconds=report.seconds.get(st.AT_RISK, 0.0)),
                    critical=timedelta(seconds=report.seconds.get(st.CRITICAL, 0.0)),
                    other=timedelta(seconds=other), name=lines.name(history))


async def send_digest(
    sessions: sessionmaker[Session], channel: ChannelConfig, *, accounts: Collection[str],
    line_meta: LineMetaLookup, renderer: DigestRenderer, now: datetime,
) -> bool:
    """Build and queue one channel's digest, over the channel's accounts (none: all of
    ``accounts``, every configured one) and through its ``renderer``; once per channel and
    local day, whoever runs it (a restart inside the minute, or a second replica, finds it
    already queued). Returns whether it was queued now; raises StoreError."""
    digest = await asyncio.to_thread(build_digest, sessions, now=now,
                                     accounts=channel.accounts or accounts,
                                     line_meta=line_meta, labels=channel.labels)
    message = renderer.render_digest(digest, now=now)
    day = now.astimezone(channel.zone).date().isoformat()
    return await asyncio.to_thread(queue_once, sessions, channel=channel.name, kind="digest",
                                   message=message, dedupe_key=f"digest:{channel.name}:{day}",
                                   now=now)
