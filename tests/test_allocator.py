"""The daemon's malloc arena limit: set on glibc, an operator's MALLOC_ARENA_MAX wins."""

from __future__ import annotations

import platform

import pytest

from monitor.service import allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_it_limits_glibc_to_one_arena(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert allocator.share_one_arena() is True


def test_it_leaves_an_operators_malloc_arena_max_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    calls: list[str] = []
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: calls.append(name))
    assert allocator.share_one_arena() is False
    assert calls == []
