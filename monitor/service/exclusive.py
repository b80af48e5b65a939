"""One-shot commands that write what the daemon writes never run beside it unawares.

A daemon keeps each line's status in memory between polls. A ``poll`` run beside it
records a change the daemon does not know of, and the daemon then records the same
change again from its stale memory: the history chain breaks and a line is alerted twice.
So ``poll``, ``db upgrade`` and ``db prune`` claim what the daemon would hold:

- on SQLite, the daemon's own lock (monitor/store/solo.py) for the command's duration:
  beside a running daemon the command refuses, naming it, and a daemon started meanwhile
  refuses likewise, naming the command;
- on PostgreSQL, ``poll`` takes each account's lease like a replica does and writes under
  its fence; an account a live replica holds is refused (that replica polls it), and a
  replica that starts meanwhile waits for the lease as it would for a crashed replica's.
  ``db prune`` takes the daemon's own pruning lease; ``db upgrade`` refuses while any
  replica is alive (a newer daemon migrates at start by itself).

Commands that only add rows the daemon reads (``silence``, ``audit``) need no claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Config
from monitor.core.identity import Identity
from monitor.errors import AlreadyRunning, StoreError
from monitor.store import leases
from monitor.store.leases import Fence
from monitor.store.solo import lock_sqlite

log = logging.getLogger(__name__)

# What each command would get wrong beside a daemon, and what to do instead.
_WHY = {
    "poll": "its own polls and this one would record the same changes twice. The daemon "
            "polls every account by itself (`status` shows what it saw); stop it to poll "
            "by hand",
    "db upgrade": "stop it first (a daemon of a newer version migrates at start by itself)",
    "db prune": "it prunes daily by itself; stop it to prune by hand",
}


def command_identity(me: Identity, command: str) -> Identity:
    """The holder name a command's leases carry, so ``leases`` and logs say who it was."""
    return Identity(name=f"{command} ({me.host}:{me.pid})", host=me.host, pid=me.pid)


@contextlib.contextmanager
def sqlite_alone(config: Config, me: Identity, command: str) -> Iterator[bool]:
    """Hold the SQLite one-daemon lock while the block runs; True if the database is
    SQLite (then nothing else can be writing), False for PostgreSQL (nothing was taken).

    Raises AlreadyRunning, naming the holder and saying what to do, when it is held.
    """
    try:
        lock = lock_sqlite(config.database_url(), me, role=command)
    except AlreadyRunning as exc:
        raise AlreadyRunning(f"`{command}` refused: {exc.holder} is running on this SQLite "
                             f"database; {_WHY[command]}", holder=exc.holder) from None
    try:
        yield lock is not None
    finally:
        if lock is not None:
            lock.release()


@dataclass
class AccountClaim:
    """The accounts a one-shot ``poll`` took (with the fence its writes go under) and the
    ones a running replica holds. Answers as ``webhooks.process.Leases`` does."""

    fences: dict[str, Fence | None]
    refused: dict[str, str] = field(default_factory=dict)  # account -> who holds it

    def holds(self, account: str) -> bool:
        return account in self.fences

    def fence(self, account: str) -> Fence | None:
        return self.fences.get(account)

    def lost(self, account: str) -> None:
        self.fences.pop(account, None)


@contextlib.asynccontextmanager
async def claim_accounts(sessions: sessionmaker[Session], accounts: list[str], *,
                         holder: str, ttl: timedelta) -> AsyncIterator[AccountClaim]:
    """Take the leases of ``accounts`` that no live replica holds, renewed while the block
    runs and released after it. Raises StoreError when the leases cannot be read."""
    names = {leases.account_lease(a): a for a in accounts}
    await asyncio.to_thread(leases.ensure, sessions, names)
    grants = await asyncio.to_thread(leases.acquire, sessions, list(names), holder=holder,
                                     limit=len(names), ttl=ttl)
    fences: dict[str, Fence | None] = {names[g.fence.lease]: g.fence for g in grants}
    claim = AccountClaim(fences)
    if len(fences) < len(names):
        for name, who, _generation, _expires in await asyncio.to_thread(leases.holders,
                                                                        sessions):
            if name in names and names[name] not in fences:
                claim.refused[names[name]] = who or "another replica"
    renewal = asyncio.create_task(_renew(sessions, claim, ttl), name="claim-renewal")
    try:
        yield claim
    finally:
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal
        held = [f for f in claim.fences.values() if f is not None]
        try:
            await asyncio.to_thread(leases.release, sessions, held)
        except StoreError as exc:  # they expire after ttl
            log.warning("cannot release the poll's leases (they expire in %s): %s", ttl, exc)


async def _renew(sessions: sessionmaker[Session], claim: AccountClaim, ttl: timedelta) -> None:
    """Keep the claim alive through a long poll; an account whose lease was taken over is
    dropped (its writes are fenced off anyway)."""
    while True:
        await asyncio.sleep(ttl.total_seconds() / 3)
        held = {f.lease: (a, f) for a, f in claim.fences.items() if f is not None}
        try:
            kept = await asyncio.to_thread(leases.renew, sessions,
                                           [f for _, f in held.values()], ttl=ttl)
        except StoreError as exc:
            log.warning("cannot renew the poll's leases: %s", exc)
            continue
        for lease in set(held) - {g.fence.lease for g in kept}:
            claim.lost(held[lease][0])


def refuse_beside_replicas(sessions: sessionmaker[Session], command: str,
                           ttl: timedelta) -> None:
    """Raise AlreadyRunning if a replica has sent a heartbeat within ``ttl``."""
    alive = leases.live_replicas(sessions, ttl=ttl)
    if alive:
        who = ", ".join(alive)
        raise AlreadyRunning(f"`{command}` refused: replica(s) {who} are running on this "
                             f"database; {_WHY[command]}", holder=who)


@contextlib.contextmanager
def prune_lease(sessions: sessionmaker[Session], holder: str, ttl: timedelta) -> Iterator[None]:
    """Hold the daemon's pruning lease (ha/coordinator ``hold("prune")``) for the block."""
    grant = leases.try_once(sessions, leases.job_lease("prune"), holder=holder, key=None,
                            ttl=ttl)
    if grant is None:
        raise AlreadyRunning("`db prune` refused: a replica is pruning this database right "
                             "now; try again in a few minutes", holder="a replica")
    try:
        yield
    finally:
        leases.release(sessions, [grant.fence])
