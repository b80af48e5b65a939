"""What each option's value may be: argparse ``type=`` functions, and the one rewrite of
the command line that argparse needs (a negative duration)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from datetime import timedelta

# Options whose value is a duration: `--for -5m` must reach the duration check (argparse
# would take "-5m" for an unknown option and say "expected one argument").
DURATION_OPTIONS = ("--for", "--since", "--duration")
_NEGATIVE = re.compile(r"^-[\d.]")


def text(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value.strip()


def short_text(value: str) -> str:
    value = text(value)
    if len(value) > 200:
        raise argparse.ArgumentTypeError("must be at most 200 characters")
    return value


def label(value: str) -> str:
    from monitor.core.silence import parse_label_matcher

    try:
        key, label_value = parse_label_matcher(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return short_text(f"{key}={label_value}")


def statuses(value: str) -> list[str]:
    found = [part.strip().upper() for part in value.split(",") if part.strip()]
    if not found:
        raise argparse.ArgumentTypeError("name a status, e.g. CRITICAL or critical,at_risk")
    return found


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number") from None
    if number <= 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def positive_duration(value: str) -> timedelta:
    """A duration in the config's syntax ('30s', '5m', '1h30m', '7d', '250ms'), above zero."""
    from monitor.config import parse_duration

    text = value.strip()
    if text.startswith("-"):
        try:
            parse_duration(text[1:])
        except ValueError:
            pass
        else:
            raise argparse.ArgumentTypeError(f"must be longer than 0s (got {text})")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        raise argparse.ArgumentTypeError(f"'{text}' has no unit: write e.g. {text}s or "
                                         f"{text}m (units: ms, s, m, h, d)")
    try:
        duration = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if duration <= timedelta(0):
        raise argparse.ArgumentTypeError(f"must be longer than 0s (got {text})")
    return duration


def attach_negative_values(argv: Sequence[str]) -> list[str]:
    """``--for -5m`` as ``--for=-5m``: argparse reads a value that starts with "-" as an
    option, and the user would be told the option lacks its argument instead of what is
    wrong with the value. Stops at ``--``."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            return out + args[i:]
        if word in DURATION_OPTIONS and i + 1 < len(args) and _NEGATIVE.match(args[i + 1]):
            out.append(f"{word}={args[i + 1]}")
            i += 2
            continue
        out.append(word)
        i += 1
    return out
