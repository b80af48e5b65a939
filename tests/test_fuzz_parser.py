"""Fuzzing the payload parser: any body ends in a usable result or ApiPayloadError, never
another exception, never a hang. A bounded run here; ``python -m bench.fuzz --minutes N``
runs the same property for as long as you like (tests/support/fuzzing.py)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings

from tests.support.fuzzing import BODIES, check_body, profiles


@profiles(short=100, full=400)
def test_the_parser_survives_hostile_bodies(examples: int) -> None:
    # The deadline is a hang detector, not a speed target: a parse is milliseconds.
    @settings(max_examples=examples, deadline=timedelta(seconds=5),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(BODIES)
    def survives(body: bytes) -> None:
        check_body(body)

    survives()
