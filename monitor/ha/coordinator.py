"""Replicas sharing one database: which accounts this one polls, and run-once jobs.

Every ``tick`` the coordinator, in one short round of transactions
(monitor/store/leases.py): writes its heartbeat and counts the live replicas; renews the
account leases it holds (one that failed to renew was taken over: lost); gives back what
it holds beyond its fair share, ``ceil(accounts / live replicas)``; and takes free or
expired account leases up to that share. The daemon hears of each change through its
``LeaseListener`` and polls only the accounts ``holds`` says are its own.

Local safety margin: a lease is treated as ours only until ``lease`` after the start of
the round that last renewed it (measured on the monotonic clock). The database extends it
to ``lease`` after the renewing statement ran, which is later, so this replica stops
believing in a lease before anyone else can take it. A replica that was paused past that
point may still have a poll in flight: its write is fenced by the lease generation and
refused (LeaseLost) if another replica took over meanwhile.

``hold(job, once=slot)`` is the run-once primitive for periodic jobs: the first replica
to take the job's lease for a slot runs it, the others skip, and a completed slot is never
run again (``slot_key`` turns a time and a period into a slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from monitor.core.balance import rebalance
from monitor.core.identity import Identity
from monitor.errors import StoreError
from monitor.metrics import Metrics
from monitor.store import leases
from monitor.store.leases import Fence, Grant

log = logging.getLogger(__name__)

# How long a run-once job's lease lasts between renewals while the job runs.
JOB_LEASE = timedelta(minutes=2)


def slot_key(now: datetime, every: timedelta) -> str:
    """The slot of period ``every`` that ``now`` falls in, as a run-once key.

    E.g. a job meant to run once every 5 minutes across all replicas uses
    ``hold("digest", once=slot_key(now, timedelta(minutes=5)))``.
    """
    return f"{every.total_seconds():g}s:{int(now.timestamp() // every.total_seconds())}"


@dataclass(slots=True)
class _Held:
    grant: Grant
    deadline: float  # monotonic; past it we no longer count on the lease
    since: datetime


class LeaseListener(Protocol):
    """Told when this replica starts or stops holding an account's lease (the daemon)."""

    def lease_acquired(self, account: str) -> None: ...

    def lease_lost(self, account: str) -> None: ...


class _NobodyListens:
    def lease_acquired(self, account: str) -> None:
        return None

    def lease_lost(self, account: str) -> None:
        return None


