"""Receiving and applying webhooks: verify → record (idempotent) → answer → apply.

``receive`` does what must happen before the 2xx: the signature check, the parse and the
durable, idempotent record. ``apply_pending`` then applies recorded events of an account
through the same pure detection, alert policy and commit path as a poll, under the account
poller's lock. An event for a phone number no poll has shown yet stays ``unmatched`` and
is retried after every successful poll of its account; events left ``pending`` by a crash
are applied on the next start (``apply_pending`` runs after each poll).

With several replicas, any replica may receive and record an event (the unique event id
makes that once), but only the replica holding the account's lease applies it, under that
lease's fence: at once if the receiver is the holder, otherwise at the holder's next poll
or policy tick.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from monitor.core.event import EventPlan
from monitor.core.model import LineState, Transition
from monitor.errors import LeaseLost, StoreError, WebhookMalformed
from monitor.metrics import Metrics
from monitor.store.leases import Fence
from monitor.store.state import Outgoing
from monitor.store.webhook_events import StoredEvent, commit_event, open_events, record_event
from monitor.webhooks.chats import ChatEvents, is_chat_event
from monitor.webhooks.event import STATUS_UPDATED, StatusUpdate, parse_envelope
from monitor.webhooks.verify import Signer, verify

log = logging.getLogger(__name__)


class EventTarget(Protocol):
    """What applying an event needs of an account's poller (``service.poller``): its lock
    and its lines in memory, and the policy's plan for an update, so that a webhook and a
    poll change a line through the same rules, one at a time."""

    account: str
    lock: asyncio.Lock

    async def ensure_loaded(self) -> None: ...

    def find(self, phone_or_id: str) -> LineState | None: ...

    async def refresh_silences(self) -> None: ...

    def plan_event(self, previous: LineState, update: StatusUpdate, *, received_at: datetime,
                   now: datetime) -> tuple[EventPlan, list[Outgoing]]: ...

    def remember_event(self, state: LineState, transitions: Sequence[Transition]) -> None: ...


class Leases(Protocol):
    """Whether this process holds an account's lease, the fence its writes go under, and
    whom to tell when a write finds the lease gone (``ha.coordinator.Coordinator``)."""

    def holds(self, account: str) -> bool: ...

    def fence(self, account: str) -> Fence | None: ...

    def lost(self, account: str) -> None: ...


class Alone:
    """The leases of a process alone (one-shot commands, tests): every account is its own
    and its writes go unfenced."""

    def holds(self, account: str) -> bool:
        return True

    def fence(self, account: str) -> Fence | None:
        return None

    def lost(self, account: str) -> None:
        return None


ALONE = Alone()


@dataclass(frozen=True, slots=True)
class Receipt:
    account: str
    event_id: str
    duplicate: bool
    event_type: str


class WebhookProcessor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        pollers: Mapping[str, EventTarget],
        signers: Sequence[Signer],
        metrics: Metrics,
        *,
        clock: Callable[[], datetime],
        leases: Leases = ALONE,
        on_queued: Callable[[], None] = lambda: None,
        chats: ChatEvents | None = None,
    ) -> None:
        self._sessions = sessions
        self._chats = chats  # message.* / chat.* events: their chat's health (webhooks/chats.py)
        self._pollers = pollers
        self._signers = list(signers)
        self._metrics = metrics
        self._clock = clock
        # Any replica records an event; only the account's lease holder applies it, fenced.
        self._leases = leases
        self._on_queued = on_queued
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return bool(self._signers)

    async def receive(self, body: bytes, headers: Mapping[str, str]) -> Receipt:
        """Verify and durably record one delivery, then schedule its processing.

        Raises WebhookRejected (401), WebhookMalformed (400) or StoreError (503: Linq
        retries). Returns once the event is committed (or known to be a duplicate).
        """
        verified = verify(body, headers, self._signers)
        envelope = parse_envelope(body)
        event_id = verified.webhook_id or envelope.event_id
        if event_id is None:
            raise WebhookMalformed("no webhook-id header and no event_id in the body")
        if len(event_id) > 255 or not event_id.isprintable():
            raise WebhookMalformed("webhook-id is longer than 255 characters or not printable")
        acted_on = envelope.event_type == STATUS_UPDATED
        row_id = await asyncio.to_thread(
            record_event, self._sessions, event_id=event_id, account=verified.account,
            event_type=envelope.event_type, payload=body, received_at=self._clock(),
            state="pending" if acted_on else "other",
        )
        if row_id is not None and acted_on:
            self.schedule(verified.account)
        if row_id is not None and self._chats is not None and is_chat_event(envelope.event_type):
            self._chats.schedule(verified.account, body)
        return Receipt(verified.account, event_id, row_id is None, envelope.event_type)

    def schedule(self, account: str) -> None:
        """Apply the account's open events in the background (the HTTP answer is not held)."""
        task = asyncio.create_task(self._apply_logged(account), name=f"webhooks:{account}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for scheduled processing (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._chats is not None:
            await self._chats.drain()

    async def _apply_logged(self, account: str) -> None:
        try:
            await self.apply_pending(account)
        except LeaseLost as exc:
            log.warning("webhook events left to the account's new holder: %s", exc,
                        extra={"account": account})
            self._leases.lost(account)
        except StoreError as exc:
            # The events stay pending; the next poll of the account tries them again.
            log.error("applying webhook events failed (will retry after the next poll): %s",
                      exc, extra={"account": account})

    async def apply_pending(self, account: str) -> int:
        """Apply every open event of ``account``, oldest first. Returns how many changed a line."""
        poller = self._pollers.get(account)
        if poller is None or not self._leases.holds(account):
            return 0  # the holder of the account's lease applies them
        events = await asyncio.to_thread(open_events, self._sessions, account)
        if not events:
            return 0
        # Once per batch: a silence stored a moment ago applies to these events.
        await poller.refresh_silences()
        changed = queued = 0
        for event in events:
            async with poller.lock:
                await poller.ensure_loaded()
                notices = await self._apply_one(poller, event)
            if notices is not None:
                changed += 1
                queued += notices
        if queued:
            self._on_queued()
        return changed

    async def _apply_one(self, poller: EventTarget, event: StoredEvent) -> int | None:
        """Apply one event; the number of notifications it queued, None if no line changed."""
        now = self._clock()
        try:
            update = parse_envelope(event.payload).update
        except WebhookMalformed as exc:  # recorded only after parsing, so unexpected
            await asyncio.to_thread(commit_event, self._sessions, event, state="ignored",
                                    note=str(exc), now=now)
            return None
        assert update is not None
        previous = poller.find(update.phone_number)
        if previous is None:
            if event.state != "unmatched":
                await asyncio.to_thread(commit_event, self._sessions, event, state="unmatched",
                                        note="no such line known yet", now=now)
            return None
        plan, outgoing = poller.plan_event(previous, update, received_at=event.received_at,
                                           now=now)
        if plan.state is previous:
            note = "older than what is known" if plan.stale else "nothing new"
            await asyncio.to_thread(commit_event, self._sessions, event, state="ignored",
                                    note=note, now=now)
            return None
        committed = await asyncio.to_thread(
            commit_event, self._sessions, event, state="applied", note=None, now=now,
            line=plan.state, transitions=plan.transitions, outgoing=outgoing,
            fence=self._leases.fence(poller.account))
        if not committed:
            return None  # another worker applied it
        poller.remember_event(plan.state, plan.transitions)
        return sum(1 for o in outgoing if not o.notice.silenced)
