"""Several replicas on one PostgreSQL database, as an operator runs them: ``reputation-monitor
run`` subprocesses, the simulator on a real socket (one token per account, so every request
is attributed), alerts through Apprise's json:// notifier to a local receiver.

What must hold: each account polled by one replica at a time and the accounts spread out;
every alert delivered once; a killed holder replaced, with nothing lost or doubled; a paused
holder unable to write stale state when it wakes; replicas starting together on an empty
database; and SQLite refusing a second daemon, naming the first.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from monitor.simulator import SimResponse, Simulator, SimulatorServer
from monitor.simulator.webhooks import WebhookSender, new_secret
from monitor.store.engine import make_engine, make_sessionmaker
from monitor.store.schema import Line, Notification, Poll, TransitionRow
from tests.support.daemon import DaemonProcess, cli, subscribe, wait_until, write_config
from tests.support.receiver import Received, Receiver
from tests.support.replicas import (
    HOST,
    Replica,
    TokenLog,
    account_token,
    leaders,
    start_replicas,
)

pytestmark = pytest.mark.timeout(240)

LINE_A = "+12025550101"
LINE_B = "+12025550102"
POLL_INTERVAL, LEASE = 1.0, 3.0


def balanced(replicas: list[Replica], accounts: int) -> dict[str, list[str]] | None:
    """Every account claimed by exactly one replica, none above the fair share."""
    claims = leaders(replicas)
    live = sum(1 for r in replicas if r.proc is not None and r.proc.poll() is None)
    per_replica = Counter(names[0] for names in claims.values())
    if (len(claims) == accounts and all(len(n) == 1 for n in claims.values())
            and max(per_replica.values()) <= math.ceil(accounts / live)):
        return claims
    return None


def polls_by_account(database_url: str) -> dict[str, list[Poll]]:
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.scalars(select(Poll).where(Poll.outcome == "success")
                                   .order_by(Poll.started_at)).all()
    finally:
        engine.dispose()
    found: dict[str, list[Poll]] = {}
    for row in rows:
        found.setdefault(row.account, []).append(row)
    return found


def rows(database_url: str, statement):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return session.execute(statement).all()
    finally:
        engine.dispose()


_ENTRY_ACCOUNT = re.compile(r"\[(acc\d+)\]")
_TITLE_ACCOUNT = re.compile(r"\((acc\d+)\)$")
_CHANGE = re.compile(r"(\(new line\)|[A-Z_]+) → ([A-Z_]+)")


def alerts(messages: list[Received]) -> list[tuple[str, str]]:
    """(account, "FROM → TO") of every line entry, in single and grouped messages alike."""
    found = []
    for m in messages:
        entries = [line for line in m.message.splitlines() if line.startswith("- +")]
        for text in entries or [m.title]:
            account = (_ENTRY_ACCOUNT if entries else _TITLE_ACCOUNT).search(text)
            change = _CHANGE.search(text)
            if account and change:
                found.append((account.group(1), f"{change.group(1)} → {change.group(2)}"))
    return found


def settle(replica: Replica, database_url: str) -> None:
    """Two more polls of one of ``replica``'s accounts, and an empty outbox."""
    account = min(replica.led())
    replica.wait_for_polls(replica.polls(account=account) + 2, account=account)
    wait_until(lambda: not rows(database_url, select(Notification.id).where(
        Notification.state == "pending")), what="the outbox to drain")


def stop_all(replicas: list[Replica]) -> None:
    for replica in replicas:
        if replica.proc is not None and replica.proc.poll() is None:
            replica.proc.send_signal(signal.SIGCONT)
            replica.terminate()


def setup_fleet(sim: Simulator, accounts: int) -> TokenLog:
    sim.add_line(LINE_A)
    sim.add_line(LINE_B)
    return TokenLog(sim, [account_token(i) for i in range(accounts)])


# -- 1. three replicas, ten accounts -----------------------------------------------------------

