"""Chat health of a line, summarised: what the WATCH early warning is decided from."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

CHAT_STATUSES = ("HEALTHY", "AT_RISK", "CRITICAL", "OPTED_OUT")

@dataclass(frozen=True, slots=True)
class WorstChat:
    chat_id: str
    status: str            # AT_RISK | CRITICAL | OPTED_OUT (or any unknown string, kept verbatim)
    changed_at: datetime   # health_status.updated_at
    doc_url: str | None

@dataclass(frozen=True, slots=True)
class ChatHealthSummary:
    """One line's chats active in the window (updated_at within it), by health status."""
    account: str
    phone_number: str                 # E.164, the line (the handle with is_me: true)
    counts: dict[str, int]            # status -> chats active in the window with that status
    active: int                       # chats active in the window (sum of counts)
    # up to 15: CRITICAL first, then AT_RISK, then OPTED_OUT; newest change first
    worst: tuple[WorstChat, ...]
    observed_at: datetime             # when this summary was computed (UTC)

    @property
    def unhealthy(self) -> int:       # AT_RISK + CRITICAL
        return self.counts.get("AT_RISK", 0) + self.counts.get("CRITICAL", 0)

    @property
    def opted_out(self) -> int:
        return self.counts.get("OPTED_OUT", 0)


# ---------------------------------------------------------------------------------------
# The WATCH early warning: thresholds and the pure assessment (owned by the decision side).
#
# Linq: a line's reputation follows "patterns across the conversations on the line", and
# "many AT_RISK or CRITICAL chats on a single line increase the risk of line flagging".
# WATCH says so before Linq's own status moves. It must not cry wolf: every signal needs
# enough chats to mean something (``min_active``), and a line leaves WATCH only once every
# signal is back below a lower exit level (hysteresis), so a share hovering at a threshold
# does not flap.


@dataclass(frozen=True, slots=True)
class WatchThresholds:
    """When a HEALTHY line goes on WATCH, and when it leaves it (see docs/early-warning.md).

    Defaults, for a line with a few dozen active chats (Linq's guidance names no number):
    - ``min_active`` 10: below ten chats active in the window, one or two bad chats swing
      the share by 10-50 points; the share and fast-rise signals wait for ten.
    - ``enter_share`` 0.25 / ``exit_share`` 0.10: one conversation in four unhealthy is
      far above what a line with ordinary traffic shows (a few percent), yet early enough
      to act on before Linq's status moves; it clears well below that, so noise near the
      entry level does not flap. 0.20 warned falsely on 20-chat lines about once per 46
      line-days of simulated noise; 0.25 about once per 1,700, and once per 40,000 with
      the noise check below (bench/watch.py, docs/early-warning.md).
    - ``enter_unhealthy`` 10 / ``exit_unhealthy`` 5: "many AT_RISK or CRITICAL chats",
      whatever the share: on a line with dozens of chats 10 unhealthy ones are a small
      share but already a pattern Linq can see. Past about 60 active chats ordinary
      traffic shows ten at times (200 chats at 3 %: 8 % of the time), so the count too
      needs the noise check below (100 chats: 13, 500: 35), and it clears below the
      larger of ``exit_unhealthy`` and that traffic's average + 1 (500 chats: 16).
    - ``enter_opted_out`` 0 (off) / ``exit_opted_out`` 2: opt-outs (STOP) are shown with
      every summary but do not warn by default. Linq names AT_RISK and CRITICAL chats as
      the flagging risk, not opt-outs, and an opt-out is for good, so a count of them in
      the window piles up on lines with ordinary traffic: at 5 it made 13 of the 15 false
      warnings of 600,000 simulated line-days and every false warning the daemon runs
      had (bench/RESULTS.md). Set it for lines whose recipients rarely opt out.
    - ``rise_share`` 0.15 within ``rise_within`` 24h: a jump of 15 points in a day is the
      slope signal. It passes the same noise check, and a count that passes it is close to
      a warning already, so the rise comes first only on lines of some 30-50 active chats,
      by a chat or two (40 chats: 1 -> 9 in a day, where the share and the count wait for
      10); on twenty chats it needs the 7 the share needs and adds no false warning
      (bench/watch.py). At 0.25, the share level, it could never come first at all.
      ``rise_share`` 0 turns it off.
    - ``baseline_share`` 0.03 / ``noise_chance`` 1e-5: the share, the count and the rise
      count only when the line has more unhealthy chats than ordinary traffic shows: if each chat
      were unhealthy with probability ``baseline_share`` (about what a line with ordinary
      traffic has), that many of the line's active chats would be unhealthy at once with
      probability below ``noise_chance`` (``noise_floor``). On twenty chats that is 7
      (35 %), on forty 9, on a hundred 13, on 500 35; from about 35 active chats up the
      25 % share is the higher bar and the gate changes nothing for it. Six of twenty
      (30 %) is what the noise of bench/watch.py sustained for 36 h on one line
      (docs/early-warning.md: no rule on the line's own counts tells it from the souring
      line before 18 h ahead).
      ``baseline_share`` 0 turns the gate off.
    """

    min_active: int = 10
    enter_share: float = 0.25
    exit_share: float = 0.10
    enter_unhealthy: int = 10
    exit_unhealthy: int = 5
    enter_opted_out: int = 0
    exit_opted_out: int = 2
    rise_share: float = 0.15
    rise_within: timedelta = timedelta(hours=24)
    baseline_share: float = 0.03
    noise_chance: float = 1e-5