class Coordinator:
    """This replica's account leases and run-once jobs. Run ``run()`` as a task."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        me: Identity,
        accounts: Sequence[str],
        *,
        lease: timedelta,
        tick: float,
        metrics: Metrics,
        started_at: datetime,
        alone: bool = False,
        listener: LeaseListener | None = None,
    ) -> None:
        # ``alone``: this process holds the SQLite one-daemon lock, so no other process can
        # poll; an account is never dropped because a lease write failed (a locked or full
        # database file must not stop polling, which reports the trouble). The rounds then
        # only keep the lease rows current (for ``status``) and never tell the listener:
        # its calls make the daemon cancel the account's poll and drop its
        # memory, which here would be worse than useless. A poll cancelled in its commit
        # still commits from its worker thread (SQLite waits out a lock), and with no fence
        # to refuse it, the next poll, reloaded from the database before that commit
        # landed, records the same change a second time (and alerts it twice).
        self._alone = alone
        self._sessions = sessions
        self._me = me
        self._accounts = {leases.account_lease(a): a for a in accounts}
        self._lease = lease
        self._tick = tick
        self._metrics = metrics
        self._started_at = started_at
        self._held: dict[str, _Held] = {}
        self._ensured = False
        self._listener: LeaseListener = listener if listener is not None else _NobodyListens()

    @property
    def replica(self) -> str:
        return self._me.name

    def holds(self, account: str) -> bool:
        """Whether this replica should poll ``account`` now."""
        if self._alone:
            return leases.account_lease(account) in self._accounts
        held = self._held.get(leases.account_lease(account))
        return held is not None and time.monotonic() < held.deadline

    def fence(self, account: str) -> Fence | None:
        """The fencing token a write about ``account`` must carry (None: not ours)."""
        if self._alone:
            return None  # nobody else can write
        held = self._held.get(leases.account_lease(account))
        return held.grant.fence if held is not None else None

    def held_since(self, account: str) -> datetime | None:
        if self._alone:
            return self._started_at if self.holds(account) else None
        held = self._held.get(leases.account_lease(account))
        return held.since if held is not None else None

    def lost(self, account: str) -> None:
        """A write found the account's lease taken over: stop treating it as ours."""
        self._drop(leases.account_lease(account), why="taken over by another replica")

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds every ``tick`` until ``stop``; database errors are logged and retried."""
        while not stop.is_set():
            await self.step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._tick)

    async def step(self) -> None:
        """One round: heartbeat, renew, give back the excess, take up to the fair share."""
        started = time.monotonic()
        fences = [h.grant.fence for h in self._held.values()]
        try:
            live, kept, released, gained = await asyncio.to_thread(self._round, fences)
        except StoreError as exc:
            log.warning("lease round failed (will retry): %s", exc)
            if self._alone:
                return  # nobody else can take an account: keep it, renew it next round
            for name in [n for n, h in self._held.items() if h.deadline <= time.monotonic()]:
                self._drop(name, why="not renewed in time (database unreachable?)")
            return
        self._metrics.live_replicas.set(live)
        deadline = started + self._lease.total_seconds()
        renewed = {g.fence.lease for g in kept}
        for name in [n for n in self._held if n not in renewed]:
            if self._alone:
                # Given back to balance (a killed predecessor's heartbeat still counted) or
                # freed by hand: nobody else can poll it; the row is taken again next round.
                del self._held[name]
                continue
            self._drop(name, why="given back to balance the replicas"
                       if name in released else "taken over by another replica")
        for grant in kept:
            held = self._held.get(grant.fence.lease)
            if held is not None:  # else dropped by a refused write during this round
                held.grant, held.deadline = grant, deadline
        for grant in gained:
            name = grant.fence.lease
            self._held[name] = _Held(grant, deadline, grant.expires_at - self._lease)
            account = self._accounts[name]
            self._metrics.leader.labels(account, self._me.name).set(1)
            log.info("now polling account %s (lease generation %d, %d live replicas)",
                     account, grant.fence.generation, live)
            if not self._alone:  # alone, the account is polled from the start, memory intact
                self._listener.lease_acquired(account)

    def _round(self, fences: list[Fence]) -> tuple[int, list[Grant], set[str], list[Grant]]:
        """The database side of ``step`` (in a worker thread: reads no shared state)."""
        if not self._ensured:
            leases.ensure(self._sessions, self._accounts)
            self._ensured = True
        live = leases.heartbeat(self._sessions, replica=self._me.name, host=self._me.host,
                                pid=self._me.pid, started_at=self._started_at,
                                ttl=self._lease)
        kept = leases.renew(self._sessions, fences, ttl=self._lease)
        give_back, take = rebalance(len(kept), accounts=len(self._accounts),
                                    live_replicas=live)
        released: set[str] = set()
        if give_back:
            kept.sort(key=lambda g: g.fence.lease)
            kept, excess = kept[:-give_back], kept[-give_back:]
            leases.release(self._sessions, [g.fence for g in excess])
            released = {g.fence.lease for g in excess}
        mine = {f.lease for f in fences}
        candidates = [n for n in self._accounts if n not in mine]
        gained = leases.acquire(self._sessions, candidates, holder=self._me.name,
                                limit=take, ttl=self._lease)
        return live, kept, released, gained

    def _drop(self, name: str, *, why: str, level: int = logging.WARNING) -> None:
        if self._held.pop(name, None) is None:
            return
        account = self._accounts[name]
        self._metrics.leader.remove(account, self._me.name)
        log.log(level, "stopped polling account %s: %s", account, why)
        self._listener.lease_lost(account)

    async def close(self) -> None:
        """Give every lease back and leave, so the other replicas take over at once."""
        fences = [h.grant.fence for h in self._held.values()]
        for name in list(self._held):
            self._drop(name, why="shutting down", level=logging.INFO)  # asked for: normal
        try:
            await asyncio.to_thread(leases.release, self._sessions, fences)
            await asyncio.to_thread(leases.leave, self._sessions, replica=self._me.name)
        except StoreError as exc:
            log.warning("could not give the leases back (they expire on their own): %s", exc)

    @contextlib.asynccontextmanager
    async def hold(self, job: str, *, once: str | None = None) -> AsyncIterator[Fence | None]:
        """Run a block as the only replica doing ``job`` (for slot ``once``, if given).

        Yields the job lease's fence, or None when another replica holds the job or has
        completed slot ``once``: the caller then skips the work. The lease is renewed while
        the block runs; on a normal exit slot ``once`` is recorded as done, on an error the
        lease is given back so that a later attempt may run it.
        """
        name = leases.job_lease(job)
        try:
            grant = await asyncio.to_thread(leases.try_once, self._sessions, name,
                                            holder=self._me.name, key=once, ttl=JOB_LEASE)
        except StoreError as exc:
            log.error("cannot take the %s job lease; skipping this run: %s", job, exc)
            yield None
            return
        if grant is None:
            yield None
            return
        renewer = asyncio.create_task(self._keep(grant.fence), name=f"lease:{name}")
        done = False
        try:
            yield grant.fence
            done = True
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            try:
                await asyncio.to_thread(leases.release, self._sessions, [grant.fence],
                                        done_key=once if done else None)
            except StoreError as exc:
                log.warning("cannot release the %s job lease (it expires): %s", job, exc)

    async def _keep(self, fence: Fence) -> None:
        while True:
            await asyncio.sleep(JOB_LEASE.total_seconds() / 3)
            try:
                await asyncio.to_thread(leases.renew, self._sessions, [fence], ttl=JOB_LEASE)
            except StoreError as exc:
                log.warning("cannot renew the %s lease: %s", fence.lease, exc)
