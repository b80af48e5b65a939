"""The one exception tree of the monitor.

    MonitorError
    ├── ConfigError            bad configuration; names every bad key's path
    ├── ApiError               the Linq API answered badly or not at all
    │   ├── ApiAuthError       401/403: the token was rejected (permanent)
    │   ├── ApiRateLimited     429 after retries; carries retry_after
    │   └── ApiPayloadError    the answer is not the documented shape (not JSON, wrong shape)
    ├── StoreError             the database refused a unit of work
    │   ├── LeaseLost          a write under a lease found the lease taken over (fenced)
    │   └── SchemaMismatch     no database yet, or one older or newer than this version
    ├── UsageError             a command asked for something that cannot be (unknown id, ...)
    ├── AlreadyRunning         another daemon holds this SQLite database
    ├── DeliveryError          a notification channel failed (permanent or not)
    └── WebhookError           an incoming webhook cannot be accepted
        ├── WebhookRejected    missing/bad signature or stale timestamp (answered 401)
        └── WebhookMalformed   signed, but not the JSON we expect (answered 400)

Foreign exceptions (httpx, SQLAlchemy, apprise) are mapped to these at the module that
talks to the foreign library, with ``raise ... from exc`` so the cause stays visible.
Messages never contain secrets: tokens, webhook secrets and channel URLs are redacted
before they reach an exception.
"""

from __future__ import annotations

from collections.abc import Sequence


class MonitorError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(MonitorError):
    """The configuration is invalid.

    ``problems`` lists every ``(key, reason)`` found, ``key`` being the dotted path of the
    offending key ("" for the file as a whole); ``key`` and ``reason`` are the first. One
    problem reads ``key: reason``; several read ``N problems in the config:`` followed by
    one indented ``key: reason`` line each.
    """

    def __init__(self, key: str, reason: str,
                 *, more: Sequence[tuple[str, str]] = ()) -> None:
        self.problems = [(key, reason), *more]
        self.key = key
        self.reason = reason
        lines = [f"{k}: {r}" if k else r for k, r in self.problems]
        if len(lines) == 1:
            super().__init__(lines[0])
        else:
            super().__init__(f"{len(lines)} problems in the config:\n"
                             + "\n".join(f"  {line}" for line in lines))

    @classmethod
    def of(cls, problems: Sequence[tuple[str, str]]) -> ConfigError:
        """One error carrying every problem, in the order given (at least one)."""
        (key, reason), *more = problems
        return cls(key, reason, more=more)


class ApiError(MonitorError):
    """A request to the Linq API failed.

    ``trace_id`` is the ``X-Trace-ID`` Linq support asks for, when the API sent one.
    ``permanent`` is true when retrying the same request cannot help.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        trace_id: str | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.trace_id = trace_id
        self.permanent = permanent


class ApiAuthError(ApiError):
    """The API rejected the token (401/403)."""


class ApiRateLimited(ApiError):
    """The API kept answering 429; ``retry_after`` is its last advice in seconds."""

    def __init__(self, message: str, *, retry_after: float | None, trace_id: str | None) -> None:
        super().__init__(message, status=429, trace_id=trace_id)
        self.retry_after = retry_after


class ApiPayloadError(ApiError):
    """The API answered 200 with a body that is not the documented shape."""


class StoreError(MonitorError):
    """A database unit of work failed; nothing of it was committed."""


class UsageError(MonitorError):
    """A command's arguments cannot be acted on (an unknown id, an account not configured).

    The CLI exits 2 with the message, as for any other bad usage.
    """
class LeaseLost(StoreError):
    """Another replica took the lease over; the write was refused and nothing committed."""


class SchemaMismatch(StoreError):
    """The database cannot be read as it is: it does not exist yet, or its schema is behind
    this version (not migrated) or ahead of it (written by a newer version). The CLI exits 2
    with the message, which says what to do; nothing was changed."""


class AlreadyRunning(MonitorError):
    """Another process (the daemon, or a command writing what it writes) holds the database:
    this one refuses to run beside it. ``holder`` says who it is."""

    def __init__(self, message: str, *, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class DeliveryError(MonitorError):
    """A channel did not accept a notification."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class WebhookError(MonitorError):
    """An incoming webhook request cannot be accepted; nothing of it was recorded."""


class WebhookRejected(WebhookError):
    """The signature is missing, wrong or too old/new. The reason is for logs only: the
    sender gets a bare 401, so a forger learns nothing about which check failed."""


class WebhookMalformed(WebhookError):
    """The request is authentic but its body is not the JSON envelope we expect."""
