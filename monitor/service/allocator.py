"""The C allocator of the running daemon: one malloc arena for all its threads.

glibc gives each thread that allocates while another holds the arena lock an arena of its
own (up to 8 per core), and memory freed into one arena is reused only by the threads
on it. The daemon parses each poll's ~25 MB answer, plans, commits and renders scrapes on
a few worker threads in turn, so every arena came to hold its own high-water mark of
those transients: at 100k lines peak RSS was ~425 MB with the default and 339 MB with one
arena, at the same CPU (bench/RESULTS.md, "RSS and steady CPU"). Python threads hold the
GIL while they allocate, so one arena costs them almost no lock waits.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's malloc.h


def share_one_arena() -> bool:
    """Limit glibc to one malloc arena from now on; True if it was set.

    Does nothing where the C library is not glibc, or when ``MALLOC_ARENA_MAX`` is set in
    the environment (an operator's own choice wins). Call it before the first worker
    thread starts: arenas made earlier stay.
    """
    if "MALLOC_ARENA_MAX" in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        done = libc.mallopt(_M_ARENA_MAX, 1) == 1
    except (OSError, AttributeError) as exc:
        log.debug("cannot limit malloc arenas: %s", exc)
        return False
    return bool(done)
