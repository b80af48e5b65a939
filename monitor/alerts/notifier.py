"""The Apprise notifier: the only module that imports apprise.

One ``apprise.Apprise`` object per channel, so each channel's outcome is known on its own.
Apprise has no overall timeout and reports failures only through its logger, so ``send``
runs it in a worker thread under our own deadline and captures that thread's apprise log
records as the error text, with the channel's secrets redacted.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
import apprise.decorators

from monitor.core.model import Message
from monitor.errors import DeliveryError

_apprise_log = logging.getLogger("apprise")
# Apprise may log URLs with tokens; its records are captured and redacted, never propagated.
_apprise_log.propagate = False
_apprise_log.setLevel(logging.WARNING)

# Deliveries get their own threads: a hanging channel must not starve database work.
_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="deliver")


class _SendCapture(logging.Handler):
    """Collects apprise log records per send.

    A context variable, not a thread-local: Apprise may run the plugin in a thread of its
    own, and it carries the caller's context there.
    """

    _records: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
        "apprise_records", default=None)

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def start(self) -> None:
        self._records.set([])

    def stop(self) -> list[str]:
        records = self._records.get() or []
        self._records.set(None)
        return records

    def emit(self, record: logging.LogRecord) -> None:
        records = self._records.get()
        if records is not None:
            records.append(record.getMessage())


_BODY_FORMATS = {"text": apprise.NotifyFormat.TEXT, "markdown": apprise.NotifyFormat.MARKDOWN,
                 "html": apprise.NotifyFormat.HTML}

_capture = _SendCapture()
_apprise_log.addHandler(_capture)


@apprise.decorators.notify(on="console", name="Terminal output")  # type: ignore[untyped-decorator,no-untyped-call]
def _console(body: str, title: str, notify_type: str, *args: object, **kwargs: object) -> bool:
    """``console://``: print notifications to standard output (the demo uses it)."""
    rule = "─" * 72
    sys.stdout.write(f"\n{rule}\n🔔 {title}\n{body}\n{rule}\n")
    sys.stdout.flush()
    return True


def is_valid_url(url: str) -> bool:
    """True if Apprise recognises the URL (scheme known, required parts present)."""
    return bool(apprise.Apprise().add(url))


class Channel:
    """One configured destination. ``send`` raises DeliveryError on failure."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self._secrets = secret_fragments(url)
        # Sequential mode keeps the plugin in our worker thread, where its log records
        # (Apprise's only error channel) are captured for this channel alone.
        self._apprise = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
        if not self._apprise.add(url):
            raise DeliveryError(f"channel {name}: URL not understood by Apprise", permanent=True)

    async def send(self, message: Message, *, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(_executor, self._send_blocking, message)
        try:
            ok, errors = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            # The thread may still finish and deliver: the outbox treats this as a failed
            # attempt, which is the one place a duplicate can come from besides a crash.
            raise DeliveryError(f"no answer within {timeout:.0f}s") from None
        if not ok:
            detail = "; ".join(errors[-3:]) or "the channel reported failure"
            raise DeliveryError(self.redact(detail))

    def _send_blocking(self, message: Message) -> tuple[bool, list[str]]:
        _capture.start()
        try:
            ok = self._apprise.notify(
                title=message.title, body=message.body,
                body_format=_BODY_FORMATS.get(message.body_format, apprise.NotifyFormat.TEXT),
            )
        except Exception as exc:  # a plugin bug must count as a failed delivery, not kill us
            return False, [*_capture.stop(), f"{type(exc).__name__}: {exc}"]
        return bool(ok), _capture.stop()

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)


# Below this length a fragment is replaced only where it stands alone (not inside a longer
# word), so a three-letter password does not blank every word that happens to contain it.
_SHORT = 6


def redact(text: str, fragments: list[str]) -> str:
    """``text`` with every fragment (longest first, see ``secret_fragments``) as ``***``."""
    for fragment in fragments:
        if len(fragment) >= _SHORT:
            text = text.replace(fragment, "***")
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(fragment)}(?![A-Za-z0-9])", "***",
                          text)
    return text


def secret_fragments(url: str) -> list[str]:
    """Parts of an Apprise URL that may be credentials or say where they go, longest first.

    Apprise URLs carry secrets in the user/password, the host (``tgram://BOT_TOKEN/...``),
    the path (Slack and Discord tokens) and the query string, and the host of a self-hosted
    endpoint is itself not for logs: every non-empty part is a fragment to redact, as
    written and percent-decoded. Short ones (under six characters) are matched only as
    whole words by ``redact``.
    """
    fragments = {url}
    parts = urlsplit(url)
    try:
        port = str(parts.port or "")
    except ValueError:  # Apprise accepts URLs whose "port" is a token
        port = ""
    candidates = [parts.netloc, parts.netloc.rpartition("@")[2], parts.hostname or "",
                  parts.username or "", parts.password or ""]
    candidates += [f"{parts.hostname}:{port}"] if parts.hostname and port else []
    candidates += parts.netloc.rpartition("@")[2].split(":")  # host:TOKEN, no port
    candidates += re.split(r"[/,]", parts.path)
    for name, value in parse_qsl(parts.query):
        candidates += [value] if name.lower() not in _HARMLESS_QUERY_KEYS else []
    fragments.update(c for c in candidates if c.strip())
    fragments.update(unquote(f) for f in list(fragments))
    # Apprise's own words in its messages must stay readable: a path part like "hook" or a
    # scheme-like host such as "localhost" is not worth blanking every mention of.
    fragments.difference_update(_COMMON_WORDS)
    return sorted(fragments, key=len, reverse=True)


# Query options Apprise reads that are never credentials (format=markdown, ...).
_HARMLESS_QUERY_KEYS = frozenset({"format", "overflow", "emojis", "verify", "rto", "cto",
                                  "store", "method", "priority", "mode"})
_COMMON_WORDS = frozenset({"localhost", "json", "xml", "form", "api", "v1", "v2", "hook",
                           "hooks", "webhook", "webhooks", "notify", "services"})
