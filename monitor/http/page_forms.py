"""The status page's form fields and query parameters, checked: each problem is a
ValueError whose message names the field, shown above the form as is."""

from __future__ import annotations

from datetime import timedelta

from monitor.config import parse_duration
from monitor.core.silence import MatcherKind, parse_label_matcher


def silence_form(form: dict[str, str]) -> tuple[MatcherKind, str, timedelta, str, str]:
    """The add form's fields, validated; ValueError names the field that is wrong."""
    try:
        kind = MatcherKind(form.get("kind", ""))
    except ValueError:
        raise ValueError("“Matches” must be line, label or account.") from None
    value = form.get("value", "").strip()
    if not value or len(value) > 200:
        raise ValueError("“Value” is required (a phone number or line id, key=value, or an "
                         "account name; at most 200 characters).")
    if kind is MatcherKind.LABEL:
        try:
            key, label = parse_label_matcher(value)
        except ValueError as exc:
            raise ValueError(f"“Value”: {exc}") from None
        value = f"{key}={label}"
    try:
        duration = parse_duration(form.get("duration", "").strip())
    except ValueError as exc:
        raise ValueError(f"“Duration”: {exc}") from None
    if duration <= timedelta(0) or duration > timedelta(days=366):
        raise ValueError("“Duration” must be more than 0 and at most a year (e.g. 2h, 30m, 1d).")
    reason = form.get("reason", "").strip()
    by = form.get("by", "").strip()
    if not reason:
        raise ValueError("“Reason” is required: say why, for whoever finds the silence later.")
    if not by or len(by) > 100:
        raise ValueError("“By” is required: who is adding the silence (at most 100 characters).")
    return kind, value, duration, reason[:1000], by


def int_param(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def local_path(target: str) -> str:
    """Only a path on this server: never an open redirect to another site."""
    return target if target.startswith("/") and not target.startswith("//") \
        and "\\" not in target else "/"
