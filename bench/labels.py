"""How long names and labels cost at fleet scale: the labeler and the info metric.

    python -m bench.labels --lines 100000 --exact 1000 --globs 20

Times (best of ``--runs``) for: ``Labeler.meta`` over every line; a cold
``LineInfo.update`` (every line, as at start-up) and the scrape block it renders; and a
steady update of 0.1 % of the lines followed by a render. Printed, not asserted.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

from monitor.config import parse_config
from monitor.core.labels import Labeler
from monitor.core.model import LineState
from monitor.metrics import LineInfo


def _best(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.labels")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--exact", type=int, default=1000, help="entries naming one number")
    parser.add_argument("--globs", type=int, default=20, help="glob entries (area codes)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    entries: list[dict[str, object]] = [
        {"match": f"+1{200 + g:03d}*", "labels": {"team": f"team-{g}", "site": f"s{g}"}}
        for g in range(args.globs)]
    entries += [{"match": f"+1{200 + i % 400:03d}555{i:04d}", "name": f"Desk {i}"}
                for i in range(args.exact)]
    config = parse_config({"accounts": [{"name": "main", "token": "t"}], "lines": entries})
    labeler = Labeler.from_config(config.lines)
    since = datetime(2026, 11, 27, tzinfo=UTC)
    states = [LineState("main", f"id-{i}", f"+1{200 + i % 400:03d}555{i % 10000:04d}",
                        "HEALTHY", None, since) for i in range(args.lines)]

    meta = _best(args.runs, lambda: [labeler.meta(s)
                                     for s in states])
    info = LineInfo(labeler)
    cold = _best(args.runs, lambda: (info.update(states), info.pieces()))
    labelled = sum(1 for s in states
                   if labeler.meta(s).labels
                   or labeler.meta(s).name)
    size = sum(len(p) for p in info.pieces())
    changed = states[:: max(1, args.lines // max(1, args.lines // 1000))]
    steady = _best(args.runs, lambda: (info.update(changed), info.pieces()))

    print(f"{args.lines} lines, {args.exact} exact entries, {args.globs} globs: "
          f"{labelled} lines labelled, info block {size / 1e6:.1f} MB")
    print(f"  meta() for every line:            {meta * 1000:8.1f} ms "
          f"({meta / args.lines * 1e6:.2f} µs a line)")
    print(f"  info update, every line + render: {cold * 1000:8.1f} ms")
    print(f"  info update, {len(changed)} lines + render:   {steady * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
