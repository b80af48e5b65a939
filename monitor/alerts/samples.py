"""Sample messages of every kind, for ``alerts preview``: made-up lines, nothing stored.

``samples(now, account=...)`` returns (label, what) pairs in the order a user reads them;
``what`` is a list of entries, ``Held`` entries (a quiet-hours summary), a ``Digest`` or a
``Trouble``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from monitor.core.digest import DegradedLine, Digest, DigestChange, LineTime, PollHealth
from monitor.core.model import Entry, NoticeKind
from monitor.core.trouble import Trouble, TroubleKind

GUIDE = "https://docs.linqapp.com/guides/phone-numbers/phone-reputation"


@dataclass(frozen=True, slots=True)
class Held:
    """Entries parked by a channel's quiet hours, sent as one summary when they end."""

    entries: list[Entry]


Sample = list[Entry] | Held | Digest | Trouble


def samples(now: datetime, *, account: str = "main") -> list[tuple[str, Sample]]:
    """Every message kind a channel can receive, built around ``now``."""
    def ago(**span: float) -> datetime:
        return now - timedelta(**span)

    base = Entry(kind=NoticeKind.DEGRADED, account=account, line_id="3f6c2a9e-sample-0001",
                 phone_number="+12025550101", from_status="HEALTHY", to_status="AT_RISK",
                 at=ago(seconds=30), previous_since=ago(days=6, hours=2),
                 doc_url=f"{GUIDE}#at-risk", name="Sales line 1", labels={"team": "sales"})
    critical = f"{GUIDE}#critical"
    group = [
        replace(base, phone_number=f"+1202555020{n}", line_id=f"sample-020{n}",
                name=None if n % 2 else f"Support {n}", to_status=status,
                from_status="AT_RISK" if status == "CRITICAL" and n == 5 else "HEALTHY",
                doc_url=critical if status == "CRITICAL" else base.doc_url,
                previous_since=ago(days=n, hours=n))
        for n, status in enumerate(("AT_RISK", "AT_RISK", "CRITICAL", "AT_RISK", "AT_RISK",
                                    "CRITICAL"), start=1)
    ]
    group.append(replace(base, kind=NoticeKind.RECOVERED, phone_number="+12025550207",
                         line_id="sample-0207", name="Support 7", from_status="AT_RISK",
                         to_status="HEALTHY",
                         previous_since=ago(hours=7, minutes=40), doc_url=f"{GUIDE}#healthy"))
    digest = Digest(
        start=ago(hours=24), end=now,
        degraded=(DegradedLine(account, "sample-0203", "+12025550203", "CRITICAL",
                               ago(hours=5, minutes=12), critical, "Support 3"),
                  DegradedLine(account, base.line_id, base.phone_number, "AT_RISK",
                               ago(hours=19), base.doc_url, base.name)),
        changes=(DigestChange(ago(hours=5, minutes=12), account, "sample-0203", "+12025550203",
                              "AT_RISK", "CRITICAL", timedelta(hours=2), critical, "Support 3"),
                 DigestChange(ago(hours=7, minutes=12), account, "sample-0203", "+12025550203",
                              "HEALTHY", "AT_RISK", timedelta(days=12), base.doc_url,
                              "Support 3"),
                 DigestChange(ago(hours=19), account, base.line_id, base.phone_number,
                              "HEALTHY", "AT_RISK", timedelta(days=6), base.doc_url, base.name)),
        change_count=3,
        time_degraded=(LineTime(account, "sample-0203", "+12025550203",
                                at_risk=timedelta(hours=2),
                                critical=timedelta(hours=5, minutes=12),
                                other=timedelta(0), name="Support 3"),
                       LineTime(account, base.line_id, base.phone_number,
                                at_risk=timedelta(hours=19), critical=timedelta(0),
                                other=timedelta(0), name=base.name)),
        polls=(PollHealth(account, successes=1436, errors=4, last_success=ago(seconds=40),
                          last_error="HTTP 503 from the Linq API (trace 7d1c…)"),),
    )
    polls_failing = Trouble(TroubleKind.POLLS_FAILING, account, since=ago(minutes=12),
                            failures=12, last_success=ago(minutes=13),
                            last_error="connection timed out after 30s")
    return [
        ("degraded", [base]),
        ("degraded to CRITICAL", [replace(base, from_status="AT_RISK", to_status="CRITICAL",
                                          previous_since=ago(hours=3, minutes=5),
                                          doc_url=critical)]),
        ("improving", [replace(base, kind=NoticeKind.IMPROVED, from_status="CRITICAL",
                               to_status="AT_RISK", previous_since=ago(hours=1, minutes=20))]),
        ("recovered", [replace(base, kind=NoticeKind.RECOVERED, from_status="AT_RISK",
                               to_status="HEALTHY", previous_since=ago(hours=4, minutes=2),
                               doc_url=f"{GUIDE}#healthy", below="AT_RISK")]),
        ("no longer CRITICAL (to a min_status CRITICAL channel)", [replace(
            base, kind=NoticeKind.RECOVERED, from_status="CRITICAL", to_status="AT_RISK",
            previous_since=ago(hours=2, minutes=15), below="CRITICAL")]),
        ("flagged (service status)", [replace(
            base, to_status="HEALTHY", from_status=None, previous_since=None,
            service="FLAGGED", doc_url=GUIDE)]),
        ("unknown status", [replace(base, kind=NoticeKind.UNKNOWN, to_status="FLAGGED")]),
        ("first seen degraded", [replace(base, from_status=None, previous_since=None)]),
        ("reminder", [replace(base, kind=NoticeKind.REMINDER, at=ago(hours=3, minutes=10),
                              degraded_since=ago(hours=3, minutes=10))]),
        ("flapping", [replace(base, kind=NoticeKind.FLAPPING, sequence=(
            (ago(minutes=14), "AT_RISK"), (ago(minutes=11), "HEALTHY"),
            (ago(minutes=7), "AT_RISK"), (ago(minutes=4), "HEALTHY"),
            (ago(seconds=30), "AT_RISK")))]),
        ("settled", [replace(base, kind=NoticeKind.SETTLED, at=ago(minutes=45),
                             previous_since=ago(minutes=49))]),
        ("escalated (escalate_after)", [replace(
            base, from_status="AT_RISK", to_status="CRITICAL", at=ago(minutes=31),
            previous_since=ago(hours=3, minutes=5), doc_url=critical,
            reason="Escalated: at or above CRITICAL for 31m.")]),
        ("silence ended, line still degraded", [replace(
            base, at=ago(hours=4, minutes=2),
            reason="A silence on this line ended while it was still degraded.")]),
        ("grouped (7 lines)", group),
        ("quiet hours ended (summary)", Held([
            base, replace(group[0], at=ago(hours=6)), replace(group[3], at=ago(hours=2))])),
        ("digest", digest),
        ("trouble: polls failing", polls_failing),
        ("trouble cleared", replace(polls_failing, cleared_at=now)),
        ("trouble: deliveries failing",
         Trouble(TroubleKind.DELIVERY_FAILING, "pager", since=ago(minutes=30), failures=9,
                 last_error="HTTP 500 from the channel")),
    ]
