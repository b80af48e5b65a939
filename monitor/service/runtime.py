"""Builds the long-lived objects from a Config: engine, sessions, clients, pollers, deliverer.

Shared by the daemon and the one-shot CLI commands, so ``poll`` runs the same code path as
``run``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.notifier import Channel
from monitor.alerts.outbox import Deliverer, DeliveryPolicy
from monitor.alerts.templates import Renderer
from monitor.api.audits import AuditClient
from monitor.api.client import LinqClient
from monitor.config import Config
from monitor.core import status as st
from monitor.core.audit import AuditBudget
from monitor.core.detect import Debounce
from monitor.core.directory import LineDirectory
from monitor.core.labels import Labeler
from monitor.core.model import Entry, LineMeta, LineRef, Message
from monitor.core.policy import NO_META, AlertPolicy, ChannelRule
from monitor.core.timing import ChannelTiming
from monitor.errors import SchemaMismatch, StoreError
from monitor.metrics import Metrics
from monitor.service.audits import AuditPolicy, AuditRunner
from monitor.service.chat_health import ChatHealth
from monitor.service.chats import ChatSweeper, SweepSettings
from monitor.service.poller import AccountPoller
from monitor.service.silences import Silences
from monitor.store import migrate
from monitor.store.engine import (
    describe_failure,
    make_engine,
    make_sessionmaker,
    safe_url,
    sqlite_path,
)
from monitor.store.state import load_lines
from monitor.webhooks.chats import ChatEvents
from monitor.webhooks.liveness import PushWatch
from monitor.webhooks.process import ALONE, Leases, WebhookProcessor
from monitor.webhooks.verify import Signer

log = logging.getLogger(__name__)

# How far back each refresh of another replica's account re-reads (refresh_directory).
DIRECTORY_OVERLAP = timedelta(minutes=1)

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop where it is installed (faster sockets), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def open_database(config: Config, *, upgrade: bool = True) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory for the daemon and ``poll``; migrates to head first
    unless told not to. Raises SchemaMismatch for a database a newer version migrated,
    StoreError (saying where) for one that cannot be opened or migrated."""
    url = config.database_url()
    engine = make_engine(url)
    if upgrade:
        with _closed_on_failure(engine, url):
            before = migrate.upgrade(engine, where=_where(url))
        log.debug("database %s ready (was at revision %s)", safe_url(url), before)
    return engine, make_sessionmaker(engine)


def open_current(config: Config, *, read_only: bool = False
                 ) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory for a command other than ``run``, ``poll`` and
    ``db upgrade``: never creates the database nor migrates it (that could happen under a
    running daemon of another version), and refuses one not at this version's revision.

    ``read_only`` for the commands that only look (status, history, report, silence list,
    audit show). Raises SchemaMismatch (missing, behind, ahead) or StoreError (saying where).
    """
    url = config.database_url()
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise SchemaMismatch(
            f"there is no database at {path.resolve()} ([database] url): the daemon has not "
            "run with this config yet, or the config points elsewhere")
    engine = make_engine(url, read_only=read_only)
    with _closed_on_failure(engine, url), engine.connect() as connection:
        migrate.check_readable(connection, _where(url))
    return engine, make_sessionmaker(engine)


@contextmanager
def _closed_on_failure(engine: Engine, url: str) -> Iterator[None]:
    """Dispose of ``engine`` if the block fails; a driver error becomes a StoreError that
    says where the database is (never with its password)."""
    try:
        yield
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(describe_failure(url, exc)) from exc
    except BaseException:
        engine.dispose()
        raise


def _where(url: str) -> str:
    path = sqlite_path(url)
    return f"the database {path.resolve()}" if path is not None else f"the database {safe_url(url)}"


def build_channels(config: Config) -> dict[str, Channel]:
    return {c.name: Channel(c.name, c.apprise_url.get_secret_value())
            for c in config.alerts.channels}


def channel_timings(config: Config) -> dict[str, ChannelTiming]:
    return {
        c.name: ChannelTiming(
            group_wait=c.group_wait, critical_skips_group_wait=c.critical_skips_group_wait,
            quiet_hours=ChannelTiming.parse_quiet_hours(c.quiet_hours), timezone=c.timezone,
            defer_critical=c.quiet_hours_critical == "defer",
        )
        for c in config.alerts.channels
    }


def _no_meta(line: LineRef) -> LineMeta:
    return NO_META


def channel_renderers(config: Config) -> dict[str, Renderer]:
    """Each channel's message text: its templates over the default text, its group limit."""
    return {c.name: Renderer.for_channel(c, limit=c.group_limit,
                                         flap_window=config.alerts.flap_window)
            for c in config.alerts.channels}


