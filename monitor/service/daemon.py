"""The daemon: scheduler wiring, the delivery loop, the HTTP server, signals and shutdown.

One APScheduler interval job per account (never overlapping itself) that polls only while
this replica holds the account's lease (monitor/ha/coordinator.py, which runs beside it), one
delivery loop woken right after a poll queues notifications, and the HTTP server, all in
one event loop. On SQLite the daemon first takes the one-daemon lock (monitor/store/solo.py).
SIGTERM/SIGINT stop the scheduler, abandon an in-flight poll (its transaction either
committed or did not; memory is reloaded from the database on the next start), let the
delivery loop finish the message in hand, and exit 0. SIGHUP does the same (a closed
terminal must not kill the daemon mid-write); it does not reload the config, which is
read once at start: the log says so, and a restart reloads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Config
from monitor.core.identity import Identity
from monitor.core.labels import Labeler
from monitor.errors import LeaseLost, MonitorError, StoreError
from monitor.ha.coordinator import Coordinator
from monitor.ha.replica import identity
from monitor.http.server import build_app, make_server
from monitor.logs import log_context, set_process_fields
from monitor.service.allocator import share_one_arena
from monitor.service.digest import send_digest
from monitor.service.runtime import Runtime, build_metrics, open_database, utcnow
from monitor.service.trouble import check_troubles
from monitor.store import leases
from monitor.store.retention import prune
from monitor.store.solo import lock_sqlite

log = logging.getLogger(__name__)

DELIVERY_TICK = 1.0
PUSH_CHECK_EVERY = timedelta(days=1)  # the webhook subscriptions, after the one at start
SWITCH_INTERVAL = 0.0005  # seconds; see run_daemon


class Daemon:
    """The running daemon: builds its metrics, its coordinator (which it listens to) and
    the runtime once, then ``run()`` serves until ``stop()``."""

    def __init__(self, config: Config, engine: Engine, sessions: sessionmaker[Session], *,
                 me: Identity, alone: bool) -> None:
        self._config = config
        labeler = Labeler.from_config(config.lines)
        metrics = build_metrics(config, labeler)
        lease = config.ha.lease
        # Renew three times per lease, and at least once per poll interval so that a
        # takeover is noticed within a poll.
        tick = min([lease.total_seconds() / 3,
                    *(a.poll_interval.total_seconds() for a in config.accounts)])
        self._coordinator = Coordinator(
            sessions, me, [a.name for a in config.accounts], lease=lease, tick=tick,
            metrics=metrics, started_at=utcnow(), alone=alone, listener=self)
        self._runtime = Runtime(config, engine, sessions, leases=self._coordinator,
                                labeler=labeler, metrics=metrics, poll_now=self._poll_now)
        self._polling: dict[str, asyncio.Task[object]] = {}
        self._stop = asyncio.Event()
        self._inflight: set[asyncio.Task[object]] = set()
        self._scheduler = AsyncIOScheduler(timezone=UTC, event_loop=asyncio.get_running_loop())
        self._started_at = utcnow()

    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, listen: socket.socket, on_ready: Callable[[str], None] | None) -> None:
        """Serve until ``stop()``; the runtime's clients and engine are closed on the way out."""
        async with self._runtime:
            await self._serve(listen=listen, on_ready=on_ready)

    async def _serve(self, *, listen: socket.socket,
                     on_ready: Callable[[str], None] | None) -> None:
        server = make_server(build_app(self._runtime, started_at=utcnow(),
                                       held_since=self._coordinator.held_since),
                             host=self._config.server.host, port=self._config.server.port,
                             max_connections=self._config.server.max_connections,
                             header_timeout=self._config.server.header_timeout.total_seconds())
        server_task = asyncio.create_task(server.serve(sockets=[listen]), name="http")
        delivery_task = asyncio.create_task(self._delivery_loop(), name="deliver")
        policy_task = asyncio.create_task(self._policy_loop(), name="policy")
        for account in self._config.accounts:
            self._scheduler.add_job(
                self._poll_job, IntervalTrigger(seconds=account.poll_interval.total_seconds()),
                args=[account.name], id=f"poll:{account.name}", max_instances=1,
                coalesce=True, misfire_grace_time=None, next_run_time=datetime.now(UTC),
            )
        for channel in self._config.alerts.channels:
            at = channel.digest_time
            if at is not None:
                self._scheduler.add_job(
                    self._digest_job, CronTrigger(hour=at.hour, minute=at.minute,
                                                  second=at.second, timezone=channel.zone),
                    args=[channel.name], id=f"digest:{channel.name}", max_instances=1,
                    coalesce=True, misfire_grace_time=3600)
        if self._config.chats.enabled:
            for account in self._config.accounts:
                # One tick per slot of the request budget; a tick makes one request at most.
                sweeper = self._runtime.sweepers[account.name]
                self._scheduler.add_job(
                    self._chat_job, IntervalTrigger(seconds=sweeper.interval.total_seconds()),
                    args=[account.name], id=f"chats:{account.name}", max_instances=1,
                    coalesce=True, misfire_grace_time=None, next_run_time=datetime.now(UTC))
        if self._config.database.retention is not None:
            # Daily, at a quiet hour; the work is one transaction of deletes and summaries.
            self._scheduler.add_job(self._prune_job, CronTrigger(hour=3, minute=30, timezone=UTC),
                                    id="prune", max_instances=1, coalesce=True)
        if any(a.webhook_secret is not None for a in self._config.accounts):
            # At start (once the first poll had its go) and daily; a newly acquired lease
            # brings it forward (lease_acquired).
            self._scheduler.add_job(
                self._push_job, IntervalTrigger(seconds=PUSH_CHECK_EVERY.total_seconds()),
                id="push", max_instances=1, coalesce=True, misfire_grace_time=None,
                next_run_time=datetime.now(UTC) + timedelta(seconds=2))
        self._scheduler.start()
        leases_task = asyncio.create_task(self._coordinator.run(self._stop), name="leases")
        host, port = listen.getsockname()[:2]
        log.info("monitoring %d account(s); metrics on http://%s:%d/metrics",
                 len(self._config.accounts), host, port)
        if on_ready:
            on_ready(f"http://{host}:{port}")
        try:
            await self._stop.wait()
        finally:
            log.info("shutting down")
            self._scheduler.shutdown(wait=False)
            policy_task.cancel()
            for task in list(self._inflight):
                task.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)
            # Recorded webhook events being applied: let them finish while the leases that
            # fence their writes are still ours (they are short and transactional; any left
            # pending are applied after the next start's first poll).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._runtime.webhooks.drain(), 5)
            # Audits in flight are abandoned: their held alerts go out when the hold expires.
            await self._runtime.audits.cancel()
            await leases_task
            await self._coordinator.close()  # hand the accounts over without waiting
            # Let the message in hand be sent and recorded (cancelling would leave it sent
            # but "pending", to be sent again); claim nothing new; bound the wait.
            self._runtime.deliverer.stop()
            self._wake_deliverers()
            grace = self._config.alerts.delivery_timeout.total_seconds() + 5
            try:
                await asyncio.wait_for(delivery_task, grace)
            except TimeoutError:
                log.warning("a notification was still being sent at exit; it will be retried")
            server.should_exit = True
            await server_task

    async def _poll_job(self, account: str) -> None:
        if not self._coordinator.holds(account):
            return  # another replica's account (or ours again after the next lease round)
        with log_context(account=account):
            await self._poll_account(account)

    async def _poll_account(self, account: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        self._polling[account] = task
        try:
            outcome = await self._runtime.pollers[account].poll(
                fence=self._coordinator.fence(account))
        except asyncio.CancelledError:
            # Shutdown or a lost lease cancels a poll; its transaction committed or did
            # not, and the next holder reloads from the database. Ending quietly keeps the
            # log clean.
            log.info("in-flight poll abandoned")
            return
        except LeaseLost as exc:
            log.warning("poll not recorded: %s", exc)
            self._coordinator.lost(account)
            return
        finally:
            self._inflight.discard(task)
            self._polling.pop(account, None)
        if outcome.ok:
            log.info("poll %s", outcome.summary())
            if outcome.notifications:
                self._wake_deliverers()
            if self._runtime.webhooks.enabled:
                # Webhook events for lines this poll may have just brought in, and any a
                # crash left unapplied.
                self._runtime.webhooks.schedule(account, retry_unmatched=True)
        elif outcome.retry_after:
            # Obey the server: push the next poll out rather than sleeping in a coroutine.
            when = datetime.now(UTC) + timedelta(seconds=outcome.retry_after)
            job = self._scheduler.get_job(f"poll:{account}")
            if job is not None and job.next_run_time and job.next_run_time < when:
                job.modify(next_run_time=when)
                log.info("next poll of %s delayed to %s (Retry-After)", account,
                         when.isoformat(timespec="seconds"))

    async def _chat_job(self, account: str) -> None:
        # The chats' lines must be known first: the summaries are about lines the poller
        # holds (and /metrics names them by id).
        if (not self._coordinator.holds(account)
                or self._runtime.pollers[account].last_success_at is None):
            return
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)  # shutdown cancels a tick in flight, as it does a poll
        try:
            with log_context(account=account):
                await self._runtime.sweepers[account].tick(utcnow())
        except asyncio.CancelledError:
            return
        except LeaseLost as exc:
            log.warning("chat health not applied: %s", exc)
            self._coordinator.lost(account)
        finally:
            self._inflight.discard(task)

    async def _policy_loop(self) -> None:
        """Re-check time-based policy every ``policy_interval`` (never two rounds at once)."""
        interval = self._config.alerts.policy_interval.total_seconds()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)
            if self._stop.is_set():
                return
            try:
                await self._policy_round()
            except Exception:
                # Like the delivery loop: one bad round must not end time-based policy.
                log.exception("policy round crashed; continuing")

    async def _policy_round(self) -> None:
        # Once for the round: every account's review decides with these (a failed read
        # keeps the last known ones, logged by Silences.refresh).
        await self._runtime.refresh_silences()
        queued = 0
        for account, poller in self._runtime.pollers.items():
            if not self._coordinator.holds(account):
                # The lease holder runs the account's time-based policy; here, the gate
                # API's view of its lines is refreshed from the database it writes.
                try:
                    await self._runtime.refresh_directory(account)
                except StoreError as exc:
                    log.error("cannot refresh the lines of %s for the gate API: %s",
                              account, exc)
                continue
            with log_context(account=account):
                try:
                    queued += await poller.review(fence=self._coordinator.fence(account))
                except LeaseLost as exc:
                    log.warning("policy tick not recorded: %s", exc)
                    self._coordinator.lost(account)
                    continue
                except StoreError as exc:
                    log.error("policy tick failed (will try again): %s", exc)
            if self._runtime.webhooks.enabled:
                # Events another replica recorded for this account since our last poll.
                self._runtime.webhooks.schedule(account)
        try:
            rt = self._runtime
            queued += await check_troubles(
                rt.sessions, self._config.alerts, pollers=rt.pollers, gave_up=rt.deliverer.gave_up,
                renderers=rt.renderers, channels=rt.channels, started_at=self._started_at,
                now=utcnow(), holds=self._coordinator.held_since,
                push=rt.push.findings([a for a in rt.pollers if self._coordinator.holds(a)]))
        except StoreError as exc:
            log.error("cannot record the monitor's own trouble (will try again): %s", exc)
        if queued:
            self._wake_deliverers()

    async def _push_job(self) -> None:
        """Check the webhook subscriptions of the accounts held here (push liveness)."""
        for account in self._config.accounts:
            if account.webhook_secret is None or not self._coordinator.holds(account.name):
                continue
            with log_context(account=account.name):
                try:
                    problem = await self._runtime.push.check(account)
                except MonitorError as exc:
                    log.warning("cannot check the webhook subscriptions (will try again "
                                "tomorrow, or at the next lease): %s", exc)
                    continue
                if problem:
                    log.error("push: %s", problem)
                else:
                    log.info("push: subscribed to phone_number.status_updated")

    async def _digest_job(self, channel: str) -> None:
        with log_context(channel=channel):
            try:
                rt, config = self._runtime, self._config
                queued = await send_digest(
                    rt.sessions, next(c for c in config.alerts.channels if c.name == channel),
                    accounts=[a.name for a in config.accounts], line_meta=rt.line_meta,
                    renderer=rt.renderers[channel], now=utcnow())
            except StoreError as exc:
                log.error("digest not built (the next one is tomorrow): %s", exc)
                return
            if queued:
                self._wake_deliverers()
    def _poll_now(self, account: str) -> None:
        """Bring the account's next poll forward (a webhook said its inventory changed)."""
        job = self._scheduler.get_job(f"poll:{account}")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def lease_acquired(self, account: str) -> None:
        """A lease was acquired: start from the database's state and poll at once."""
        self._runtime.pollers[account].forget()
        self._runtime.sweepers[account].forget()
        job = self._scheduler.get_job(f"poll:{account}")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))
        push = self._scheduler.get_job("push")
        if push is not None:
            push.modify(next_run_time=datetime.now(UTC) + timedelta(seconds=2))

    def lease_lost(self, account: str) -> None:
        """A lease was lost or given back: abandon its poll, drop its memory and series."""
        task = self._polling.get(account)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._runtime.pollers[account].forget()
        self._runtime.sweepers[account].forget()

    async def _prune_job(self) -> None:
        retention = self._config.database.retention
        assert retention is not None
        async with self._coordinator.hold("prune", once=utcnow().date().isoformat()) as lease:
            if lease is None:
                log.info("retention: today's pruning is another replica's")
                return
            await self._prune(retention)

    async def _prune(self, retention: timedelta) -> None:
        try:
            result = await asyncio.to_thread(prune, self._runtime.sessions,
                                             cutoff=utcnow() - retention)
        except StoreError as exc:
            log.error("retention pruning failed (will try again tomorrow): %s", exc)
            return
        log.info("retention: %s", result.summary())

    async def _delivery_loop(self) -> None:
        """One sender per channel, so a slow or hanging channel delays only itself."""
        deliverer = self._runtime.deliverer
        senders = [asyncio.create_task(self._channel_loop(name), name=f"deliver:{name}")
                   for name in deliverer.channel_names]
        try:
            while not self._stop.is_set():
                await deliverer.refresh_pending_gauge()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), DELIVERY_TICK)
        finally:
            await asyncio.gather(*senders, return_exceptions=True)

    async def _channel_loop(self, name: str) -> None:
        wake = self._runtime.doorbell.listen()
        with log_context(channel=name):
            while not self._stop.is_set():
                wake.clear()
                try:
                    await self._runtime.deliverer.deliver_channel(name)
                except MonitorError as exc:
                    log.error("delivery round failed: %s", exc)
                except Exception:
                    # The loop must outlive any bug in one round; the traceback says where.
                    log.exception("delivery round crashed; continuing")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), DELIVERY_TICK)

    def _wake_deliverers(self) -> None:
        self._runtime.doorbell.ring()


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so a busy port is a clear error, not an exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MonitorError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


