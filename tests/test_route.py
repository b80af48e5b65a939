"""Which channel hears what: min_status, recoveries to exactly the channels that were told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.core.detect import detect_line
from monitor.core.model import LineState, NoticeKind, Observation
from monitor.core.route import ChannelRule, route

T0 = datetime(2026, 11, 1, tzinfo=UTC)
OPS = ChannelRule("ops", 1)  # AT_RISK and worse
PAGER = ChannelRule("pager", 2)  # CRITICAL and worse
CHANNELS = [OPS, PAGER]


class Line:
    """Feeds observations through detect + route, as the poller does."""

    def __init__(self, *, notify_recovery: bool = True) -> None:
        self.state: LineState | None = None
        self.minute = 0
        self.notify_recovery = notify_recovery

    def observe(self, status: str) -> list[tuple[str, NoticeKind]]:
        self.minute += 1
        state, transition = detect_line(
            self.state, Observation("L1", "+12025550001", status, None),
            account="main", now=T0 + timedelta(minutes=self.minute))
        assert state is not None
        notices = []
        if transition is not None:
            found, state = route(transition, state, CHANNELS,
                                 notify_recovery=self.notify_recovery)
            notices = [(n.channel, n.kind) for n in found]
        self.state = state
        return notices


def test_it_does_not_alert_a_new_healthy_line() -> None:
    assert Line().observe("HEALTHY") == []


def test_it_alerts_a_line_first_seen_degraded_once() -> None:
    line = Line()
    assert line.observe("CRITICAL") == [("ops", NoticeKind.DEGRADED),
                                        ("pager", NoticeKind.DEGRADED)]
    assert line.observe("CRITICAL") == []


def test_it_routes_by_min_status_and_recovers_where_it_alerted() -> None:
    line = Line()
    assert line.observe("HEALTHY") == []
    assert line.observe("AT_RISK") == [("ops", NoticeKind.DEGRADED)]
    assert line.observe("CRITICAL") == [("ops", NoticeKind.DEGRADED),
                                        ("pager", NoticeKind.DEGRADED)]
    # Better but still degraded: ops hears "improving"; for the pager it is over.
    assert line.observe("AT_RISK") == [("ops", NoticeKind.IMPROVED),
                                       ("pager", NoticeKind.RECOVERED)]
    assert line.observe("HEALTHY") == [("ops", NoticeKind.RECOVERED)]
    assert line.state.alerted_channels == frozenset()


def test_a_recovery_never_reaches_a_channel_that_missed_the_degradation() -> None:
    line = Line()
    line.observe("HEALTHY")
    assert line.observe("AT_RISK") == [("ops", NoticeKind.DEGRADED)]
    assert line.observe("HEALTHY") == [("ops", NoticeKind.RECOVERED)]


def test_it_can_stay_silent_on_recovery() -> None:
    line = Line(notify_recovery=False)
    line.observe("CRITICAL")
    assert line.observe("HEALTHY") == []
    assert line.state.alerted_channels == frozenset()


def test_it_alerts_an_unknown_status_everywhere_once() -> None:
    line = Line()
    line.observe("HEALTHY")
    assert line.observe("FLAGGED") == [("ops", NoticeKind.UNKNOWN), ("pager", NoticeKind.UNKNOWN)]
    assert line.observe("FLAGGED") == []
    assert line.observe("HEALTHY") == [("ops", NoticeKind.RECOVERED),
                                       ("pager", NoticeKind.RECOVERED)]
