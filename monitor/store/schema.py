"""The tables, as typed SQLAlchemy models. Changed only through Alembic revisions.

Row growth: a steady-state poll writes one ``polls`` row; only changes write ``lines``,
``transitions`` and ``notifications`` rows. The status of any line at any past poll is the
latest ``transitions`` row of that line with ``poll_id`` at or below that poll.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which stores naive text) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """Aggregates (max, min) can bypass the column type on SQLite and come back naive."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Poll(Base):
    __tablename__ = "polls"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    outcome: Mapped[str] = mapped_column(String(16))  # success | error
    line_count: Mapped[int | None] = mapped_column(Integer)
    changes: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    # The replica that wrote a successful poll under its lease (None: no lease, e.g. `poll`).
    replica: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_polls_account_id", "account", "id"),)


class Line(Base):
    """The current state of every line ever seen (``present`` false once removed)."""

    __tablename__ = "lines"

    account: Mapped[str] = mapped_column(String(100), primary_key=True)
    line_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(32))
    doc_url: Mapped[str | None] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    present: Mapped[bool]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Alert policy state (monitor/core/policy.py): what each channel heard, debounce, flapping.
    told: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    previous_status: Mapped[str | None] = mapped_column(String(32))
    previous_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    degraded_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pending_status: Mapped[str | None] = mapped_column(String(32))
    pending_count: Mapped[int | None] = mapped_column(Integer)
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    flap: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Service status (ACTIVE/FLAGGED) from webhooks, and Linq's changed_at of that event.
    service_status: Mapped[str | None] = mapped_column(String(32))
    service_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # iMessage | RCS from the list (linq-python 0.65.0); null until the API reports it.
    line_type: Mapped[str | None] = mapped_column(String(32))


class TransitionRow(Base):
    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(100))
    line_id: Mapped[str] = mapped_column(String(64))
    phone_number: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    doc_url: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    previous_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    poll_id: Mapped[int | None] = mapped_column(ForeignKey("polls.id"))
    source: Mapped[str] = mapped_column(String(16), default="poll")

    __table_args__ = (Index("ix_transitions_line", "account", "line_id", "id"),)


class Notification(Base):
    """The outbox: one row per (line notice, channel); see monitor/alerts/outbox.py.

    ``payload`` is the notice's Entry as JSON, rendered when sent so rows due together
    become one message; rows without it (digests, the monitor's own trouble) carry their
    final text. ``state``: pending | delivered | failed | silenced (recorded, never sent)
    | dropped (deferred by quiet hours, then moot because the line recovered).
    ``dedupe_key`` makes scheduled messages (digests, trouble notices) once-only.
    """

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transition_id: Mapped[int | None] = mapped_column(ForeignKey("transitions.id"))
    account: Mapped[str] = mapped_column(String(100))
    line_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    deferred: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    dedupe_key: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_notifications_state_channel", "state", "channel", "id"),
        Index("uq_notifications_dedupe_key", "dedupe_key", unique=True),
        # An audit adds its diagnosis to, and releases, its transition's rows: without this
        # each audit scanned the whole outbox, history included.
        Index("ix_notifications_transition", "transition_id"),
    )


class Trouble(Base):
    """The monitor's own trouble (an account's polls failing, a channel giving up):
    announced once when it starts and once when it clears."""

    __tablename__ = "troubles"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    active: Mapped[bool]
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    detail: Mapped[str | None] = mapped_column(Text)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookEvent(Base):
    """Every accepted webhook, keyed by its ``webhook-id``: the idempotency record.

    The unique constraint on ``event_id`` is what makes a redelivered event (or the same
    event reaching two replicas) count once: only the insert that wins processes it.
    ``state``: pending (recorded, not yet applied), applied, ignored (older than what is
    known, or nothing new), unmatched (no such line yet; retried after each poll that
    brings its number in), expired (unmatched past ``webhook_unmatched_expiry``), other
    (an event type we do not act on).
    """

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    account: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text)
    # The event's data.phone_number: open events are matched to lines by this index.
    phone_number: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_webhook_events_state", "state", "account", "id"),
                      Index("ix_webhook_events_phone", "account", "state", "phone_number"))


