"""The silences a running monitor decides with, re-read from the database when it decides.

Whether a line is silenced is decided when its notifications are planned (a poll's
changes, a policy round, a batch of webhook events), and that decision is stored with the
line (``told``) and the notification (``silenced``). So the silences must be the database's
at that moment, not a copy a few seconds old: every planning step calls ``refresh`` just
before it decides. ``refresh`` is one query on the ``ends_at`` index that returns the
silences not yet ended (a handful of rows, whatever the size of the fleet), once per step,
never per line. Hence, once ``silence add`` (or ``silence expire``) has returned, every
change planned afterwards applies it, in this process and on every replica sharing the
database.

What it cannot reach: a notification planned before the silence was stored (one already
waiting out ``group_wait``, an audit, quiet hours or a retry) goes out as planned. The
policy's record says that channel heard it; suppressing it at send time would leave that
record wrong, and the channel would then not hear of the line when the silence ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from monitor.core.model import LineMeta, LineRef
from monitor.core.silence import Silence, silenced_by
from monitor.errors import StoreError
from monitor.store.silences import load_silences

log = logging.getLogger(__name__)


class Silences:
    """The silences as last read; ``silenced`` answers from them, ``refresh`` re-reads."""

    def __init__(self, sessions: sessionmaker[Session], *,
                 clock: Callable[[], datetime]) -> None:
        self._sessions = sessions
        self._clock = clock
        self._known: list[Silence] = []

    async def refresh(self) -> bool:
        """Re-read the silences not yet ended. When the database cannot be read, the last
        known ones stay in force (logged) and False is returned: deciding with them beats
        not deciding, and the step that follows would fail on the same database anyway."""
        try:
            self._known = await asyncio.to_thread(load_silences, self._sessions,
                                                  self._clock())
        except StoreError as exc:
            log.error("cannot read silences (keeping the last known): %s", exc)
            return False
        return True

    def silenced(self, line: LineRef, meta: LineMeta, now: datetime) -> bool:
        """Whether an active silence covers the line at ``now``."""
        return silenced_by(self._known, line, meta.labels, now) is not None
