"""The WATCH early warning's lead time and false warnings, in scenario time.

    python -m bench watch
    python -m bench watch --seeds 10 --db postgresql
    python -m bench watch --seeds 20 --first-seed 20 --model-seeds 2000

The monitor side is the daemon's own code in this process: a `Runtime` (pollers, chat
health, the sweeper, the WATCH assessment with the default ``[chats.watch]`` thresholds)
against the simulator on a real socket. Everything runs on the scenario clock (the
runtime's ``utcnow`` is replaced by it), so six hours of a scenario step cost no waiting:
per step, one poll (the simulator takes the scenario's next step), then a full chat sweep,
ticked at the sweep budget's spacing.

- **souring-chats**: ten lines of twenty chats; line 4's chats sour over days, and Linq
  scores the line AT_RISK at step 14. Reported: the step at which the line went on WATCH,
  the step of the AT_RISK transition, and the lead time between them (steps x 6 h), and
  the WATCH warnings of the nine other lines (want 0).
- **steady** and **flaky-api**, given twenty chats a line and ordinary noise: each chat
  sours with probability 1 % a step (6 h), to AT_RISK (70 %), CRITICAL (20 %) or
  OPTED_OUT (10 %, for good); an AT_RISK or CRITICAL chat recovers with probability 30 %
  a step. About 3 % of the chats are unhealthy at any time, fluctuating. Reported: the
  WATCH warnings (transitions to WATCH) per run of ``--steps`` steps, over ``--seeds``
  seeds (want 0), and the most unhealthy chats any line had at once.

``--model-seeds N`` adds the core's ``assess`` alone on the steady scenario's noise for N
seeds (no daemon, no simulator; seconds for thousands): the false-warning rate the few
daemon seeds only sample. ``--model-chats`` sets its chats a line (busier lines).

The figures are of the decision (when the thresholds fire), not of speed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

import monitor.service.runtime as runtime_module
from bench.__main__ import database, machine
from monitor.config import parse_config
from monitor.core import status as st
from monitor.core.chats import Assessment, ChatHealthSummary, WatchThresholds, assess
from monitor.service.chats import Tick
from monitor.service.runtime import Runtime, open_database
from monitor.simulator import Simulator, SimulatorServer
from monitor.simulator.chats import chat_id_for
from monitor.simulator.scenario import Scenario, load_scenario
from monitor.store import migrate
from monitor.store.schema import TransitionRow

START = datetime(2026, 11, 1, tzinfo=UTC)
STEP = timedelta(hours=6)
CHATS = 20
SOURING_LINE = "+12025550004"

# Per step (6 h): a healthy chat sours with P_SOUR, into one of SOUR_TO; an AT_RISK or
# CRITICAL chat recovers with P_RECOVER. Stationary share unhealthy ~ 0.01 / 0.31 ~ 3 %.
P_SOUR = 0.01
P_RECOVER = 0.30
SOUR_TO = (("AT_RISK", 0.7), ("CRITICAL", 0.2), ("OPTED_OUT", 0.1))


class Clock:
    """The scenario clock: the runtime's `utcnow` while a run lasts."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Run:
    scenario: str
    steps: int
    lines: int
    warnings: list[tuple[int, str]] = field(default_factory=list)  # (step, phone)
    watch_step: int | None = None  # the souring line's first step on WATCH
    at_risk_step: int | None = None  # ... and its AT_RISK transition's
    most_unhealthy: int = 0  # the most AT_RISK + CRITICAL chats of one line at once
    unhealthy_share: list[float] = field(default_factory=list)  # fleet-wide, per step


class Chain:
    """Each chat's health as a Markov chain (see the module docstring)."""

    def __init__(self, chat_ids: list[str], seed: int) -> None:
        self._rng = random.Random(seed)
        self.status = dict.fromkeys(chat_ids, "HEALTHY")

    def step(self) -> None:
        for chat_id, status in self.status.items():
            roll = self._rng.random()
            if status == "HEALTHY" and roll < P_SOUR:
                pick, new = self._rng.random(), status
                for candidate, weight in SOUR_TO:
                    if pick < weight:
                        new = candidate
                        break
                    pick -= weight
                self.status[chat_id] = new
            elif status in ("AT_RISK", "CRITICAL") and roll < P_RECOVER:
                self.status[chat_id] = "HEALTHY"


