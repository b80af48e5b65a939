"""When a channel's queued notices go out: grouping and quiet hours. Pure.

The deliverer reads a channel's due rows and asks ``plan_delivery`` what to do with them:

- **Grouping.** Rows that become due within ``group_wait`` of the oldest one go out as one
  message; a poll in which 500 lines degrade is one message per channel. With
  ``critical_skips_group_wait`` a degradation to CRITICAL (or worse) goes out at once,
  taking whatever else is due with it.
- **Quiet hours.** Inside the channel's quiet period, rows below CRITICAL (all rows, with
  ``quiet_hours_critical = "defer"``) are deferred to its end, never dropped. When it ends
  they go out together as one summary, except lines that went and came back meanwhile.
  Finished messages (the monitor's own trouble, routed like a CRITICAL, and digests, sent
  at the time the channel chose) pass, unless CRITICAL is deferred too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.core import status as st
from monitor.core.model import Entry, Message, NoticeKind


@dataclass(frozen=True, slots=True)
class ChannelTiming:
    group_wait: timedelta = timedelta(0)
    critical_skips_group_wait: bool = False
    quiet_hours: tuple[time, time] | None = None
    timezone: str = "UTC"
    defer_critical: bool = False

    @classmethod
    def parse_quiet_hours(cls, text: str | None) -> tuple[time, time] | None:
        if text is None:
            return None
        start, _, end = text.partition("-")
        return time.fromisoformat(start), time.fromisoformat(end)


@dataclass(frozen=True, slots=True)
class DueRow:
    """A pending outbox row of one channel, as the deliverer read it."""

    id: int
    line_id: str
    created_at: datetime
    entry: Entry | None  # None: a finished message (digest, trouble notice)
    message: Message | None
    next_attempt_at: datetime
    claimed_until: datetime | None = None
    deferred: bool = False

    def waiting(self, now: datetime) -> bool:
        return self.next_attempt_at > now or (
            self.claimed_until is not None and self.claimed_until > now)


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    batches: list[list[DueRow]]  # each batch is one message
    defer: list[int]  # row ids to hold until ``defer_until``
    defer_until: datetime | None
    drop: list[int]  # deferred rows made moot: the line recovered, or newer news went out


def quiet_until(now: datetime, timing: ChannelTiming) -> datetime | None:
    """The end of the quiet period ``now`` falls in, or None outside quiet hours."""
    if timing.quiet_hours is None:
        return None
    zone = ZoneInfo(timing.timezone)
    local = now.astimezone(zone)
    start, end = timing.quiet_hours
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:  # the period wraps midnight, e.g. 22:00-07:00
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(now.tzinfo)


def plan_delivery(rows: Sequence[DueRow], timing: ChannelTiming, now: datetime) -> DeliveryPlan:
    """Decide about a channel's pending rows (oldest first).

    Per line, rows go out in order: a row waiting for a retry (or claimed) holds back the
    line's newer rows. A row parked by quiet hours does not: newer CRITICAL news passes,
    and the parked rows it supersedes are dropped.
    """
    quiet_end = quiet_until(now, timing)
    free, parked = _free_rows(rows, now)
    defer = _held_for_quiet(free, timing, quiet=quiet_end is not None)
    held = set(defer)
    ready = [r for r in free if r.id not in held]
    drop = _moot(ready)  # lines that went and came back while the channel was quiet
    ready = [r for r in ready if r.id not in drop]
    drop |= _superseded(ready, parked=parked, held=[r for r in free if r.id in held])
    return DeliveryPlan(batches=_batches(ready, timing, now),
                        defer=[i for i in defer if i not in drop], defer_until=quiet_end,
                        drop=sorted(drop))


def _free_rows(rows: Sequence[DueRow], now: datetime) -> tuple[list[DueRow], dict[str, list[int]]]:
    """The rows that may go now, and per line the ids parked by quiet hours: a row waiting
    for a retry (or claimed) holds back its line's newer rows; a parked one does not."""
    free: list[DueRow] = []
    parked: dict[str, list[int]] = {}
    blocked: set[str] = set()
    for r in rows:
        if r.line_id in blocked:
            continue
        if not r.waiting(now):
            free.append(r)
        elif r.deferred and (r.claimed_until is None or r.claimed_until <= now):
            parked.setdefault(r.line_id, []).append(r.id)
        else:
            blocked.add(r.line_id)
    return free, parked


def _held_for_quiet(rows: Sequence[DueRow], timing: ChannelTiming, *, quiet: bool) -> list[int]:
    """The ids of the rows quiet hours hold back now, in order: none outside them."""
    if not quiet:
        return []
    return [r.id for r in rows if not _passes(r, timing)]


def _superseded(ready: Sequence[DueRow], *, parked: Mapping[str, Sequence[int]],
                held: Sequence[DueRow]) -> set[int]:
    """The rows held back for a line that newer news about it, going out now, makes moot:
    all its parked rows, and its rows held now that are older than that news."""
    held_by_line: dict[str, list[int]] = {}
    for r in held:
        held_by_line.setdefault(r.line_id, []).append(r.id)
    moot: set[int] = set()
    for r in ready:
        if r.entry is None:
            continue  # a finished message is about no line: it supersedes nothing
        moot.update(parked.get(r.line_id, ()))
        moot.update(i for i in held_by_line.get(r.line_id, ()) if i < r.id)
    return moot


def _batches(ready: Sequence[DueRow], timing: ChannelTiming, now: datetime) -> list[list[DueRow]]:
    """What goes out now, one message per batch: each finished message on its own, then
    the line notices together once their group is ready."""
    batches = [[r] for r in ready if r.entry is None]
    entries = [r for r in ready if r.entry is not None]
    if entries and _group_ready(entries, timing, now):
        batches.append(entries)
    return batches


def _passes(row: DueRow, timing: ChannelTiming) -> bool:
    """Whether a row goes out during quiet hours: CRITICAL (and worse) news and finished
    messages, by default."""
    if timing.defer_critical:
        return False
    entry = row.entry
    if entry is None:
        return True
    return st.rank(entry.level) >= st.rank(st.CRITICAL) and entry.kind in (
        NoticeKind.DEGRADED, NoticeKind.UNKNOWN, NoticeKind.FLAPPING)


def _moot(rows: Sequence[DueRow]) -> set[int]:
    """Deferred rows of lines that degraded and recovered while the channel was quiet."""
    by_line: dict[str, list[DueRow]] = {}
    for r in rows:
        if r.deferred and r.entry is not None:
            by_line.setdefault(r.line_id, []).append(r)
    moot: set[int] = set()
    for line_rows in by_line.values():
        first, last = line_rows[0].entry, line_rows[-1].entry
        assert first is not None and last is not None
        if first.kind is not NoticeKind.RECOVERED and last.kind is NoticeKind.RECOVERED:
            moot.update(r.id for r in line_rows)
    return moot


def _group_ready(rows: Sequence[DueRow], timing: ChannelTiming, now: datetime) -> bool:
    """Whether the line notices due now go out now: quiet hours ended, ``group_wait`` has
    passed, or CRITICAL news skips the wait."""
    if any(r.deferred for r in rows):
        return True  # the end of quiet hours: the summary goes out now
    if now - min(r.created_at for r in rows) >= timing.group_wait:
        return True
    return timing.critical_skips_group_wait and any(
        r.entry is not None and r.entry.kind in (NoticeKind.DEGRADED, NoticeKind.UNKNOWN)
        and st.rank(r.entry.level) >= st.rank(st.CRITICAL) for r in rows)