DEFAULT_THRESHOLDS = WatchThresholds()
# Share samples kept per line for the fast-rise signal: summaries come only when a line's
# chats change, so a day rarely has more; past that the oldest go (fewer warnings, never more).
_HISTORY_LIMIT = 32


@dataclass(frozen=True, slots=True)
class Assessment:
    """A line's chats judged against its thresholds (``assess``)."""

    watch: bool
    reasons: tuple[str, ...] = ()  # why it is (still) on WATCH; empty when it is not
    # The summary judged; None for a line found on WATCH in the database after a restart,
    # before its chats are summarised again.
    summary: ChatHealthSummary | None = None
    # (observed_at, unhealthy share) of the summaries inside rise_within, plus the last one
    # before it (the share in force when the window began), oldest first; this one last.
    history: tuple[tuple[datetime, float], ...] = ()

    @property
    def worst(self) -> tuple[WorstChat, ...]:
        return self.summary.worst if self.summary is not None else ()


def share_of(summary: ChatHealthSummary) -> float:
    """AT_RISK + CRITICAL among the chats active in the window (0 with none active)."""
    return summary.unhealthy / summary.active if summary.active > 0 else 0.0


@lru_cache(maxsize=4096)
def noise_floor(active: int, baseline_share: float, noise_chance: float) -> int:
    """The fewest unhealthy chats among ``active`` that ordinary traffic shows with
    probability below ``noise_chance``: the smallest k with P(X >= k) < ``noise_chance``
    for X ~ Binomial(``active``, ``baseline_share``). 0 when ``baseline_share`` is 0 (no
    gate); ``active`` + 1 when even all of them are that likely."""
    if baseline_share <= 0 or active <= 0:
        return 0
    if baseline_share >= 1:
        return active + 1
    log_p, log_q = math.log(baseline_share), math.log1p(-baseline_share)

    def pmf(k: int) -> float:
        return math.exp(math.lgamma(active + 1) - math.lgamma(k + 1)
                        - math.lgamma(active - k + 1) + k * log_p + (active - k) * log_q)

    # Sum the upper tail from the top down, starting where its terms are still far below
    # anything a float adds up (40 standard deviations above the mean), so a line with
    # thousands of chats costs a few hundred terms, once (cached).
    mean = active * baseline_share
    top = min(active, math.ceil(mean + 40 * math.sqrt(mean * (1 - baseline_share)) + 10))
    tail = 0.0
    for k in range(top, -1, -1):
        tail += pmf(k)
        if tail >= noise_chance:
            return k + 1
    return 0


