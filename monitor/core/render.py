"""Default alert text. Pure: every input, including the clock, comes in as a value.

``render_entries`` turns the entries due together on one channel into one message: a
single entry reads as a full report on that line; several become one grouped message (a
summary line, then one compact entry per line, capped with "+N more"). Every kind carries
the phone number, the line's name if any, from→to, the time in the previous status and
the exact doc_url the API gave.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from monitor.core import service as sv
from monitor.core import status as st
from monitor.core.chats import chat_lines
from monitor.core.model import Entry, Message, NoticeKind, Transition

# Slack shows about this much of a title in a notification; PagerDuty allows 1024.
TITLE_LIMIT = 150
DEFAULT_LIMIT = 20

# Grouped messages list the most urgent kinds first.
_KIND_ORDER = (NoticeKind.DEGRADED, NoticeKind.UNKNOWN, NoticeKind.FLAPPING, NoticeKind.REMINDER,
               NoticeKind.DIAGNOSIS, NoticeKind.IMPROVED, NoticeKind.SETTLED,
               NoticeKind.RECOVERED, NoticeKind.TEST)
# How a summary counts each kind: "4 degraded", "2 still degraded", ...
_SUMMARY_VERB = {
    NoticeKind.DEGRADED: "degraded",
    NoticeKind.UNKNOWN: "with an unknown status",
    NoticeKind.FLAPPING: "flapping",
    NoticeKind.REMINDER: "still degraded",
    NoticeKind.IMPROVED: "improving",
    NoticeKind.SETTLED: "settled after flapping",
    NoticeKind.DIAGNOSIS: "diagnosed",
    NoticeKind.RECOVERED: "recovered",
    NoticeKind.TEST: "test",
}


HELD = ("Held back during this channel's quiet hours and sent now that they are over; "
        "lines that recovered meanwhile are left out.")


def render_entries(entries: Sequence[Entry], *, now: datetime, limit: int = DEFAULT_LIMIT,
                   flap_window: timedelta | None = None, held: bool = False) -> Message:
    """One message for the entries due together on a channel (one or many).

    ``flap_window`` (the policy's setting) lets a flapping notice say how long the line
    must be stable before alerts resume. ``held``: the entries waited out quiet hours, and
    the message says so first. Raises ValueError if ``entries`` is empty.
    """
    if not entries:
        raise ValueError("render_entries needs at least one entry")
    if len(entries) == 1:
        message = render_entry(entries[0], now=now, flap_window=flap_window)
    else:
        message = render_group(entries, now=now, limit=limit)
    if not held:
        return message
    return Message(title=message.title, body=f"{HELD}\n\n{message.body}")


def render_entry(entry: Entry, *, now: datetime, flap_window: timedelta | None = None
                 ) -> Message:
    """The full message about one line."""
    tag = "DIAGNOSIS" if entry.kind is NoticeKind.DIAGNOSIS else badge(entry)
    return Message(title=shorten(f"[{tag}] {_who(entry)} {headline(entry, now=now)}"
                                  f" ({entry.account})"),
                   body="\n".join(_entry_body(entry, now=now, flap_window=flap_window)))


def render_group(entries: Sequence[Entry], *, now: datetime, limit: int = DEFAULT_LIMIT
                 ) -> Message:
    """One message for many lines: summary, then one compact entry each, worst first."""
    ordered = sort_entries(entries)
    shown, more = ordered[:limit], max(0, len(ordered) - limit)
    accounts = sorted({e.account for e in entries})
    where = accounts[0] if len(accounts) == 1 else f"{len(accounts)} accounts"
    worst = max((badge(e) for e in entries), key=st.rank)
    summary = summarize(entries)
    lines = [summary, ""]
    for entry in shown:
        lines += compact_entry(entry, now=now, with_account=len(accounts) > 1)
    if more:
        lines.append(f"+{more} more")
    return Message(title=shorten(f"[{worst}] {summary} ({where})"), body="\n".join(lines))


def summarize(entries: Sequence[Entry]) -> str:
    """'6 lines degraded: 4 AT_RISK, 2 CRITICAL; 1 recovered'."""
    # Keyed by kind and verb: lines that recovered and lines only "no longer CRITICAL"
    # are counted apart, the latter with the status they are at now.
    by_verb: dict[tuple[NoticeKind, str], Counter[str]] = {}
    for entry in entries:
        verb = (recovered_word(entry) if entry.kind is NoticeKind.RECOVERED
                else _SUMMARY_VERB[entry.kind])
        by_verb.setdefault((entry.kind, verb), Counter())[badge(entry)] += 1
    parts: list[str] = []
    for (kind, verb), counts in sorted(by_verb.items(), key=lambda item: (
            _KIND_ORDER.index(item[0][0]), item[0][1] == "recovered")):
        total = sum(counts.values())
        noun = ("line" if total == 1 else "lines") if not parts else ""
        text = " ".join(p for p in (str(total), noun, verb) if p)
        if kind not in (NoticeKind.FLAPPING, NoticeKind.TEST) and verb != "recovered":
            text += ": " + ", ".join(f"{n} {status}" for status, n in
                                     sorted(counts.items(), key=lambda i: st.rank(i[0])))
        parts.append(text)
    return "; ".join(parts)


def sort_entries(entries: Sequence[Entry]) -> list[Entry]:
    """Lines by urgency (most urgent kind, then worst status, of the line's latest entry),
    then account and phone number; a line listed twice keeps its changes in time order."""
    latest: dict[tuple[str, str], Entry] = {}
    for e in entries:
        latest[(e.account, e.line_id)] = e

    def line_key(e: Entry) -> tuple[int, float, str, str]:
        last = latest[(e.account, e.line_id)]
        return (_KIND_ORDER.index(last.kind), -st.rank(badge(last)), e.account,
                e.phone_number)
    return sorted(entries, key=lambda e: (*line_key(e), e.at))


def headline(entry: Entry, *, now: datetime) -> str:
    """What happened, in a few words: 'degraded: HEALTHY → AT_RISK', 'still CRITICAL for 3h'."""
    change = f"{entry.from_status or '(new line)'} → {entry.to_status}"
    kind = entry.kind
    if entry.service == sv.FLAGGED and kind in (NoticeKind.DEGRADED, NoticeKind.UNKNOWN):
        return f"flagged: service status {sv.ACTIVE} → {sv.FLAGGED}"
    if entry.service == sv.ACTIVE and kind in (NoticeKind.IMPROVED, NoticeKind.RECOVERED):
        return f"service restored: {sv.FLAGGED} → {sv.ACTIVE}, reputation {entry.to_status}"
    if kind is NoticeKind.DIAGNOSIS:
        return f"{entry.to_status}: what Linq's reputation audit found"
    if kind is NoticeKind.REMINDER:
        return f"still {entry.to_status} for {format_duration(degraded_for(entry, now=now))}"
    if kind is NoticeKind.FLAPPING:
        return f"flapping: {max(len(entry.sequence), 1)} changes in {_sequence_span(entry)}"
    if kind is NoticeKind.SETTLED:
        return f"settled at {entry.to_status} after flapping"
    word = {NoticeKind.DEGRADED: "degraded", NoticeKind.IMPROVED: "improving",
            NoticeKind.RECOVERED: recovered_word(entry), NoticeKind.UNKNOWN: "unknown status",
            NoticeKind.TEST: "test"}[kind]
    return f"{word}: {change}"


def recovered_word(entry: Entry) -> str:
    """What a RECOVERED notice says happened: "recovered" for a line back to HEALTHY;
    "no longer CRITICAL" for one that only dropped below the channel's min_status."""
    if not entry.still_degraded:
        return "recovered"
    below = entry.below or "at this channel's min_status"  # a row queued before `below`
    return f"no longer {below}"


def compact_entry(entry: Entry, *, now: datetime, with_account: bool = False) -> list[str]:
    """Two lines about one line in a grouped message."""
    previous = entry.time_in_previous
    after = (f" after {format_duration(previous)} in {entry.from_status}"
             if previous is not None else "")
    what = headline(entry, now=now)
    change = _change(entry)
    if change not in what:
        what += f" ({change})"
    account = f" [{entry.account}]" if with_account else ""
    return [f"- {_who(entry)}{account} {what}{after}, at {_short_time(entry.at, now)}",
            f"  {entry.doc_url or '(no doc_url)'}",
            *(f"  {line}" for line in entry.diagnosis),
            *(f"  {line}" for line in chat_lines((), entry.watch_reasons))]


def degraded_for(entry: Entry, *, now: datetime) -> timedelta:
    """How long the line has been degraded (reminders): from ``degraded_since`` to ``now``."""
    start = entry.degraded_since or entry.previous_since or entry.at
    return now - start


def _entry_body(entry: Entry, *, now: datetime, flap_window: timedelta | None) -> list[str]:
    name = f' "{entry.name}"' if entry.name else ""
    lines = [f"Account: {entry.account}",
             f"Line: {entry.phone_number}{name} (id {entry.line_id})"]
    if entry.labels:
        lines.append("Labels: " + ", ".join(f"{k}={v}" for k, v in sorted(entry.labels.items())))
    if entry.service is not None and entry.from_status is None:
        lines.append(f"Reputation: {entry.to_status} (unchanged)")
    else:
        lines.append(f"Status: {_change(entry)}")
    if entry.service == sv.FLAGGED:
        lines.append(f"Service status: {sv.ACTIVE} → {sv.FLAGGED}")
    elif entry.service is not None:
        lines.append(f"Service status: {sv.FLAGGED} → {entry.service}")
    lines.append(f"Changed at: {format_time(entry.at)}")
    previous = entry.time_in_previous
    if previous is not None:
        lines.append(f"Time in {entry.from_status}: {format_duration(previous)}")
    lines += _kind_lines(entry, now=now, flap_window=flap_window)
    if entry.reason:
        lines.append(f"Reason: {entry.reason}")
    lines += chat_lines(entry.chats, entry.watch_reasons)
    lines.append(f"Recommended action: {recommended_action(entry)}")
    lines.append(f"Guide: {entry.doc_url or '(the API sent no doc_url)'}")
    lines += entry.diagnosis
    return lines


def _change(entry: Entry) -> str:
    """'HEALTHY → AT_RISK'; for a change of the service status alone, the reputation."""
    if entry.service is not None and entry.from_status is None:
        return f"reputation {entry.to_status}"
    return f"{entry.from_status or '(new line)'} → {entry.to_status}"


def badge(entry: Entry) -> str:
    """The word in a title's brackets: FLAGGED outranks any reputation status; a flapping
    line shows the worst status it went through, not wherever the last change left it."""
    if entry.kind is NoticeKind.FLAPPING and entry.sequence:
        return max((entry.level, *(status for _, status in entry.sequence)), key=st.rank)
    return entry.level


def recommended_action(entry: Entry) -> str:
    if entry.service == sv.FLAGGED:
        return sv.ACTION[sv.FLAGGED]
    return st.recommended_action(entry.to_status)


def _kind_lines(entry: Entry, *, now: datetime, flap_window: timedelta | None) -> list[str]:
    kind = entry.kind
    if kind is NoticeKind.DEGRADED and entry.from_status is None and entry.service is None:
        return ["First time this monitor sees the line; it is already degraded."]
    if kind is NoticeKind.UNKNOWN:
        return [f"'{entry.to_status}' is not a status Linq documents; it is shown verbatim."]
    if kind is NoticeKind.IMPROVED:
        return [f"Improving, not resolved: the line is still {entry.to_status}."]
    if kind is NoticeKind.RECOVERED and entry.still_degraded:
        word = recovered_word(entry)
        return [f"{word[0].upper()}{word[1:]}: the line is {entry.to_status} now."]
    if kind is NoticeKind.RECOVERED:
        return [f"Recovered: the line is {entry.to_status} again."]
    if kind is NoticeKind.REMINDER:
        since = entry.degraded_since or entry.previous_since or entry.at
        lasting = format_duration(degraded_for(entry, now=now))
        return [f"Reminder: still {entry.to_status} for {lasting} "
                f"(degraded since {format_time(since)})."]
    if kind is NoticeKind.FLAPPING:
        until = (f"it is stable for {format_duration(flap_window)}" if flap_window
                 else "it is stable again")
        return [f"Flapping: {max(len(entry.sequence), 1)} changes in {_sequence_span(entry)}:",
                *(f"  {format_time(at)}  {status}" for at, status in entry.sequence),
                f"Alerts for this line are paused until {until}; one notice will say where "
                "it settled."]
    if kind is NoticeKind.SETTLED:
        return [f"Settled at {entry.to_status} (since {format_time(entry.at)}) after flapping; "
                "per-change alerts resume."]
    if kind is NoticeKind.DIAGNOSIS:
        return ["Follows the alert about this line: the reputation audit finished after it "
                "was sent."]
    return []


def render_test(channel: str, *, now: datetime) -> Message:
    return Message(
        title="Linq reputation monitor: test notification",
        body=(
            f"This is a test sent to channel '{channel}' at {format_time(now)}.\n"
            "If you can read it, alerts for degraded Linq lines will reach you here."
        ),
    )


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(span: timedelta) -> str:
    """'3d 4h', '2h 5m', '45s': the two largest units, enough for a human.

    Rounded, not truncated: 0.9 s between two changes stamped a second apart reads "1s".
    """
    seconds = max(0, round(span.total_seconds()))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def describe(transition: Transition) -> str:
    """One line for logs."""
    after = status_after(transition.kind, transition.to_status) or "removed"
    return (f"{transition.phone_number} {transition.from_status or '-'} -> {after} "
            f"({transition.kind})")


def status_after(kind: str, to_status: str) -> str | None:
    """A recorded change's status after it, as ``history`` shows it: None for a line
    removed from the account (it has no status any more), just as a line first seen has
    no status before. The row itself stores the last status as ``to_status`` then."""
    return None if kind == "removed" else to_status


def change_text(kind: str, from_status: str | None, to_status: str) -> str:
    """'HEALTHY → AT_RISK'; '- → HEALTHY' for a line first seen; 'AT_RISK → removed' for
    a line removed from the account."""
    return f"{from_status or '-'} → {status_after(kind, to_status) or 'removed'}"


def _who(entry: Entry) -> str:
    return f"{entry.phone_number} ({entry.name})" if entry.name else entry.phone_number


def _sequence_span(entry: Entry) -> str:
    if len(entry.sequence) < 2:
        return "a short time"
    return format_duration(entry.sequence[-1][0] - entry.sequence[0][0])


def _short_time(moment: datetime, now: datetime) -> str:
    """'09:30:05 UTC' today, 'Nov 26 22:10:05 UTC' otherwise (deferred summaries span nights).
    Seconds, because a line can change twice within a minute."""
    if moment.date() == now.date():
        return moment.strftime("%H:%M:%S UTC")
    return moment.strftime("%b %d %H:%M:%S UTC")


def shorten(title: str) -> str:
    """Cut a title to TITLE_LIMIT characters."""
    return title if len(title) <= TITLE_LIMIT else title[:TITLE_LIMIT - 1] + "…"
