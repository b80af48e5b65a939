"""Fuzz the payload parser for N minutes; prints how many bodies it survived.

    python -m bench.fuzz --minutes 10

The property and the body generators are tests/support/fuzzing.py (the CI run is
tests/test_fuzz_parser.py). Hypothesis reports and shrinks the first failing body.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

from hypothesis import HealthCheck, Phase, given, settings

from tests.support.fuzzing import BODIES, check_body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5)
    args = parser.parse_args()
    count = 0
    slowest = 0.0

    @settings(max_examples=300, deadline=timedelta(seconds=5), database=None,
              phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(BODIES)
    def one(body: bytes) -> None:
        nonlocal count, slowest
        started = time.perf_counter()
        check_body(body)
        slowest = max(slowest, time.perf_counter() - started)
        count += 1

    end = time.monotonic() + args.minutes * 60
    started = time.monotonic()
    while time.monotonic() < end:
        one()  # a fresh random batch each round; raises on the first failing body
    print(f"parser fuzz: {count} bodies in {time.monotonic() - started:.0f}s, no crash, "
          f"no exception other than ApiPayloadError; slowest parse {slowest * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
