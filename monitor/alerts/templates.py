"""Per-channel message templates: Jinja2 over the default text, never at the cost of an alert.

A channel may set ``title_template`` and ``body_template`` (and ``body_format``: text,
markdown or html). Templates run in Jinja2's sandbox with ``StrictUndefined``, so a typo
is an error rather than a silently empty field. They are compiled when the config loads
(a syntax error names the key); an error while rendering one message logs why and sends
the default text for that message instead: an alert is never lost to a template.

The deliverer holds one ``Renderer`` per channel and calls ``render`` (line entries, one
or many), ``render_digest``, ``render_trouble`` or ``render_test``. The template context
(documented in docs/messages.md, "Templates"):

- ``kind``: ``single``, ``group``, ``digest``, ``trouble`` or ``test``
- ``entries``: the lines, worst first, at most ``limit`` of them (a dict per line: every
  ``Entry`` field, plus ``change``, ``time_in_previous``, ``recommended_action``,
  ``headline``, ``degraded_for``; for a WATCH line ``watch_reasons`` and ``chats``, each
  chat a dict of ``chat_id``, ``status``, ``since``, ``doc_url``); ``entry``: the first, or
  None; ``more``: how many were left out
- ``summary``: one line saying what the message is about
- ``held``: true when the entries waited out the channel's quiet hours (the summary sent
  when they end)
- ``digest`` (kind digest) and ``trouble`` (kind trouble), else None
- ``channel``, ``timezone``, ``now``, ``default_title``, ``default_body``
- filters: ``duration`` (timedelta or seconds → "3h 5m"), ``time`` (datetime → local time
  in the channel's time zone)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from monitor.config import ChannelConfig
from monitor.core import render
from monitor.core.digest import Digest, render_digest
from monitor.core.model import Entry, Message
from monitor.core.trouble import Trouble, render_trouble

log = logging.getLogger(__name__)

FallbackHook = Callable[[str], None]


def _duration(value: timedelta | float | None) -> str:
    if value is None:
        return ""
    span = value if isinstance(value, timedelta) else timedelta(seconds=value)
    return render.format_duration(span)


@jinja2.pass_context
def _local_time(context: jinja2.runtime.Context, value: datetime | None,
                fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(context.get("timezone", "UTC"))).strftime(fmt)


def _environment(*, autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=autoescape,
                               trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.filters["duration"] = _duration
    env.filters["time"] = _local_time
    return env


_PLAIN = _environment(autoescape=False)
_HTML = _environment(autoescape=True)  # html bodies escape what they interpolate


def check_template(source: str) -> None:
    """Raise ValueError (for the config error) if ``source`` is not a valid template."""
    try:
        _PLAIN.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None


class Renderer:
    """One channel's messages: its templates if it has them, else the default text."""

    def __init__(
        self,
        channel: str,
        *,
        title_template: str | None = None,
        body_template: str | None = None,
        body_format: str = "text",
        timezone: str = "UTC",
        limit: int = render.DEFAULT_LIMIT,
        flap_window: timedelta | None = None,
        on_fallback: FallbackHook | None = None,
    ) -> None:
        self.channel = channel
        self.body_format = body_format
        self.timezone = timezone
        self.limit = limit
        self.flap_window = flap_window
        self._on_fallback = on_fallback
        self._title = _PLAIN.from_string(title_template) if title_template else None
        body_env = _HTML if body_format == "html" else _PLAIN
        self._body = body_env.from_string(body_template) if body_template else None

    @classmethod
    def for_channel(cls, channel: ChannelConfig, *, limit: int = render.DEFAULT_LIMIT,
                    flap_window: timedelta | None = None,
                    on_fallback: FallbackHook | None = None) -> Renderer:
        return cls(channel.name, title_template=channel.title_template,
                   body_template=channel.body_template, body_format=channel.body_format,
                   timezone=channel.timezone, limit=limit, flap_window=flap_window,
                   on_fallback=on_fallback)

    def render(self, entries: Sequence[Entry], *, now: datetime, held: bool = False
               ) -> Message:
        """The message for the entries due together on this channel (one or many);
        ``held``: they waited out the channel's quiet hours."""
        default = render.render_entries(entries, now=now, limit=self.limit,
                                        flap_window=self.flap_window, held=held)
        shown = render.sort_entries(entries)[:self.limit]
        return self._apply(default, now=now, kind="single" if len(entries) == 1 else "group",
                           entries=[self._entry_context(e, now) for e in shown],
                           more=len(entries) - len(shown), summary=render.summarize(entries),
                           held=held)

    def render_digest(self, digest: Digest, *, now: datetime) -> Message:
        default = render_digest(digest, now=now, limit=self.limit)
        return self._apply(default, now=now, kind="digest", digest=digest,
                           summary=digest.summary)

    def render_trouble(self, trouble: Trouble, *, now: datetime) -> Message:
        default = render_trouble(trouble, now=now)
        return self._apply(default, now=now, kind="trouble", trouble=trouble,
                           summary=default.title)

    def render_test(self, *, now: datetime) -> Message:
        return self._apply(render.render_test(self.channel, now=now), now=now, kind="test",
                           summary=f"test notification to channel {self.channel}")

    def _apply(self, default: Message, *, now: datetime, kind: str, **values: Any) -> Message:
        if self._title is None and self._body is None:
            return default
        entries = values.pop("entries", [])
        context = {
            "kind": kind, "entries": entries, "entry": entries[0] if entries else None,
            "more": values.pop("more", 0), "digest": None, "trouble": None, "held": False,
            "channel": self.channel, "timezone": self.timezone, "now": now,
            "default_title": default.title, "default_body": default.body, **values,
        }
        try:
            title = self._title.render(context).strip() if self._title else default.title
            if self._body is None:
                return Message(title=title, body=default.body)
            body = self._body.render(context).strip()
            if not body:
                raise ValueError("the body template rendered nothing")
        # A template can fail in any way Python can (a filter on the wrong type, a division
        # by zero): whatever it is, the alert goes out in the default text.
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("template failed for a %s message, sending the default text: %s",
                        kind, reason, extra={"channel": self.channel})
            if self._on_fallback is not None:
                self._on_fallback(reason)
            return default
        return Message(title=title, body=body, body_format=self.body_format)

    def _entry_context(self, entry: Entry, now: datetime) -> dict[str, Any]:
        values = {f.name: getattr(entry, f.name) for f in fields(entry)}
        previous = entry.time_in_previous
        values.update(
            kind=entry.kind.value,
            labels=dict(entry.labels),
            sequence=[{"at": at, "status": status} for at, status in entry.sequence],
            chats=[{"chat_id": c.chat_id, "status": c.status, "since": c.changed_at,
                    "doc_url": c.doc_url} for c in entry.chats],
            watch_reasons=list(entry.watch_reasons),
            time_in_previous=render.format_duration(previous) if previous is not None else None,
            time_in_previous_seconds=previous.total_seconds() if previous is not None else None,
            change=f"{entry.from_status or '(new line)'} → {entry.to_status}",
            recommended_action=render.recommended_action(entry),
            headline=render.headline(entry, now=now),
            degraded_for=render.format_duration(render.degraded_for(entry, now=now)),
        )
        return values
