"""Linq line reputation monitor: poll, store, detect, alert, expose."""

from __future__ import annotations

__version__ = "0.1.0"
