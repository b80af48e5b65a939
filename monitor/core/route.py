"""Which channel hears about which transition. Pure.

A channel with ``min_status`` S is "engaged" with a line while the line's rank is >= S.
It hears every status change while engaged (worse, better, unknown) and, once the line
drops below S, one recovery notice if it was told about the episode. Recoveries therefore
go to exactly the channels that received the degradation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from monitor.core import status as st
from monitor.core.model import (
    LineState,
    Notice,
    NoticeKind,
    Transition,
    TransitionKind,
    channel_set,
)


@dataclass(frozen=True, slots=True)
class ChannelRule:
    name: str
    min_rank: int


def route(
    transition: Transition,
    state: LineState,
    channels: Sequence[ChannelRule],
    *,
    notify_recovery: bool,
) -> tuple[list[Notice], LineState]:
    """Return the notices a transition causes and the state with updated ``alerted_channels``."""
    if transition.kind is TransitionKind.REMOVED or not transition.status_changed:
        return [], state
    to_rank = st.rank(transition.to_status)
    from_rank = st.rank(transition.from_status) if transition.from_status is not None else -1
    notices: list[Notice] = []
    alerted = set(state.alerted_channels)
    for channel in channels:
        if to_rank >= channel.min_rank:
            notices.append(Notice(channel.name, _kind(transition.to_status, from_rank, to_rank),
                                  transition))
            alerted.add(channel.name)
        elif channel.name in alerted:
            alerted.discard(channel.name)
            if notify_recovery:
                notices.append(Notice(channel.name, NoticeKind.RECOVERED, transition))
    new_alerted = channel_set(alerted)
    if new_alerted == state.alerted_channels:
        return notices, state
    return notices, replace(state, alerted_channels=new_alerted)


def _kind(to_status: str, from_rank: int, to_rank: int) -> NoticeKind:
    if not st.is_known(to_status):
        return NoticeKind.UNKNOWN
    return NoticeKind.IMPROVED if to_rank < from_rank else NoticeKind.DEGRADED
