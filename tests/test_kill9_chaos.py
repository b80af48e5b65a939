"""kill -9 at random moments of a busy scenario, fifty times, then an audit of every change.

The daemon is killed with SIGKILL at a random moment of its life (start-up, a poll, a
commit, a send) while a dozen lines change every half second, and started again, fifty
times on each database. Then it runs until the database agrees with the fake API, and the
audit (tests/support/audit.py) checks that every recorded change reached each channel its
routing requires exactly once, in per-line order: nothing lost, nothing invented, and no
duplicate beyond the one message per channel a kill can catch in flight.
Two profiles: three cycles in the fast suite, the fifty (``-m slow``) in CI after it.
``python -m bench.chaos`` runs the same for as many cycles as you like.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chaos import CHANNELS, run_kill9_cycles

pytestmark = [pytest.mark.timeout(600), pytest.mark.both_databases]


@pytest.mark.parametrize("cycles", [pytest.param(3, id="short"),
                                    pytest.param(50, id="full", marks=pytest.mark.slow)])
def test_it_loses_nothing_and_duplicates_only_in_flight_messages_across_kill_9s(
    tmp_path: Path, database_url: str, cycles: int,
) -> None:
    result = run_kill9_cycles(tmp_path, database_url, cycles=cycles, seed=6)
    audit = result.audit
    print(f"\nkill -9 x{cycles}: {audit.summary()} ({result.seconds:.0f}s)")
    assert result.died_on_its_own == 0, (tmp_path / "daemon.log").read_text()[-5000:]
    assert audit.expected >= cycles, "the scenario was not busy: too few alerts"
    assert audit.unrouted == 0 and audit.spurious == 0
    assert audit.lost == 0 and audit.strangers == 0 and audit.unsettled == 0
    assert audit.out_of_order == 0
    assert audit.delivered == audit.expected
    # One message per channel can be in flight when a kill lands; nothing else repeats.
    assert audit.duplicates <= cycles * len(CHANNELS)