def test_three_replicas_share_ten_accounts_polling_and_alerting_each_exactly_once(
    tmp_path: Path, postgres_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    requests = setup_fleet(sim, 10)
    replicas = start_replicas(tmp_path, 3, base_url=sim_server.url, database_url=postgres_url,
                              accounts=10, channel_url=receiver.url("ops"))
    try:
        claims = wait_until(lambda: balanced(replicas, 10), timeout=60,
                            what="10 accounts spread over 3 replicas, one holder each")
        share = Counter(names[0] for names in claims.values())
        print(f"\nbalance: {sorted(share.values(), reverse=True)} accounts per replica")
        assert sorted(share) == sorted(r.name for r in replicas)  # every replica polls

        # A steady window: each account is polled by its holder only.
        before = requests.counts()
        first_id = max((p.id for ps in polls_by_account(postgres_url).values() for p in ps),
                       default=0)
        wait_until(lambda: all(
            len([p for p in polls_by_account(postgres_url).get(f"acc{i}", [])
                 if p.id > first_id]) >= 4 for i in range(10)),
            timeout=60, what="four polls of every account")
        window = requests.counts() - before
        recorded = polls_by_account(postgres_url)
        for i in range(10):
            account = f"acc{i}"
            new = [p for p in recorded[account] if p.id > first_id]
            assert {p.replica for p in new} == set(claims[account]), account
            # Every request to the API for this account is one recorded poll (±1 for a
            # request in flight at either end of the window), not one per replica.
            assert abs(window[account_token(i)] - len(new)) <= 1, (account, window, len(new))

        sim.set_status(LINE_A, "AT_RISK")
        wait_until(lambda: len(alerts(receiver.messages)) >= 10, timeout=60,
                   what="an alert about every account's line")
        for replica in replicas:
            settle(replica, postgres_url)
        alerted = Counter(account for account, _ in alerts(receiver.messages))
        assert alerted == Counter({f"acc{i}": 1 for i in range(10)}), alerted
        assert all(change == "HEALTHY → AT_RISK" for _, change in alerts(receiver.messages))
    finally:
        stop_all(replicas)

    # Over the whole run, no two recorded polls of one account overlapped in time.
    for account, polls in polls_by_account(postgres_url).items():
        for earlier, later in itertools.pairwise(polls):
            assert earlier.finished_at <= later.started_at, (account, earlier.id, later.id)
        assert all(p.replica for p in polls), account


# -- 2. kill -9 of a holder --------------------------------------------------------------------

def test_a_killed_holder_is_replaced_and_no_change_or_alert_is_lost_or_doubled(
    tmp_path: Path, postgres_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    requests = setup_fleet(sim, 4)
    replicas = start_replicas(tmp_path, 2, base_url=sim_server.url, database_url=postgres_url,
                              accounts=4, channel_url=receiver.url("ops"),
                              poll_interval=f"{POLL_INTERVAL:g}s", lease=f"{LEASE:g}s")
    try:
        claims = wait_until(lambda: balanced(replicas, 4), timeout=60, what="2 + 2 accounts")
        victim = next(r for r in replicas if r.name == claims["acc0"][0])
        survivor = next(r for r in replicas if r is not victim)
        orphaned = sorted(victim.led())

        killed_at = time.monotonic()
        victim.kill9()
        sim.set_status(LINE_A, "CRITICAL")  # happens while nobody polls the orphans

        wait_until(lambda: survivor.led() == {f"acc{i}" for i in range(4)}, timeout=60,
                   what="the survivor to hold every account")
        takeover = max(
            wait_until(lambda a=a: requests.first_after(killed_at, account_token(
                int(a.removeprefix("acc")))), what=f"a poll of {a}") - killed_at
            for a in orphaned)
        print(f"\ntakeover after kill -9: {takeover:.2f}s (poll interval {POLL_INTERVAL:g}s, "
              f"lease {LEASE:g}s)")

        wait_until(lambda: len({a for a, _ in alerts(receiver.messages)}) >= 4, timeout=60,
                   what="an alert about every account's line")
        settle(survivor, postgres_url)
        alerted = Counter(alerts(receiver.messages))
        per_account = Counter(account for account, _ in alerted.elements())
        duplicates = sum(n - 1 for n in alerted.values())
        lost = 4 - len(per_account)
        print(f"alerts: {len(receiver.messages)} received, {duplicates} duplicates, "
              f"{lost} lost")
        assert set(per_account) == {f"acc{i}" for i in range(4)}
        assert duplicates == 0 and lost == 0
        statuses = rows(postgres_url, select(Line.account, Line.status)
                        .where(Line.phone_number == LINE_A))
        assert sorted(statuses) == [(f"acc{i}", "CRITICAL") for i in range(4)]
    finally:
        stop_all(replicas)


# -- 3. SIGSTOP / SIGCONT: fencing -------------------------------------------------------------

def test_a_holder_paused_past_its_lease_cannot_write_stale_state_when_it_resumes(
    tmp_path: Path, postgres_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    setup_fleet(sim, 1)
    replicas = start_replicas(tmp_path, 2, base_url=sim_server.url, database_url=postgres_url,
                              accounts=1, channel_url=receiver.url("ops"),
                              poll_interval=f"{POLL_INTERVAL:g}s", lease=f"{LEASE:g}s")
    try:
        claims = wait_until(lambda: balanced(replicas, 1), timeout=60, what="one holder")
        holder = next(r for r in replicas if r.name == claims["acc0"][0])
        other = next(r for r in replicas if r is not holder)
        holder.wait_for_polls(1, account="acc0")
        assert holder.proc is not None

        # The holder's next request gets AT_RISK, and the holder freezes right there, the
        # answer unread. Meanwhile the line goes CRITICAL: the newer truth.
        respond = sim.respond
        paused = []

        def freeze_the_holder(authorization: str | None) -> SimResponse:
            if paused:
                return respond(authorization)
            sim.set_status(LINE_A, "AT_RISK")
            reply = respond(authorization)
            assert holder.proc is not None
            os.kill(holder.proc.pid, signal.SIGSTOP)
            paused.append(time.monotonic())
            sim.set_status(LINE_A, "CRITICAL")
            return reply

        sim.respond = freeze_the_holder  # type: ignore[method-assign]
        wait_until(lambda: paused, what="the holder to be frozen mid-poll")

        # The other replica takes over after the lease and records CRITICAL.
        (message,) = receiver.wait_for(1, path="ops", timeout=60)
        assert "CRITICAL" in message.title + message.message
        assert other.led() == {"acc0"}

        holder.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: "stopped polling account acc0" in holder.log(), timeout=30,
                   what="the resumed holder to notice it lost the account")
        settle(other, postgres_url)
        how = ("its write was fenced" if "poll not recorded" in holder.log()
               else "its poll was abandoned before writing")
        print(f"\nresumed holder: {how}; {len(receiver.messages)} alert(s) received")
        assert holder.led() == set()
        assert len(receiver.messages) == 1  # no stale AT_RISK alert, no duplicate
        assert rows(postgres_url, select(Line.status).where(Line.account == "acc0",
                                                             Line.phone_number == LINE_A)) == [
            ("CRITICAL",)]
        assert rows(postgres_url, select(TransitionRow.to_status).where(
            TransitionRow.to_status == "AT_RISK")) == []
        assert {r[0] for r in rows(postgres_url, select(Poll.replica).where(
            Poll.id > 0, Poll.outcome == "success"))} <= {holder.name, other.name}
    finally:
        stop_all(replicas)


# -- 3b. webhooks and the gate API from any replica ----------------------------------------

def test_a_webhook_at_any_replica_alerts_once_and_every_replica_gates_alike(
    tmp_path: Path, postgres_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = new_secret()
    monkeypatch.setenv("REPLICA_WEBHOOK_SECRET", secret)  # inherited by the replicas
    setup_fleet(sim, 1)
    subscribe(sim)  # or the channel also hears that push is not set up
    replicas = start_replicas(tmp_path, 2, base_url=sim_server.url, database_url=postgres_url,
                              accounts=1, channel_url=receiver.url("ops"),
                              extra_account='webhook_secret_env = "REPLICA_WEBHOOK_SECRET"')
    try:
        claims = wait_until(lambda: balanced(replicas, 1), timeout=60, what="one holder")
        holder = next(r for r in replicas if r.name == claims["acc0"][0])
        other = next(r for r in replicas if r is not holder)
        holder.wait_for_polls(1, account="acc0")

        def gate(replica: Replica) -> dict[str, object] | None:
            answer = httpx.get(f"{replica.url}/api/v1/lines/{LINE_A}", timeout=5)
            return answer.json() if answer.status_code == 200 else None

        # Both replicas answer for the line, the one that does not poll it from the database.
        wait_until(lambda: gate(other) is not None, timeout=30, what="the other replica's gate")
        assert gate(other) == gate(holder)

        sender = WebhookSender(secret)
        event = sender.status_updated(LINE_A, previous_status="ACTIVE", new_status="FLAGGED")
        first = sender.send(other.url + "/webhooks/linq", event)  # not the account's holder
        again = sender.send(holder.url + "/webhooks/linq", event)  # Linq retrying elsewhere
        assert (first.status_code, first.json()["duplicate"]) == (200, False)
        assert (again.status_code, again.json()["duplicate"]) == (200, True)

        (message,) = receiver.wait_for(1, path="ops", timeout=60)
        assert message.title.startswith("[FLAGGED]"), message.title
        for replica in replicas:
            wait_until(lambda r=replica: (gate(r) or {}).get("flagged") is True, timeout=30,
                       what=f"{replica.name}'s gate to say the line is flagged")
        assert gate(other) == gate(holder)
        assert (gate(other) or {}).get("advice") == "pause"
        settle(holder, postgres_url)
        assert len(receiver.messages) == 1  # applied once, alerted once
        assert rows(postgres_url, select(TransitionRow.kind, TransitionRow.source).where(
            TransitionRow.kind == "service")) == [("service", "webhook")]
    finally:
        stop_all(replicas)


# -- 4. starting together on an empty database ------------------------------------------------

def test_replicas_starting_together_on_an_empty_database_migrate_it_once(
    tmp_path: Path, postgres_url: str, sim: Simulator, sim_server: SimulatorServer,
    receiver: Receiver,
) -> None:
    setup_fleet(sim, 2)
    replicas = start_replicas(tmp_path, 3, base_url=sim_server.url, database_url=postgres_url,
                              accounts=2, channel_url=receiver.url("ops"))
    try:
        wait_until(lambda: balanced(replicas, 2), timeout=60, what="both accounts held")
        migrated = [r for r in replicas if "migrating database from empty" in r.log()]
        assert len(migrated) == 1, [r.log() for r in replicas]
        result = cli("db", "upgrade", "--config", str(replicas[0].config))
        assert result.returncode == 0, result.stderr
        assert "(was" not in result.stdout  # already at head
        for replica in replicas:
            assert "Traceback" not in replica.log()
            assert f"replica={replica.name}" in replica.log()  # every line names its replica
    finally:
        stop_all(replicas)


# -- 5. SQLite: one daemon only ----------------------------------------------------------------

def test_a_second_daemon_on_the_same_sqlite_file_refuses_naming_the_first(
    tmp_path: Path, sim_server: SimulatorServer,
) -> None:
    database = f"sqlite:///{tmp_path / 'monitor.db'}"
    first = DaemonProcess(write_config(tmp_path / "first.toml", base_url=sim_server.url,
                                       database_url=database), log=tmp_path / "first.log")
    first.start()
    try:
        second = cli("run", "--config", str(write_config(
            tmp_path / "second.toml", base_url=sim_server.url, database_url=database)))
        assert second.returncode == 1
        assert first.proc is not None
        assert f"pid {first.proc.pid} on host {HOST}" in second.stderr
        assert "SQLite supports one daemon at a time" in second.stderr
        first.kill9()  # the kernel drops the lock with the process: no stale lock
        DaemonProcess(tmp_path / "second.toml", log=tmp_path / "second.log").start().terminate()
    finally:
        first.stop()