class Noise:
    """The chain's statuses, put into the simulator after every step."""

    def __init__(self, sim: Simulator, phones: list[str], seed: int) -> None:
        self._sim = sim
        self._chain = Chain([chat_id_for(p, i) for p in phones for i in range(CHATS)], seed)

    def step(self, at: datetime) -> None:
        self._chain.step()
        for chat_id, status in self._chain.status.items():
            # The simulator's copy may have been reset (a looping scenario): make it so.
            if self._sim.chats.chat(chat_id)["health_status"]["status"] != status:
                self._sim.chats.set_status(chat_id, status, at=at)


def model(seeds: range, *, lines: int, steps: int, thresholds: WatchThresholds,
          chats: int = CHATS) -> list[int]:
    """WATCH warnings per seed of the core's ``assess`` alone on the same noise: no
    daemon, so thousands of seeds take seconds. Each line is assessed after a step when its
    counts changed, as the sweep hands over only lines whose chats changed."""
    warned = []
    for seed in seeds:
        phones = [f"+1202555{i:04d}" for i in range(1, lines + 1)]
        chain = Chain([chat_id_for(p, i) for p in phones for i in range(chats)], seed)
        last: dict[str, Assessment | None] = dict.fromkeys(phones)
        seen: dict[str, dict[str, int]] = {}
        entries = 0
        for step in range(1, steps + 1):
            chain.step()
            at = START + step * STEP
            for phone in phones:
                counts = dict.fromkeys(("HEALTHY", "AT_RISK", "CRITICAL", "OPTED_OUT"), 0)
                for i in range(chats):
                    counts[chain.status[chat_id_for(phone, i)]] += 1
                if seen.get(phone) == counts:
                    continue
                seen[phone] = counts
                before = last[phone]
                after = assess(ChatHealthSummary("main", phone, counts, chats, (), at),
                               thresholds, before)
                entries += after.watch and not (before is not None and before.watch)
                last[phone] = after
        warned.append(entries)
    return warned


@asynccontextmanager
async def scenario_runtime(scenario: Scenario, db_url: str, clock: Clock,
                           watch: dict[str, Any]) -> AsyncIterator[tuple[Simulator, Runtime]]:
    sim = Simulator(scenario)
    with SimulatorServer(sim) as server:
        raw: dict[str, Any] = {
            "accounts": [{"name": "main", "base_url": server.url, "token": scenario.token,
                          "max_retries": 0, "timeout": "2s"}],
            "database": {"url": db_url},
            "chats": {"enabled": True, "requests_per_minute": 600, "interval": "1h",
                      "watch": watch},
        }
        config = parse_config(raw, environ={})
        engine, sessions = open_database(config)
        migrate.upgrade(engine)
        original = runtime_module.utcnow
        runtime_module.utcnow = clock  # every collaborator the runtime builds reads it
        try:
            async with Runtime(config, engine, sessions) as rt:
                yield sim, rt
        finally:
            runtime_module.utcnow = original
            engine.dispose()


async def sweep(rt: Runtime, clock: Clock) -> None:
    sweeper = rt.sweepers["main"]
    for _ in range(100_000):
        tick = await sweeper.tick(clock.at)
        clock.at += sweeper.interval
        if tick == Tick.DONE:
            return
        if tick in (Tick.RESTING, Tick.FAILED):
            raise SystemExit(f"sweep: unexpected tick {tick}")
    raise SystemExit("sweep: did not finish")


async def run_scenario(name: str, db_url: str, *, steps: int | None, seed: int | None,
                       watch: dict[str, Any]) -> Run:
    scenario = load_scenario(name)
    scenario = scenario.model_copy(update={
        "start": scenario.start or START,
        "step_seconds": scenario.step_seconds or STEP.total_seconds(),
        "chats": scenario.chats or CHATS})
    count = steps if steps is not None else len(scenario.step)
    clock = Clock(scenario.start or START)
    phones = [spec.phone_number for spec in scenario.initial_lines()]
    result = Run(name, count, len(phones))
    async with scenario_runtime(scenario, db_url, clock, watch) as (sim, rt):
        noise = Noise(sim, phones, seed) if seed is not None else None
        poller = rt.pollers["main"]
        last_id = 0
        for step in range(1, count + 1):
            # The step's time: the scenario's own clock (steady has no steps to carry it).
            clock.at = (scenario.start or START) + step * timedelta(
                seconds=scenario.step_seconds)
            await poller.poll()
            if noise is not None:
                noise.step(clock.at)
            await sweep(rt, clock)
            unhealthy = 0
            for phone in phones:
                bad = sum(c["health_status"]["status"] in ("AT_RISK", "CRITICAL")
                          for c in sim.chats.chats_of(phone))
                unhealthy += bad
                result.most_unhealthy = max(result.most_unhealthy, bad)
                state = poller.find(phone)
                if phone == SOURING_LINE and state is not None:
                    if state.status == st.WATCH and result.watch_step is None:
                        result.watch_step = step
                    if state.status == st.AT_RISK and result.at_risk_step is None:
                        result.at_risk_step = step
            result.unhealthy_share.append(unhealthy / (len(phones) * CHATS))
            with rt.sessions() as session:
                rows = session.scalars(select(TransitionRow).where(
                    TransitionRow.to_status == st.WATCH, TransitionRow.id > last_id)
                    .order_by(TransitionRow.id))
                for row in rows:
                    result.warnings.append((step, row.phone_number))
                    last_id = row.id
    return result