def alert_policy(config: Config) -> AlertPolicy:
    alerts = config.alerts
    rules = tuple(
        ChannelRule(c.name, st.rank(c.min_status), accounts=frozenset(c.accounts),
                    labels=dict(c.labels), repeat_interval=c.repeat_interval,
                    escalate_after=c.escalate_after)
        for c in alerts.channels
    )
    return AlertPolicy(channels=rules, notify_recovery=alerts.notify_recovery,
                       flap_changes=alerts.flap_changes, flap_window=alerts.flap_window)


def build_metrics(config: Config, labeler: Labeler) -> Metrics:
    """The daemon's metrics, every labelled counter declared at 0."""
    metrics = Metrics(per_line=config.metrics.per_line, labeler=labeler)
    metrics.declare(accounts=[a.name for a in config.accounts],
                    channels=[c.name for c in config.alerts.channels])
    return metrics


class Doorbell:
    """Rung when notifications were queued outside a delivery round (a webhook event, an
    audit's follow-up): every channel's delivery loop wakes at once, not at its next tick."""

    def __init__(self) -> None:
        self._events: list[asyncio.Event] = []

    def listen(self) -> asyncio.Event:
        event = asyncio.Event()
        self._events.append(event)
        return event

    def ring(self) -> None:
        for event in self._events:
            event.set()


