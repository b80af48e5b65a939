"""Receiving and applying webhooks: verify → record (idempotent) → answer → apply.

``receive`` does what must happen before the 2xx: the signature check, the parse and the
durable, idempotent record. ``apply_pending`` then applies recorded events of an account
through the same pure detection, routing and commit path as a poll, under the account
poller's lock. An event for a phone number no poll has shown yet stays ``unmatched`` and
is retried after every successful poll of its account; events left ``pending`` by a crash
are applied on the next start (``apply_pending`` runs after each poll).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from monitor.core.event import plan_status_update
from monitor.core.model import Message, Notice, TransitionKind
from monitor.core.render import render_notice
from monitor.core.route import ChannelRule
from monitor.core.service import render_service_notice
from monitor.errors import StoreError, WebhookMalformed
from monitor.metrics import Metrics
from monitor.poller import AccountPoller
from monitor.store.state import Outgoing
from monitor.store.webhook_events import StoredEvent, commit_event, open_events, record_event
from monitor.webhooks.event import STATUS_UPDATED, parse_envelope
from monitor.webhooks.verify import Signer, verify

log = logging.getLogger(__name__)


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
        pollers: Mapping[str, AccountPoller],
        signers: Sequence[Signer],
        metrics: Metrics,
        *,
        channels: list[ChannelRule],
        notify_recovery: bool,
        clock: Callable[[], datetime],
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._pollers = pollers
        self._signers = list(signers)
        self._metrics = metrics
        self._channels = channels
        self._notify_recovery = notify_recovery
        self._clock = clock
        self.on_queued = on_queued
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

    async def _apply_logged(self, account: str) -> None:
        try:
            await self.apply_pending(account)
        except StoreError as exc:
            # The events stay pending; the next poll of the account tries them again.
            log.error("applying webhook events failed (will retry after the next poll): %s",
                      exc, extra={"account": account})

    async def apply_pending(self, account: str) -> int:
        """Apply every open event of ``account``, oldest first. Returns how many changed a line."""
        poller = self._pollers.get(account)
        if poller is None:
            return 0
        events = await asyncio.to_thread(open_events, self._sessions, account)
        if not events:
            return 0
        await poller.ensure_loaded()
        changed = queued = 0
        for event in events:
            async with poller.lock:
                notices = await self._apply_one(poller, event)
            if notices is not None:
                changed += 1
                queued += notices
        if queued:
            self.on_queued()
        return changed

    async def _apply_one(self, poller: AccountPoller, event: StoredEvent) -> int | None:
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
        plan = plan_status_update(
            previous, new_reputation=update.new_reputation, new_status=update.new_status,
            changed_at=update.changed_at, received_at=event.received_at,
            channels=self._channels, notify_recovery=self._notify_recovery,
        )
        if plan.state is previous:
            note = "older than what is known" if plan.stale else "nothing new"
            await asyncio.to_thread(commit_event, self._sessions, event, state="ignored",
                                    note=note, now=now)
            return None
        outgoing = []
        for n in plan.notices:
            hold = poller.hold(n.transition)
            outgoing.append(Outgoing(n, _render(n), now + hold if hold else None))
        committed = await asyncio.to_thread(
            commit_event, self._sessions, event, state="applied", note=None, now=now,
            line=plan.state, transitions=plan.transitions, outgoing=outgoing)
        if not committed:
            return None  # another worker applied it
        poller.remember_event(plan.state, plan.transitions)
        return len(outgoing)


def _render(notice: Notice) -> Message:
    if notice.transition.kind is TransitionKind.SERVICE:
        return render_service_notice(notice)
    return render_notice(notice)
