"""kill -9 chaos for as long as you like; prints the audit's counts.

    python -m bench.chaos --cycles 200 --db sqlite
    python -m bench.chaos --cycles 500 --db postgresql --lines 100 --changes 30

The same run as tests/test_kill9_chaos.py (see tests/support/chaos.py): a busy scenario,
the daemon killed with SIGKILL at a random moment and restarted each cycle, then an audit
of every recorded change against what the receiver got.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg

from tests.support.chaos import run_kill9_cycles

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--lines", type=int, default=40)
    parser.add_argument("--changes", type=int, default=12, help="lines changed every 0.5 s")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # Kept afterwards (the daemon's log is there); printed at the end.
    tmp = Path(tempfile.mkdtemp(prefix="chaos-"))
    name = None
    if args.db == "sqlite":
        url = f"sqlite:///{tmp / 'chaos.db'}"
    else:
        name = f"rm_chaos_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        url = f"{base}/{name}"
    try:
        result = run_kill9_cycles(tmp, url, cycles=args.cycles, lines=args.lines,
                                  changes_per_tick=args.changes, seed=args.seed,
                                  progress=print)
    finally:
        if name is not None:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    audit = result.audit
    print(f"\n{args.cycles} kill -9 cycles on {args.db} in {result.seconds:.0f}s; "
          f"daemons that died on their own: {result.died_on_its_own}; messages from other "
          f"processes that reached the receiver's port (left out): {result.foreign}")
    print(audit.summary())
    print(f"work directory (daemon.log): {tmp}")
    print("PASS" if audit.clean else "FAIL: see the counts above")
    return 0 if audit.clean else 1


if __name__ == "__main__":
    sys.exit(main())