class Runtime:
    """Everything a running monitor holds, built once. Use ``async with Runtime(...)``:
    entering it opens the API clients and builds a poller per account.

    ``leases`` tells whether this process may apply an account's webhook events (the
    daemon's coordinator; a one-shot command is alone). ``labeler`` and ``metrics`` are
    given when the daemon built them first (its coordinator counts into the same metrics).
    ``poll_now(account)`` brings the account's next poll forward (the daemon's scheduler;
    a ``phone_number.assigned`` webhook asks for it).
    """

    def __init__(self, config: Config, engine: Engine, sessions: sessionmaker[Session], *,
                 leases: Leases = ALONE, labeler: Labeler | None = None,
                 metrics: Metrics | None = None,
                 poll_now: Callable[[str], None] = lambda account: None) -> None:
        self.config = config
        self._leases = leases
        self.engine = engine
        self.sessions = sessions
        # Names and labels from [[lines]], computed once.
        self.labeler = labeler if labeler is not None else Labeler.from_config(config.lines)
        self.metrics = metrics if metrics is not None else build_metrics(config, self.labeler)
        self.doorbell = Doorbell()
        self.channels = build_channels(config)
        self.renderers = channel_renderers(config)
        self.line_meta: Callable[[LineRef], LineMeta] = (
            self.labeler.meta if self.labeler else _no_meta)
        # Re-read from the database before every planning step (monitor/service/silences.py).
        self.silences = Silences(sessions, clock=utcnow)
        alerts = config.alerts
        self.deliverer = Deliverer(
            sessions, self.channels,
            DeliveryPolicy(timeout=alerts.delivery_timeout, retry_initial=alerts.retry_initial,
                           retry_max=alerts.retry_max, give_up_after=alerts.give_up_after),
            self.metrics, clock=utcnow, timings=channel_timings(config),
            renderer=self._render,
        )
        # Filled when entered (the pollers need the API clients the runtime opens then);
        # the webhook processor holds this same mapping.
        self.pollers: dict[str, AccountPoller] = {}
        self.directory = LineDirectory(  # every line, for the gate API
            labels_for=lambda s: dict(self.line_meta(s).labels),
            flapping_for=lambda s: s.flapping)
        self._directory_read: dict[str, datetime] = {}  # accounts others poll: when read
        self.push = PushWatch(expected_url=config.server.webhook_url)  # push liveness
        # Chat health from the sweep and from webhooks, into one state per line.
        self.chat_health = ChatHealth(sessions, self.pollers, self.metrics,
                                      window=config.chats.window, clock=utcnow, leases=leases)
        self.webhooks = WebhookProcessor(
            sessions, self.pollers, webhook_signers(config), self.metrics, clock=utcnow,
            leases=leases, on_queued=self.doorbell.ring, on_assigned=poll_now,
            unmatched_expiry={a.name: a.webhook_unmatched_expiry for a in config.accounts},
            chats=ChatEvents(self.chat_health))
        self.sweepers: dict[str, ChatSweeper] = {}  # filled when entered, like the pollers
        self._audit_clients: dict[str, AuditClient] = {}
        self.audits = AuditRunner(
            sessions, self._audit_clients,
            {a.name: AuditPolicy(frozenset(a.audit_on), a.audit_wait, AuditBudget(
                a.audit_max_running, a.audit_max_per_hour, a.audit_cooldown))
             for a in config.accounts},
            self.directory, clock=utcnow, on_queued=self.doorbell.ring, metrics=self.metrics)
        self._stack = AsyncExitStack()

    def _render(self, channel: str, entries: Sequence[Entry], now: datetime, *,
                held: bool = False) -> Message:
        return self.renderers[channel].render(entries, now=now, held=held)

    async def refresh_silences(self) -> None:
        """Re-read silences (added or expired by ``reputation-monitor silence``); each
        poll, policy round and webhook batch also does just before it decides."""
        await self.silences.refresh()

    async def refresh_directory(self, account: str) -> None:
        """Bring the gate's view of an account this replica does not poll up to date from
        the database (the holder writes it): only lines written since the last refresh,
        re-reading a margin before it so a slow commit or a skewed clock loses nothing."""
        started = utcnow()
        since = self._directory_read.get(account)
        states = await asyncio.to_thread(
            load_lines, self.sessions, account,
            updated_after=None if since is None else since - DIRECTORY_OVERLAP)
        self.directory.update(states.values())
        self._directory_read[account] = started

    async def __aenter__(self) -> Runtime:
        policy = alert_policy(self.config)
        debounce = Debounce(self.config.alerts.confirm_polls, self.config.alerts.recover_polls)
        watch = self.config.chats.watch.rules()
        for account in self.config.accounts:
            client = LinqClient(
                base_url=account.base_url,
                token=account.api_token.get_secret_value(),
                timeout=account.timeout.total_seconds(),
                max_retries=account.max_retries,
                ca_bundle=account.ca_bundle_path,
            )
            self._stack.push_async_callback(client.aclose)
            audit_client = AuditClient(base_url=account.base_url,
                                       token=account.api_token.get_secret_value(),
                                       timeout=account.timeout.total_seconds(),
                                       ca_bundle=account.ca_bundle_path)
            self._stack.push_async_callback(audit_client.aclose)
            self._audit_clients[account.name] = audit_client
            self.pollers[account.name] = AccountPoller(
                account.name, client, self.sessions, self.metrics, policy=policy,
                debounce=debounce, clock=utcnow, meta=self.line_meta, silences=self.silences,
                observers=[self.directory.update],
                transition_observers=[self.audits.observer(account.name)],
                hold=self.audits.hold(account.name), watch=watch,
                fence=functools.partial(self._leases.fence, account.name),
            )
            self.sweepers[account.name] = ChatSweeper(
                account.name, client, self.sessions, self.chat_health, self.metrics,
                settings=SweepSettings(self.config.chats.requests_per_minute,
                                       self.config.chats.interval))
        await self.refresh_silences()
        await self.audits.load()
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Background work first, while the clients and the database it uses are still open.
        await self.audits.cancel()
        await self.webhooks.drain()
        await self._stack.aclose()
        self.engine.dispose()


def webhook_signers(config: Config) -> list[Signer]:
    """One signer per account with a webhook secret: webhooks are off without any."""
    return [Signer(a.name, a.webhook_secret.get_secret_value(), a.accept_legacy_signatures)
            for a in config.accounts if a.webhook_secret is not None]
