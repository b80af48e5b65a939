"""Pause the cyclic garbage collector around allocation-heavy, cycle-free work."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Parsing and diffing a 100k-line answer allocates about a million short-lived objects.

    With the collector on, those allocations trigger full collections that walk every
    long-lived line state, roughly doubling the cost of a poll (bench/RESULTS.md). None
    of the objects made inside form reference cycles, so reference counting frees them
    anyway; collection simply resumes afterwards. Use only around synchronous code.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
