"""kill -9 at random moments of a busy scenario, restarting each time, then an audit.

Shared by tests/test_kill9_chaos.py (a bounded run in CI) and bench/chaos.py (as long as
you like). The simulator runs in this process on a real socket; a churn thread keeps
changing many lines (statuses, now and then an undocumented one, a removal, a return)
while the daemon subprocess is started, killed with SIGKILL after a random time, and
started again. After the last cycle the churn stops, the daemon runs until the database
agrees with the simulator and the outbox is settled, and ``tests.support.audit`` checks
every recorded change against what the receiver got.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from monitor.simulator import Simulator, SimulatorServer
from monitor.store.engine import make_engine, make_sessionmaker
from tests.support.audit import Audit, audit, recorded_statuses
from tests.support.daemon import (
    TOKEN,
    DaemonProcess,
    parse_metrics,
    sample_value,
    wait_until,
    write_config,
)
from tests.support.receiver import Received, Receiver

CHANNELS = {"ops": "AT_RISK", "pager": "CRITICAL"}
STATUSES = ("HEALTHY", "AT_RISK", "CRITICAL")


@dataclass(frozen=True)
class ChaosResult:
    cycles: int
    died_on_its_own: int
    foreign: int  # messages from some other process that reached our receiver's port
    audit: Audit
    seconds: float


class Churn:
    """Changes ``per_tick`` random lines every ``period`` seconds until stopped."""

    def __init__(self, sim: Simulator, phones: list[str], *, per_tick: int, period: float,
                 seed: int) -> None:
        self._sim = sim
        self._phones = phones
        self._per_tick = per_tick
        self._period = period
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._removed: list[str] = []
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def __enter__(self) -> Churn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        rng = self._rng
        while not self._stop.wait(self._period):
            present = [p for p in self._phones if p not in self._removed]
            picked = rng.sample(present, min(self._per_tick, len(present)))
            self._sim.set_many({p: rng.choice(STATUSES) if rng.random() > 0.02 else "FLAGGED"
                                for p in picked})
            if self._removed and rng.random() < 0.2:
                self._sim.add_line(self._removed.pop(0), status=rng.choice(STATUSES))
            elif rng.random() < 0.1:
                phone = rng.choice(present)
                self._sim.remove_line(phone)
                self._removed.append(phone)


class Launcher:
    """Drives tests/support/forkrun.py: daemons forked with their imports already done."""

    def __init__(self, config: Path, log: Path) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forkrun", str(config), str(log)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            cwd=Path(__file__).resolve().parents[2])  # where `tests` is importable

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(30)

    def _ask(self, command: str) -> str:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(command + "\n")
        answer = self._proc.stdout.readline().strip()
        if not answer:
            raise AssertionError(f"the launcher died (exit {self._proc.wait(5)})")
        return answer

    def start(self) -> int:
        return int(self._ask("start").removeprefix("started "))

    def kill(self) -> int:
        """SIGKILL the daemon and reap it; its exit code (-9 unless it had died already)."""
        return int(self._ask("kill").removeprefix("killed "))


MOMENTS = ("start-up", "mid-poll", "mid-send")


def lands_at(moment: str, rng: random.Random, receiver: Receiver, daemon_url: str) -> None:
    """Return at a random instant of ``moment`` in the daemon's life, whatever the load.

    Waiting for events rather than a fixed delay makes every cycle do real work on a slow
    machine too: a kill "mid-send" comes right after the receiver took a message, one
    "mid-poll" somewhere within a poll interval after a poll completed.
    """
    if moment == "start-up":
        time.sleep(rng.uniform(0, 0.5))  # the random instant is the point
    elif moment == "mid-send":
        receiver.wait_for(len(receiver.messages) + rng.randint(1, 8), timeout=60)
    else:
        wait_until(lambda: _polls(daemon_url) >= 1, timeout=60, what="a poll")
        time.sleep(rng.uniform(0, 1.0))  # the random instant is the point


def _polls(daemon_url: str) -> int:
    try:
        samples = parse_metrics(httpx.get(daemon_url + "/metrics", timeout=2).text)
    except httpx.TransportError:
        return 0
    return int(sample_value(samples, "linq_reputation_polls_total", account="main",
                            outcome="success") or 0)


def ours(receiver: Receiver, nonce: str) -> list[Received]:
    """Messages posted by our daemon, their path turned back into ``/<channel>``."""
    prefix = f"/{nonce}-"
    return [replace(m, path="/" + m.path.removeprefix(prefix)) for m in list(receiver.messages)
            if m.path.startswith(prefix)]


def sim_statuses(sim: Simulator) -> dict[str, str]:
    return {item["phone_number"]: item["reputation"]["status"] for item in sim.lines()}


def run_kill9_cycles(
    workdir: Path,
    database_url: str,
    *,
    cycles: int = 50,
    lines: int = 40,
    changes_per_tick: int = 12,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ChaosResult:
    """Run ``cycles`` start/kill -9 cycles, settle, and audit. Raises AssertionError if the
    daemon never settles."""
    rng = random.Random(seed)
    # On a shared machine another test's daemon may still be retrying a receiver whose
    # port ours now has: our channels post under a path of our own.
    nonce = uuid.uuid4().hex[:12]
    sim = Simulator(token=TOKEN)
    phones = [f"+1202555{n:04d}" for n in range(1, lines + 1)]
    for phone in phones:
        sim.add_line(phone)
    started = time.monotonic()
    died = 0
    with SimulatorServer(sim) as server, Receiver() as receiver:
        config = write_config(
            workdir / "config.toml", base_url=server.url, database_url=database_url,
            channels=[(name, receiver.url(f"{nonce}-{name}"), level)
                      for name, level in CHANNELS.items()],
            # A short send deadline keeps the claim of a message killed mid-send short
            # (twice this plus 30 s), so the final settle does not wait long.
            extra_alerts='delivery_timeout = "1s"',
            # Every change of a grouped message listed (no "+N more"), so all are audited.
            channel_options='group_wait = "0s"\ngroup_limit = 500',
        )
        log_path = workdir / "daemon.log"
        daemon_url = DaemonProcess(config, log=log_path).url
        with Churn(sim, phones, per_tick=changes_per_tick, period=0.5, seed=seed), \
                Launcher(config, log_path) as launcher:
            for cycle in range(cycles):
                moment = rng.choice(MOMENTS)
                launcher.start()
                lands_at(moment, rng, receiver, daemon_url)
                if launcher.kill() != -9:
                    died += 1
                if progress:
                    progress(f"cycle {cycle + 1}/{cycles} ({moment}): "
                             f"{len(receiver.messages)} messages")
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        daemon = DaemonProcess(config, log=log_path).start(timeout=90)
        try:
            # Killed mid-send, a message stays claimed for up to 32 s before it is re-sent;
            # a long run can also leave hundreds of messages to send.
            try:
                wait_until(lambda: recorded_statuses(sessions) == sim_statuses(sim)
                           and audit(sessions, [], CHANNELS).unsettled == 0, timeout=300,
                           what="the database to match the simulator, outbox settled")
            except AssertionError as exc:
                stale = {phone: (status, sim_statuses(sim).get(phone)) for phone, status
                         in recorded_statuses(sessions).items()
                         if sim_statuses(sim).get(phone) != status}
                now = audit(sessions, ours(receiver, nonce), CHANNELS)
                raise AssertionError(f"{exc}: {now.summary()}; stored vs API: {stale}; "
                                     f"log {log_path}") from None
            assert daemon.terminate() == 0
        finally:
            daemon.stop()
        result = audit(sessions, ours(receiver, nonce), CHANNELS)
        foreign = len(receiver.messages) - len(ours(receiver, nonce))
        engine.dispose()
    return ChaosResult(cycles=cycles, died_on_its_own=died, foreign=foreign, audit=result,
                       seconds=time.monotonic() - started)