class Audit(Base):
    """A reputation audit of one line: started, then its report once Linq completes it."""

    __tablename__ = "audits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(100))
    line_id: Mapped[str | None] = mapped_column(String(64))
    phone_number: Mapped[str] = mapped_column(String(32))
    audit_id: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))  # pending | complete | error | skipped
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    severity: Mapped[str | None] = mapped_column(String(32))
    primary_driver: Mapped[str | None] = mapped_column(String(64))
    report: Mapped[dict[str, object] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_audits_phone", "phone_number", "id"),
        # ``audit show`` and the gate find a line's latest audit by phone number or line id.
        Index("ix_audits_line", "line_id", "id"),
        # The audit budget counts an account's audits started in the last hour.
        Index("ix_audits_account_started", "account", "started_at"),
    )


class HistorySummary(Base):
    """What retention pruning condensed: one line's time per status over a past period."""

    __tablename__ = "history_summaries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(100))
    line_id: Mapped[str] = mapped_column(String(64))
    phone_number: Mapped[str] = mapped_column(String(32))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    seconds_by_status: Mapped[dict[str, float]] = mapped_column(JSON)
    changes: Mapped[int] = mapped_column(Integer)
    degradations: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_history_summaries_line", "account", "line_id", "period_end"),)


class PollSummary(Base):
    """Pruned polls, counted per account and UTC day."""

    __tablename__ = "poll_summaries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(100))
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD, UTC
    successes: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)


class SilenceRow(Base):
    """``reputation-monitor silence add``: who silenced which lines, why, and until when."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    matcher_kind: Mapped[str] = mapped_column(String(16))  # line | label | account
    matcher_value: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # ended early
    expired_by: Mapped[str | None] = mapped_column(String(200))  # who ended it early

    # The daemon reads the silences that have not ended before each planning step.
    __table_args__ = (Index("ix_silences_ends_at", "ends_at"),)
class Lease(Base):
    """A named lease (``account:<name>`` for polling, ``job:<name>`` for periodic jobs).

    ``generation`` goes up on every acquisition and is the fencing token: a write made under
    a lease checks it in its own transaction (monitor/store/leases.py).
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A run-once job's last completed slot (e.g. the UTC day of a daily prune).
    done_key: Mapped[str | None] = mapped_column(String(100))


class Replica(Base):
    """A running daemon's heartbeat; the live ones share the accounts between them."""

    __tablename__ = "replicas"

    replica: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class ChatRow(Base):
    """One chat's health as last seen (sweep or webhook). Written only when its status or
    times change: a sweep over unchanged chats reads and writes nothing here."""

    __tablename__ = "chats"

    account: Mapped[str] = mapped_column(String(100), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(32))  # our line
    status: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())  # health_status.updated_at
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())  # last activity: the window
    doc_url: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # A line's summary: its chats active in the window.
        Index("ix_chats_line", "account", "phone_number", "updated_at"),
        # The lines with unhealthy chats, re-summarised at the end of a sweep.
        Index("ix_chats_status", "account", "status", "phone_number"),
    )


class ChatSweep(Base):
    """Where an account's chat sweep is (``cursor``; None between sweeps) and what the
    current and the last full sweep cost, so a restart resumes rather than starts over."""

    __tablename__ = "chat_sweeps"

    account: Mapped[str] = mapped_column(String(100), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pages: Mapped[int] = mapped_column(Integer)
    requests: Mapped[int] = mapped_column(Integer)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_duration: Mapped[float | None] = mapped_column(Float)  # seconds
    last_pages: Mapped[int | None] = mapped_column(Integer)
    last_requests: Mapped[int | None] = mapped_column(Integer)
