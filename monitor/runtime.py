"""Builds the long-lived objects from a Config: engine, sessions, clients, pollers, deliverer.

Shared by the daemon and the one-shot CLI commands, so ``poll`` runs the same code path as
``run``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.notifier import Channel
from monitor.alerts.outbox import Deliverer, DeliveryPolicy
from monitor.api.audits import AuditClient
from monitor.api.client import LinqClient
from monitor.audits import AuditPolicy, AuditRunner
from monitor.config import Config
from monitor.core import status as st
from monitor.core.route import ChannelRule
from monitor.gate.directory import LineDirectory
from monitor.metrics import Metrics
from monitor.poller import AccountPoller
from monitor.store import migrate
from monitor.store.engine import make_engine, make_sessionmaker, safe_url
from monitor.webhooks.process import WebhookProcessor
from monitor.webhooks.verify import Signer

log = logging.getLogger(__name__)

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
    """Engine and session factory; migrates to head first unless told not to."""
    url = config.database_url()
    engine = make_engine(url)
    if upgrade:
        before = migrate.upgrade(engine)
        log.debug("database %s ready (was at revision %s)", safe_url(url), before)
    return engine, make_sessionmaker(engine)


def build_channels(config: Config) -> dict[str, Channel]:
    return {c.name: Channel(c.name, c.apprise_url.get_secret_value())
            for c in config.alerts.channels}


def channel_rules(config: Config) -> list[ChannelRule]:
    return [ChannelRule(c.name, st.rank(c.min_status)) for c in config.alerts.channels]


class Runtime:
    """Everything a running monitor holds. Use ``async with Runtime.start(config)``."""

    def __init__(self, config: Config, engine: Engine, sessions: sessionmaker[Session]) -> None:
        self.config = config
        self.engine = engine
        self.sessions = sessions
        self.metrics = Metrics(per_line=config.metrics.per_line)
        self.metrics.declare(accounts=[a.name for a in config.accounts],
                             channels=[c.name for c in config.alerts.channels])
        self.channels = build_channels(config)
        alerts = config.alerts
        self.deliverer = Deliverer(
            sessions, self.channels,
            DeliveryPolicy(timeout=alerts.delivery_timeout, retry_initial=alerts.retry_initial,
                           retry_max=alerts.retry_max, give_up_after=alerts.give_up_after),
            self.metrics, clock=utcnow,
        )
        self.pollers: dict[str, AccountPoller] = {}
        self.directory = LineDirectory()  # every line, for the gate API
        self.webhooks: WebhookProcessor = build_webhooks(self, [])
        self._audit_clients: dict[str, AuditClient] = {}
        self.audits = AuditRunner(
            sessions, self._audit_clients,
            {a.name: AuditPolicy(frozenset(a.audit_on), a.audit_wait) for a in config.accounts},
            self.directory, clock=utcnow)
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Runtime:
        rules = channel_rules(self.config)
        for account in self.config.accounts:
            client = LinqClient(
                base_url=account.base_url,
                token=account.api_token.get_secret_value(),
                timeout=account.timeout.total_seconds(),
                max_retries=account.max_retries,
                ca_bundle=account.ca_bundle,
            )
            self._stack.push_async_callback(client.aclose)
            self.pollers[account.name] = AccountPoller(
                account.name, client, self.sessions, self.metrics, channels=rules,
                notify_recovery=self.config.alerts.notify_recovery, clock=utcnow,
            )
            self.pollers[account.name].observers.append(self.directory.update)
            audit_client = AuditClient(base_url=account.base_url,
                                       token=account.api_token.get_secret_value(),
                                       timeout=account.timeout.total_seconds(),
                                       ca_bundle=account.ca_bundle)
            self._stack.push_async_callback(audit_client.aclose)
            self._audit_clients[account.name] = audit_client
            self.pollers[account.name].hold = self.audits.hold(account.name)
            self.pollers[account.name].transition_observers.append(
                self.audits.observer(account.name))
        self.webhooks = build_webhooks(self, rules)
        await self.audits.load()
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Background work first, while the clients and the database it uses are still open.
        await self.audits.cancel()
        await self.webhooks.drain()
        await self._stack.aclose()
        self.engine.dispose()


def build_webhooks(runtime: Runtime, rules: list[ChannelRule]) -> WebhookProcessor:
    signers = [Signer(a.name, a.webhook_secret.get_secret_value(), a.accept_legacy_signatures)
               for a in runtime.config.accounts if a.webhook_secret is not None]
    return WebhookProcessor(runtime.sessions, runtime.pollers, signers, runtime.metrics,
                            channels=rules, notify_recovery=runtime.config.alerts.notify_recovery,
                            clock=utcnow)