def hours(steps: int) -> str:
    return f"{steps * STEP.total_seconds() / 3600:g} h"


async def main_async(args: argparse.Namespace) -> None:
    async with database(args.db) as db_url:
        souring = await run_scenario("souring-chats", db_url, steps=None, seed=None,
                                     watch=args.watch)
    print(f"\nWATCH lead time and false warnings; db {args.db}; default [chats.watch] "
          f"thresholds{' but ' + str(args.watch) if args.watch else ''}; {machine()}\n")
    print("| scenario | lines x chats | steps (6 h each) | WATCH at step | AT_RISK at step "
          "| lead time | WATCH warnings on other lines |")
    print("|---|---|---:|---:|---:|---:|---:|")
    lead = ("none" if souring.watch_step is None or souring.at_risk_step is None
            else hours(souring.at_risk_step - souring.watch_step))
    others = [w for w in souring.warnings if w[1] != SOURING_LINE]
    print(f"| souring-chats | {souring.lines} x {CHATS} | {souring.steps} | "
          f"{souring.watch_step} | {souring.at_risk_step} | {lead} | {len(others)} |")
    print("\n| scenario (with noise) | lines x chats | steps (6 h each) | seeds | mean "
          "unhealthy | most unhealthy chats on a line | WATCH warnings (per seed) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for name in ("steady", "flaky-api") if args.seeds else ():
        runs = []
        for seed in seeds:
            async with database(args.db) as db_url:
                runs.append(await run_scenario(name, db_url, steps=args.steps, seed=seed,
                                                 watch=args.watch))
        shares = [s for r in runs for s in r.unhealthy_share]
        warnings = sum(len(r.warnings) for r in runs)
        per_seed = ", ".join(str(len(r.warnings)) for r in runs)
        print(f"| {name} | {runs[0].lines} x {CHATS} | {args.steps} | {seeds.start}-"
              f"{seeds.stop - 1} | "
              f"{sum(shares) / len(shares):.1%} | {max(r.most_unhealthy for r in runs)} | "
              f"{warnings} ({per_seed}) |")
    if args.model_seeds:
        thresholds = parse_config({
            "accounts": [{"name": "main", "base_url": "http://127.0.0.1:9", "token": "t"}],
            "chats": {"watch": args.watch}}, environ={}).chats.watch.rules().base
        # 1,000 chats a seed whatever their size: 50 lines of 20, 2 of 500
        lines = max(1, 50 * CHATS // args.model_chats)
        per_seed = model(range(args.model_seeds), lines=lines, steps=args.steps,
                         thresholds=thresholds, chats=args.model_chats)
        line_days = args.model_seeds * lines * args.steps * STEP / timedelta(days=1)
        print(f"\nThe core's assess alone on the same noise (no daemon): {lines} x "
              f"{args.model_chats}, "
              f"{args.steps} steps, seeds 0-{args.model_seeds - 1}: {sum(per_seed)} WATCH "
              f"warnings in {line_days:,.0f} line-days, "
              f"{sum(per_seed) / line_days * 3000:.2f} per 3,000 line-days; seeds with any: "
              f"{sum(1 for n in per_seed if n)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench watch")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seeds", type=int, default=5,
                        help="noise seeds per scenario (0: the souring scenario only)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the first noise seed (another set: e.g. --first-seed 20)")
    parser.add_argument("--model-seeds", type=int, default=0,
                        help="also run the core's assess alone on the steady scenario's "
                             "noise for this many seeds (thousands take seconds)")
    parser.add_argument("--model-chats", type=int, default=CHATS,
                        help="chats a line in the core-alone run (busy lines: e.g. 200)")
    parser.add_argument("--steps", type=int, default=24,
                        help="steps of the noisy scenarios (6 h each)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a [chats.watch] key other than its default, e.g. rise_share=0")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    args.watch = {key: tomllib.loads(f"v = {value}")["v"]
                  for key, value in (item.split("=", 1) for item in args.set)}
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
