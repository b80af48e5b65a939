"""Receiving and applying webhooks: verify → record (idempotent) → answer → apply.

``receive`` does what must happen before the 2xx: the signature check, the parse and the
durable, idempotent record. Applying is then the work of one applier per account
(``schedule`` wakes it; wakes while it runs are coalesced into one more round), which
applies recorded events in batches through the same pure detection, alert policy and
commit path as a poll, under the account poller's lock, one transaction per batch.

Events for known lines never wait behind a backlog: the applier reads only events not yet
tried (``pending``), and looks each line up by number in memory. An event for a number no
poll has shown yet is settled ``unmatched`` (a batch of them is one UPDATE) and retried
only after a successful poll that brings its number in (``schedule(retry_unmatched=True)``
after every poll); unmatched events older than the account's
``webhook_unmatched_expiry`` are then settled ``expired`` and counted
(``linq_reputation_webhook_events_expired_total``). Events left ``pending`` by a crash are
applied after the next start's first poll.

What each event type does is one entry in ``WebhookProcessor._appliers`` (a dict, like
``event.PARSERS``): ``status_updated`` changes a line as a poll would; ``released``
removes the line; ``assigned`` brings the account's next poll forward (the event carries
neither the line's id nor its reputation, which only the poll gives); types outside
``event.APPLIED`` (``forwarding_updated``) are recorded and logged when received.

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
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from monitor.core.event import EventPlan, plan_release
from monitor.core.model import LineState, Transition
from monitor.errors import LeaseLost, StoreError, WebhookMalformed
from monitor.metrics import Metrics
from monitor.store.leases import Fence
from monitor.store.state import Outgoing
from monitor.store.webhook_events import (
    NewEvent,
    Settlement,
    StoredEvent,
    commit_events,
    expire_unmatched,
    pending_events,
    record_events,
    unmatched_for,
    unmatched_numbers,
)
from monitor.webhooks.chats import ChatEvents, is_chat_event
from monitor.webhooks.event import (
    APPLIED,
    EventData,
    ForwardingChange,
    InventoryChange,
    StatusUpdate,
    parse_envelope,
)
from monitor.webhooks.verify import Signer, verify

log = logging.getLogger(__name__)

# Events settled per transaction: a burst of thousands costs a handful of commits, and a
# poll waits for at most one batch to take the account's lock.
BATCH = 500
# Unmatched events older than this are expired after a successful poll. Linq retries a
# delivery for about 25 minutes and a line Linq lists appears at the next poll (every
# minute by default), so an event whose number no poll has shown for a day is for a line
# that is not this account's (or is gone); that poll shows the reputation itself anyway.
UNMATCHED_EXPIRY = timedelta(days=1)


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
    known: bool = True  # an event type we act on or record (others: "ignored")


@dataclass(frozen=True, slots=True)
class _Decision:
    settlement: Settlement
    poll_now: bool = False  # bring the account's next poll forward once committed


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
        on_assigned: Callable[[str], None] = lambda account: None,
        unmatched_expiry: Mapping[str, timedelta] | None = None,
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
        self._on_assigned = on_assigned  # asks for a poll of the account now
        self._expiry = dict(unmatched_expiry or {})
        # Recording and applying take turns to write: SQLite has one writer, and a second
        # thread waiting on its lock sleeps in steps of up to 100 ms (a burst of
        # deliveries then crawled at ~280/s). On PostgreSQL it costs nothing measurable.
        self._writing = asyncio.Lock()
        self._recorder = _Recorder(sessions, self._writing)
        # One applier task per account at most; a wake while it runs sets ``_again``.
        self._appliers: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._retry: set[str] = set()
        self._apply: dict[type, Callable[[EventTarget, StoredEvent, EventData,
                                          dict[str, LineState], datetime], _Decision]] = {
            StatusUpdate: self._status_update,
            InventoryChange: self._inventory_change,
        }

    @property
    def enabled(self) -> bool:
        return bool(self._signers)

    async def receive(self, body: bytes, headers: Mapping[str, str]) -> Receipt:
        """Verify and durably record one delivery, then wake the account's applier.

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
        acted_on = envelope.event_type in APPLIED
        row_id = await self._recorder.record(NewEvent(
            event_id=event_id, account=verified.account, event_type=envelope.event_type,
            payload=body, received_at=self._clock(),
            state="pending" if acted_on else "other", phone_number=envelope.phone_number))
        if row_id is not None and acted_on:
            self.schedule(verified.account)
        if row_id is not None and isinstance(envelope.data, ForwardingChange):
            change = envelope.data
            log.info("forwarding of %s changed from %s to %s (recorded; no alert)",
                     change.phone_number or "-", change.before or "none",
                     change.after or "none", extra={"account": verified.account})
        if row_id is not None and self._chats is not None and is_chat_event(envelope.event_type):
            self._chats.schedule(verified.account, body)
        return Receipt(verified.account, event_id, row_id is None, envelope.event_type,
                       known=envelope.data is not None)

    def schedule(self, account: str, *, retry_unmatched: bool = False) -> None:
        """Wake the account's applier (in the background: the HTTP answer is not held).

        ``retry_unmatched``: after a successful poll, also retry unmatched events whose
        number is now known, and expire the old ones.
        """
        if retry_unmatched:
            self._retry.add(account)
        if account in self._appliers:
            self._again.add(account)  # coalesced: one more round once this one ends
            return
        task = asyncio.create_task(self._applier(account), name=f"webhooks:{account}")
        self._appliers[account] = task

    async def drain(self) -> None:
        """Wait until every applier is idle (shutdown, tests)."""
        while self._appliers:
            await asyncio.gather(*list(self._appliers.values()), return_exceptions=True)
        if self._chats is not None:
            await self._chats.drain()

    async def _applier(self, account: str) -> None:
        try:
            while True:
                self._again.discard(account)
                retry = account in self._retry
                self._retry.discard(account)
                await self._apply_logged(account, retry_unmatched=retry)
                if account not in self._again:
                    return
        finally:
            del self._appliers[account]

    async def _apply_logged(self, account: str, *, retry_unmatched: bool) -> None:
        try:
            await self.apply_pending(account, retry_unmatched=retry_unmatched)
        except LeaseLost as exc:
            log.warning("webhook events left to the account's new holder: %s", exc,
                        extra={"account": account})
            self._leases.lost(account)
        except StoreError as exc:
            # The events stay pending; the next poll of the account tries them again.
            log.error("applying webhook events failed (will retry after the next poll): %s",
                      exc, extra={"account": account})

    async def apply_pending(self, account: str, *, retry_unmatched: bool = True) -> int:
        """Apply the account's pending events, oldest first, then (``retry_unmatched``) the
        unmatched ones a known line can now take. Returns how many changed a line."""
        poller = self._pollers.get(account)
        if poller is None or not self._leases.holds(account):
            return 0  # the holder of the account's lease applies them
        changed = queued = 0
        refreshed = expire = False
        while True:
            events = await asyncio.to_thread(pending_events, self._sessions, account,
                                             limit=BATCH)
            if retry_unmatched and not events:
                events = await self._matchable(poller, expire=not expire)
                expire = True
                retry_unmatched = len(events) == BATCH  # more may be waiting
            if not events:
                break
            if not refreshed:  # once per round: a silence stored a moment ago applies
                await poller.refresh_silences()
                refreshed = True
            batch = await self._apply_batch(poller, events)
            if batch is None:
                break  # another worker settled some of them: the next round re-reads
            changed += batch[0]
            queued += batch[1]
        if queued:
            self._on_queued()
        return changed

    async def _matchable(self, poller: EventTarget, *, expire: bool) -> list[StoredEvent]:
        """Unmatched events whose number is a known line now (``expire``: the old rest
        expired first)."""
        now = self._clock()
        expiry = self._expiry.get(poller.account, UNMATCHED_EXPIRY)
        expired = 0
        if expire:
            expired = await asyncio.to_thread(expire_unmatched, self._sessions,
                                              poller.account, received_before=now - expiry,
                                              now=now)
        if expired:
            self._metrics.webhook_events_expired.labels(poller.account).inc(expired)
            log.info("expired %d unmatched webhook events (no such line within %s)",
                     expired, expiry, extra={"account": poller.account})
        numbers = await asyncio.to_thread(unmatched_numbers, self._sessions, poller.account)
        async with poller.lock:
            await poller.ensure_loaded()
            known = sorted(n for n in numbers if poller.find(n) is not None)
        if not known:
            return []
        return await asyncio.to_thread(unmatched_for, self._sessions, poller.account, known,
                                       limit=BATCH)

    async def _apply_batch(self, poller: EventTarget, events: Sequence[StoredEvent]
                           ) -> tuple[int, int] | None:
        """Plan ``events`` in order and commit them as one transaction. Returns (lines
        changed, notifications queued), or None if the batch was not committed."""
        async with poller.lock:
            await poller.ensure_loaded()
            now = self._clock()
            staged: dict[str, LineState] = {}  # lines as the batch's earlier events left them
            decisions: list[_Decision] = []
            for event in events:
                decision = self._decide(poller, event, staged, now)
                if decision.settlement.state == event.state:
                    continue  # still unmatched: nothing to write
                if decision.settlement.line is not None:
                    staged[decision.settlement.line.line_id] = decision.settlement.line
                decisions.append(decision)
            async with self._writing:
                committed = await asyncio.to_thread(
                    commit_events, self._sessions, [d.settlement for d in decisions],
                    now=now, fence=self._leases.fence(poller.account))
            if not committed:
                return None
            changed = queued = 0
            for decision in decisions:
                settled = decision.settlement
                if settled.line is not None:
                    poller.remember_event(settled.line, settled.transitions)
                    changed += 1
                    queued += sum(1 for o in settled.outgoing if not o.notice.silenced)
        if any(d.poll_now for d in decisions):
            self._on_assigned(poller.account)
        return changed, queued

    def _decide(self, poller: EventTarget, event: StoredEvent, staged: dict[str, LineState],
                now: datetime) -> _Decision:
        try:
            data = parse_envelope(event.payload).data
        except WebhookMalformed as exc:  # recorded only after parsing, so unexpected
            return _Decision(Settlement(event, "ignored", str(exc)))
        apply = self._apply.get(type(data))
        if data is None or apply is None:
            return _Decision(Settlement(event, "ignored", "not an event we apply"))
        return apply(poller, event, data, staged, now)

    def _status_update(self, poller: EventTarget, event: StoredEvent, data: EventData,
                       staged: dict[str, LineState], now: datetime) -> _Decision:
        assert isinstance(data, StatusUpdate)
        previous = _line(poller, staged, data.phone_number)
        if previous is None:
            return _Decision(Settlement(event, "unmatched", "no such line known yet"))
        plan, outgoing = poller.plan_event(previous, data, received_at=event.received_at,
                                           now=now)
        return _Decision(_settled(event, previous, plan, outgoing))

    def _inventory_change(self, poller: EventTarget, event: StoredEvent, data: EventData,
                          staged: dict[str, LineState], now: datetime) -> _Decision:
        assert isinstance(data, InventoryChange)
        previous = _line(poller, staged, data.phone_number)
        if data.assigned:
            if previous is not None:
                return _Decision(Settlement(event, "ignored", "line already known"))
            return _Decision(Settlement(event, "applied", "poll brought forward"),
                             poll_now=True)
        if previous is None:
            return _Decision(Settlement(event, "ignored", "no such line known"))
        plan = plan_release(previous, changed_at=data.changed_at,
                            received_at=event.received_at)
        return _Decision(_settled(event, previous, plan, []))