def assess(summary: ChatHealthSummary, thresholds: WatchThresholds = DEFAULT_THRESHOLDS,
           previous: Assessment | None = None) -> Assessment:
    """Whether the line's chats put it on WATCH, given what the last assessment said.

    Enters when any signal reaches its enter level; stays while any signal is at or above
    its exit level; leaves when all are below. Pure: the summary's ``observed_at`` is the
    clock.
    """
    t = thresholds
    now = summary.observed_at
    share = share_of(summary)
    enough = summary.active >= t.min_active
    # Entering on any unhealthy signal also needs more unhealthy chats than ordinary
    # traffic shows on that many (noise_floor): without it a line with 500 active chats,
    # 3 % of them unhealthy as usual, would sit on WATCH for good on the count alone.
    # Staying needs less (the exit levels), but never less than that traffic's average.
    floor = noise_floor(summary.active, t.baseline_share, t.noise_chance)
    unusual = enough and summary.unhealthy >= floor
    count_level = max(t.enter_unhealthy, floor)
    history = _history(previous, now, t.rise_within)
    enter: list[str] = []
    if unusual and share >= t.enter_share:
        enter.append(_share_text(summary, share, t.enter_share))
    if summary.unhealthy >= count_level:
        enter.append(f"{summary.unhealthy} chats AT_RISK or CRITICAL "
                     f"(WATCH from {count_level})")
    if t.enter_opted_out and summary.opted_out >= t.enter_opted_out:
        enter.append(f"{summary.opted_out} chats opted out (WATCH from {t.enter_opted_out})")
    if unusual and t.rise_share > 0 and history:
        low = min(s for _, s in history)
        if share - low >= t.rise_share - 1e-9:
            enter.append(f"unhealthy share rose from {low:.0%} to {share:.0%} within "
                         f"{_hours(t.rise_within)} (WATCH on a rise of {t.rise_share:.0%})")
    watch = bool(enter)
    reasons = enter
    if not watch and previous is not None and previous.watch:
        hold: list[str] = []
        if enough and share >= t.exit_share:
            hold.append(_share_text(summary, share, t.exit_share, clears=True))
        ordinary = math.floor(summary.active * t.baseline_share)
        count_exit = max(t.exit_unhealthy, ordinary + 1)
        if summary.unhealthy >= count_exit:
            hold.append(f"{summary.unhealthy} chats AT_RISK or CRITICAL "
                        f"(clears below {count_exit})")
        if t.enter_opted_out and summary.opted_out >= t.exit_opted_out:
            hold.append(f"{summary.opted_out} chats opted out "
                        f"(clears below {t.exit_opted_out})")
        watch, reasons = bool(hold), hold
    return Assessment(watch, tuple(reasons), summary, (*history, (now, share)))


def _history(previous: Assessment | None, now: datetime, within: timedelta
             ) -> tuple[tuple[datetime, float], ...]:
    """Earlier share samples that still matter at ``now`` for the fast-rise signal."""
    if previous is None:
        return ()
    samples = [s for s in previous.history if s[0] <= now]
    start = now - within
    inside = [s for s in samples if s[0] > start]
    before = [s for s in samples if s[0] <= start]
    # The last sample before the window is the share that held when the window began.
    kept = ([before[-1]] if before else []) + inside
    return tuple(kept[-_HISTORY_LIMIT:])


def _share_text(summary: ChatHealthSummary, share: float, level: float, *,
                clears: bool = False) -> str:
    where = f"clears below {level:.0%}" if clears else f"WATCH from {level:.0%}"
    return (f"{summary.unhealthy} of {summary.active} active chats AT_RISK or CRITICAL "
            f"({share:.0%}; {where})")


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g}h" if hours >= 1 else f"{span.total_seconds() / 60:g}m"


def chat_lines(chats: tuple[WorstChat, ...], reasons: tuple[str, ...]) -> list[str]:
    """The part of a WATCH message about the chats: why, then the worst chats."""
    lines = [f"Why: {'; '.join(reasons)}."] if reasons else []
    if chats:
        lines.append(f"Worst chats ({len(chats)}):")
        lines += [f"  {c.status:<9} chat {c.chat_id} since "
                  f"{c.changed_at.strftime('%Y-%m-%d %H:%M UTC')}"
                  + (f"  {c.doc_url}" if c.doc_url else "") for c in chats]
    return lines