# A normal stop: logged at INFO, exit 0 (a WARNING would page whoever watches the logs).
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


async def run_daemon(
    config: Config,
    *,
    on_ready: Callable[[str], None] | None = None,
    duration: float | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or ``duration`` seconds). Raises MonitorError on bad start.

    Raises AlreadyRunning when another daemon uses the same SQLite database.
    """
    me = identity(config.ha.replica)
    set_process_fields(replica=me.name)
    solo = lock_sqlite(config.database_url(), me)  # before the port: name the other daemon
    share_one_arena()  # before any worker thread: see monitor/service/allocator.py
    # A poll parses and plans on worker threads while the event loop streams scrapes,
    # one write at a time; each write waits for the GIL, which CPython hands over only
    # after the switch interval (5 ms by default). A 70 MB scrape is ~70 writes, so
    # during a poll it took ~0.35 s longer; at 0.5 ms the handover costs little more.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
    try:
        await _serve(config, me=me, on_ready=on_ready, duration=duration,
                     alone=solo is not None)
    finally:
        sys.setswitchinterval(interval)
        if solo is not None:
            solo.release()


async def _serve(config: Config, *, me: Identity, on_ready: Callable[[str], None] | None,
                 duration: float | None, alone: bool) -> None:
    listen = bind(config.server.host, config.server.port)
    try:
        engine, sessions = await asyncio.to_thread(open_database, config)
    except BaseException:
        listen.close()  # the port is free again at once, not when the process ends
        raise
    if alone:  # the SQLite lock proves any earlier holder is dead: do not wait out its leases
        await asyncio.to_thread(leases.free_all, sessions)
    daemon = Daemon(config, engine, sessions, me=me, alone=alone)
    loop = asyncio.get_running_loop()

    def stop_on(sig: signal.Signals) -> None:
        if sig is signal.SIGHUP:
            log.info("SIGHUP: stopping; the config is read at start only, restart to reload")
        else:
            log.info("%s: stopping", sig.name)
        daemon.stop()

    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, stop_on, sig)
    if duration is not None:
        loop.call_later(duration, daemon.stop)
    try:
        await daemon.run(listen=listen, on_ready=on_ready)
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