class _Recorder:
    """Group commit of received events: deliveries that arrive while a batch is being
    written go together in the next one, so a burst costs one transaction per batch,
    while a lone delivery is written at once. Each caller gets its own row id (or None
    for a duplicate), or the batch's StoreError, only once the batch is committed."""

    def __init__(self, sessions: sessionmaker[Session], writing: asyncio.Lock) -> None:
        self._sessions = sessions
        self._writing = writing
        self._waiting: list[tuple[NewEvent, asyncio.Future[int | None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, event: NewEvent) -> int | None:
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((event, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="webhooks:record")
        return await future

    async def _write(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
                try:
                    async with self._writing:
                        ids = await asyncio.to_thread(record_events, self._sessions,
                                                      [event for event, _ in batch])
                except Exception as exc:  # StoreError (503), or a bug: never leave one waiting
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), row_id in zip(batch, ids, strict=True):
                    if not future.done():  # a caller that went away is not answered
                        future.set_result(row_id)
        finally:
            self._writer = None


def _line(poller: EventTarget, staged: Mapping[str, LineState], phone: str
          ) -> LineState | None:
    """The present line with this number, as the batch's earlier events left it."""
    found = poller.find(phone)
    if found is None:
        return None
    line = staged.get(found.line_id, found)
    return line if line.present else None


def _settled(event: StoredEvent, previous: LineState, plan: EventPlan,
             outgoing: list[Outgoing]) -> Settlement:
    if plan.state is previous:
        note = "older than what is known" if plan.stale else "nothing new"
        return Settlement(event, "ignored", note)
    return Settlement(event, "applied", line=plan.state, transitions=plan.transitions,
                      outgoing=outgoing)
