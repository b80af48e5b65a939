"""What the one-shot CLI commands do, apart from parsing: poll once, show, explain, test."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import socket
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.notifier import Channel
from monitor.alerts.templates import Renderer
from monitor.cli.lines import LineFilter, shown
from monitor.cli.shapes import dump, line_json, silence_json, test_alert_json
from monitor.cli.tables import GiveWay, table, terminal_width
from monitor.config import (
    DEFAULT_TOKEN_ENV,
    DEFAULT_WEBHOOK_SECRET_ENV,
    AccountConfig,
    AlertsConfig,
    ChannelConfig,
    Config,
)
from monitor.core.digest import Digest
from monitor.core.labels import Labeler
from monitor.core.render import change_text, format_duration, format_time, status_after
from monitor.core.silence import MatcherKind, Silence
from monitor.core.trouble import Trouble
from monitor.errors import ConfigError, DeliveryError, StoreError, UsageError
from monitor.ha.replica import identity
from monitor.service.exclusive import (
    AccountClaim,
    claim_accounts,
    command_identity,
    prune_lease,
    refuse_beside_replicas,
    sqlite_alone,
)
from monitor.service.poller import PollOutcome
from monitor.service.runtime import (
    Runtime,
    build_channels,
    open_current,
    open_database,
    utcnow,
)
from monitor.store import migrate, queries, silences
from monitor.store.engine import describe_failure, make_engine, safe_url

# A one-shot poll delivers what it queued, but does not wait out a channel's backoff.
_POLL_DELIVERY_ROUNDS = 3
# How long `db prune` may hold the daemon's pruning lease if it dies before releasing it.
_PRUNE_LEASE = timedelta(hours=1)
# What gives way when a table is wider than the terminal: the doc URL first (--json has it).
# TYPE (iMessage/RCS) gives way before the line id: the phone number already names the line.
_STATUS_GIVES_WAY = (GiveWay("DOC URL", 24), GiveWay("TYPE", 8), GiveWay("LINE ID", 12),
                     GiveWay("SERVICE", 7))
_HISTORY_GIVES_WAY = (GiveWay("DOC URL", 24), GiveWay("ALERTS", 16))
_SILENCES_GIVE_WAY = (GiveWay("REASON", 20), GiveWay("BY", 12))


async def poll_once(config: Config) -> list[PollOutcome]:
    """One poll of every account and one policy round (silences that ended, reminders and
    escalations due, flapping settled), then delivery of what they queued: the daemon's
    code path. Never beside a daemon polling the same accounts (service/exclusive.py):
    raises AlreadyRunning on SQLite; on PostgreSQL an account a replica holds is not
    polled and comes back as a failed outcome naming the replica."""
    me = identity(config.ha.replica)
    with sqlite_alone(config, me, "poll") as alone:
        engine, sessions = await asyncio.to_thread(open_database, config)
        names = [a.name for a in config.accounts]
        if alone:  # the SQLite lock is held: no daemon can be polling
            return await _poll_claimed(config, engine, sessions,
                                       AccountClaim(dict.fromkeys(names)))
        async with claim_accounts(sessions, names, holder=command_identity(me, "poll").name,
                                  ttl=config.ha.lease) as claim:
            return await _poll_claimed(config, engine, sessions, claim)


async def _poll_claimed(config: Config, engine: Engine, sessions: sessionmaker[Session],
                        claim: AccountClaim) -> list[PollOutcome]:
    async with Runtime(config, engine, sessions, leases=claim) as runtime:
        await runtime.refresh_silences()
        outcomes = []
        for account, poller in runtime.pollers.items():
            if not claim.holds(account):
                outcomes.append(PollOutcome(
                    account, ok=False, error=f"not polled: {claim.refused.get(account)} "
                    "is running and polls this account (see `status`)"))
                continue
            outcome = await poller.poll(fence=claim.fence(account))
            if outcome.ok:
                reviewed = await poller.review(fence=claim.fence(account))
                outcome = replace(outcome, notifications=outcome.notifications + reviewed)
            outcomes.append(outcome)
        # Alerts wait for their audit at most audit_wait; so does a one-shot poll.
        wait = max((a.audit_wait.total_seconds() for a in config.accounts), default=0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.audits.drain(), wait + 1)
        for _ in range(_POLL_DELIVERY_ROUNDS):
            if not await runtime.deliverer.run_once():
                break
        return outcomes


def print_status(config: Config, *, as_json: bool, include_removed: bool,
                 wanted: LineFilter | None = None) -> int:
    engine, sessions = open_current(config, read_only=True)
    try:
        with sessions() as session:
            lines = queries.current_lines(session, include_removed=include_removed)
            polls = queries.last_polls(session)
            outbox = queries.outbox_counts(session)
            failed = queries.failed_notifications(session)
    finally:
        engine.dispose()
    now = utcnow()
    wanted = wanted or LineFilter()
    labeler = Labeler.from_config(config.lines)
    lines = shown(lines, wanted, lambda line: labeler.meta(line).labels)
    if as_json:
        print(json.dumps({
            "lines": [line_json(line, name=labeler.meta(line).name,
                                labels=labeler.meta(line).labels) for line in lines],
            "polls": [{"account": p.account, "finished_at": p.finished_at.isoformat(),
                       "outcome": p.outcome, "line_count": p.line_count, "error": p.error,
                       "last_success_at": _iso(p.last_success_at)} for p in polls],
            "notifications": outbox,
            "failed_notifications": [{"id": n.id, "channel": n.channel, "line_id": n.line_id,
                                      "title": n.title, "attempts": n.attempts,
                                      "last_error": n.last_error} for n in failed],
        }, indent=2))
        return 0
    rows = [(line.account, line.phone_number, line.line_id,
             line.status if line.present else f"{line.status} (removed)",
             line.service_status or "-", line.line_type or "-",
             f"{format_time(line.since)} ({format_duration(now - line.since)})",
             line.doc_url or "-") for line in lines]
    if rows or not wanted:
        print(table(("ACCOUNT", "PHONE", "LINE ID", "STATUS", "SERVICE", "TYPE", "SINCE",
                     "DOC URL"),
                    rows, width=terminal_width(), give_way=_STATUS_GIVES_WAY))
    else:
        print(f"no line matches {wanted.describe()}")
    print()
    for p in polls:
        last_ok = format_time(p.last_success_at) if p.last_success_at else "never"
        detail = f", error: {p.error}" if p.error else ""
        print(f"account {p.account}: last poll {p.outcome} at {format_time(p.finished_at)}"
              f" ({p.line_count if p.line_count is not None else '-'} lines), "
              f"last success {last_ok}{detail}")
    print(f"notifications: {outbox.get('pending', 0)} pending, "
          f"{outbox.get('delivered', 0)} delivered, {outbox.get('failed', 0)} gave up")
    for n in failed:
        print(f"  gave up: #{n.id} to {n.channel} after {n.attempts} attempts: {n.title}"
              f" (last error: {n.last_error})")
    return 0


def print_history(
    config: Config, *, line: str | None, since: timedelta | None, as_json: bool,
    limit: int = 50,
) -> int:
    """The newest ``limit`` changes; says on stderr how many older ones were left out."""
    engine, sessions = open_current(config, read_only=True)
    try:
        with sessions() as session:
            start = utcnow() - since if since else None
            rows = queries.history(session, line=line, since=start, limit=limit)
            total = (queries.history_count(session, line=line, since=start)
                     if len(rows) == limit else len(rows))
            alerts = queries.alerts_for(session, [r.id for r in rows])
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps([{
            "at": r.at.isoformat(), "account": r.account, "phone_number": r.phone_number,
            "line_id": r.line_id, "kind": r.kind, "from_status": r.from_status,
            "to_status": status_after(r.kind, r.to_status), "doc_url": r.doc_url,
            "source": r.source,
            "alerts": [{"channel": c, "state": s} for c, s in alerts.get(r.id, [])],
        } for r in rows], indent=2))
    else:
        print(table(("WHEN", "ACCOUNT", "PHONE", "CHANGE", "KIND", "ALERTS", "DOC URL"), [
            (format_time(r.at), r.account, r.phone_number,
             change_text(r.kind, r.from_status, r.to_status), r.kind,
             ", ".join(f"{c}:{s}" for c, s in alerts.get(r.id, [])) or "-", r.doc_url or "-")
            for r in rows
        ], width=terminal_width(), give_way=_HISTORY_GIVES_WAY))
    if total > len(rows):
        # On stderr: the table (or JSON) on stdout stays exactly what was asked for.
        sys.stdout.flush()
        print(f"({total - len(rows)} older changes not shown; --limit {total} shows all "
              f"{total})", file=sys.stderr)
    return 0


def explain_config(config: Config) -> str:
    out = ["config OK", ""]
    for account in config.accounts:
        if account.token is not None:
            source = "inline token (prefer token_env or token_file)"
        elif account.token_file is not None:
            source = f"token from file {account.token_file}"
        else:
            source = f"token from ${account.token_env or DEFAULT_TOKEN_ENV}"
        out.append(f"account {account.name}: polls {account.base_url}/v3/phone_numbers every "
                   f"{format_duration(account.poll_interval)}, {source}")
        out.append(_explain_extras(account))
    out.append(f"database: {safe_url(config.database_url())}")
    if config.database_url().startswith("sqlite"):
        out.append("replicas: one daemon (SQLite); use PostgreSQL to run several")
    else:
        out.append(f"replicas: any number may share this database; an account moves to "
                   f"another replica {format_duration(config.ha.lease)} after its holder "
                   f"stops renewing (replica name: {config.ha.replica or 'hostname:pid'})")
    out.append(f"server: http://{config.server.listen}/metrics, /healthz, /readyz, "
               f"/webhooks/linq, /api/v1 ("
               + ((f"bearer token from file {config.server.api_token_file}"
                   if config.server.api_token_file is not None
                   else f"bearer token from ${config.server.api_token_env}")
                  + (", /metrics too" if config.server.protect_metrics else "")
                  if config.server.api_token_env or config.server.api_token_file
                  else "no API token: keep it on loopback")
               + ")")
    alerts = config.alerts
    out.append(f"alerts: recovery notices {'on' if alerts.notify_recovery else 'off'}; "
               f"retries up to {format_duration(alerts.give_up_after)}, "
               f"each send limited to {format_duration(alerts.delivery_timeout)}")
    out.append("  " + _explain_policy(alerts))
    if not alerts.channels:
        out.append("  no channels: changes are recorded and exposed, nobody is notified")
    for channel in alerts.channels:
        scheme = urlsplit(channel.apprise_url.get_secret_value()).scheme
        out.append(f"  channel {channel.name}: {scheme}:// (details hidden), "
                   f"hears lines at {channel.min_status} or worse")
        out += [f"    {part}" for part in _explain_channel(channel)]
    out += [f"warning: {w}" for w in config.warnings]
    return "\n".join(out)


def _explain_policy(alerts: AlertsConfig) -> str:
    def polls(n: int) -> str:
        return "at once" if n == 1 else f"after {n} polls in a row"

    flapping = (f"more than {alerts.flap_changes} changes within "
                f"{format_duration(alerts.flap_window)} is flapping"
                if alerts.flap_changes else "flapping detection off")
    return (f"worse status alerted {polls(alerts.confirm_polls)}, better "
            f"{polls(alerts.recover_polls)}; {flapping}; own trouble announced after "
            f"{format_duration(alerts.stale_after)} of failed polls")


def _explain_channel(channel: ChannelConfig) -> list[str]:
    """What a channel's routing and timing keys do, one line each (only the ones set)."""
    parts = []
    if channel.accounts or channel.labels:
        accounts = f" of accounts {', '.join(channel.accounts)}" if channel.accounts else ""
        labels = ", ".join(f"{k}={v}" for k, v in sorted(channel.labels.items()))
        parts.append(f"only lines{accounts}" + (f" with labels {labels}" if labels else ""))
    wait = format_duration(channel.group_wait)
    parts.append(f"changes within {wait} are one message (at most {channel.group_limit} "
                 "listed)" + (", CRITICAL at once" if channel.critical_skips_group_wait else ""))
    if channel.escalate_after is not None:
        parts.append(f"hears of a line once it has been {channel.min_status} or worse for "
                     f"{format_duration(channel.escalate_after)}")
    if channel.repeat_interval is not None:
        parts.append(f"reminded every {format_duration(channel.repeat_interval)} while a "
                     "line stays degraded")
    if channel.quiet_hours is not None:
        critical = "deferred too" if channel.quiet_hours_critical == "defer" else "sent"
        parts.append(f"quiet hours {channel.quiet_hours} {channel.timezone}: below CRITICAL "
                     f"deferred to one summary, CRITICAL {critical}")
    if channel.digest is not None:
        parts.append(f"daily digest at {channel.digest} {channel.timezone}")
    if channel.title_template or channel.body_template:
        parts.append(f"own templates ({channel.body_format}); see `alerts preview --channel "
                     f"{channel.name}`")
    return parts


def _explain_extras(account: AccountConfig) -> str:
    variable = account.webhook_secret_env or DEFAULT_WEBHOOK_SECRET_ENV
    source = (f"file {account.webhook_secret_file}" if account.webhook_secret_file is not None
              else f"${variable}")
    hooks = (f"webhooks on (secret from {source}"
             + (", legacy signatures accepted)" if account.accept_legacy_signatures else ")")
             if account.webhook_secret is not None else f"webhooks off (${variable} not set)")
    audits = (f"audits on {', '.join(account.audit_on)} (alerts wait up to "
              f"{format_duration(account.audit_wait)})" if account.audit_on else "audits off")
    return f"  {hooks}; {audits}"


async def send_test_alerts(config: Config, *, as_json: bool = False) -> bool:
    """Send a test message to every channel at once; print how each went. True when
    every channel took it (False too when there is no channel)."""
    channels = build_channels(config)
    if not channels:
        print(dump(test_alert_json([])) if as_json
              else "no channels configured under [[alerts.channels]]")
        return False
    renderers = {c.name: Renderer.for_channel(c) for c in config.alerts.channels}
    results = await asyncio.gather(*(
        _test_one(channel, renderers[name], config.alerts.delivery_timeout.total_seconds())
        for name, channel in channels.items()
    ))
    if as_json:
        print(dump(test_alert_json(results)))
    else:
        for name, error in results:
            print(f"{name}: delivered" if error is None else f"{name}: FAILED: {error}")
    return all(error is None for _, error in results)


async def _test_one(channel: Channel, renderer: Renderer, timeout: float
                    ) -> tuple[str, str | None]:
    try:
        await channel.send(renderer.render_test(now=utcnow()), timeout=timeout)
    except DeliveryError as exc:
        return channel.name, str(exc)
    return channel.name, None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def print_report(config: Config, *, since: timedelta, fmt: str) -> int:
    from monitor.cli import report as reporting

    end = utcnow()
    start = end - since
    engine, sessions = open_current(config, read_only=True)
    try:
        with sessions() as session:
            histories = queries.line_histories(session, start=start)
            watched = queries.first_polls(session)
    finally:
        engine.dispose()
    window = reporting.Window.of(start=start, end=end, first_polls=watched)
    rows = reporting.build(histories, window)
    if fmt == "json":
        print(dump(reporting.to_json(rows, window)))
    elif fmt == "csv":
        print(reporting.to_csv(rows, window), end="")
    else:
        print(reporting.to_markdown(rows, window))
    return 0


def prune_now(config: Config) -> int:
    from monitor.store.retention import prune

    retention = config.database.retention
    if retention is None:
        print("retention is off ([database] retention = \"off\"): nothing pruned")
        return 0
    me = identity(config.ha.replica)
    with sqlite_alone(config, me, "db prune") as alone:
        engine, sessions = open_current(config)
        try:
            with (contextlib.nullcontext() if alone else prune_lease(
                    sessions, command_identity(me, "db prune").name, _PRUNE_LEASE)):
                result = prune(sessions, cutoff=utcnow() - retention)
        finally:
            engine.dispose()
    print(f"{result.summary()} (older than {format_duration(retention)})")
    return 0


def upgrade_now(config: Config) -> int:
    """``db upgrade``: migrate to this version's revision, never under a running daemon."""
    me = identity(config.ha.replica)
    url = config.database_url()
    with sqlite_alone(config, me, "db upgrade") as alone:
        engine = make_engine(url)
        head = migrate.head_revision()
        try:
            with engine.connect() as connection:
                current = migrate.current_revision(connection)
                replicas = not alone and inspect(connection).has_table("replicas")
            # At head there is nothing to do, and nothing a running daemon could mind.
            if current != head and replicas:
                refuse_beside_replicas(sessionmaker(engine), "db upgrade", config.ha.lease)
            before = migrate.upgrade(engine, where=f"the database {safe_url(url)}")
        except SQLAlchemyError as exc:
            raise StoreError(describe_failure(url, exc)) from exc
        finally:
            engine.dispose()
    was = "" if before == head else f" (was {before or 'empty'})"
    print(f"database at revision {head}{was}")
    return 0


def preview_alerts(config: Config, *, channel: str | None) -> int:
    """Print every kind of message as each channel (or the one named) would receive it.

    Sample data only: nothing is sent and the database is not opened. Raises ConfigError
    for a channel name that is not configured.
    """
    from monitor.alerts.samples import Held, samples

    configured = config.alerts.channels
    if channel is not None:
        configured = [c for c in configured if c.name == channel]
        if not configured:
            names = ", ".join(c.name for c in config.alerts.channels) or "none"
            raise ConfigError("--channel", f"no channel named '{channel}' (configured: {names})")
    now = utcnow()
    examples = samples(now, account=config.accounts[0].name)
    renderers: list[tuple[str, str | None]] = [
        (f"channel {c.name} ({c.body_format}, {c.timezone})", c.name) for c in configured
    ] or [("default text (no channels configured)", None)]
    for heading, name in renderers:
        print(f"════ {heading} ════")
        failures: list[str] = []
        if name is None:
            renderer = Renderer("default")
        else:
            renderer = Renderer.for_channel(next(c for c in configured if c.name == name),
                                            on_fallback=failures.append)
        for label, sample in [*examples, ("test", None)]:
            failures.clear()
            if sample is None:
                message = renderer.render_test(now=now)
            elif isinstance(sample, Digest):
                message = renderer.render_digest(sample, now=now)
            elif isinstance(sample, Trouble):
                message = renderer.render_trouble(sample, now=now)
            elif isinstance(sample, Held):
                message = renderer.render(sample.entries, now=now, held=True)
            else:
                message = renderer.render(sample, now=now)
            print(f"\n── {label} ──")
            for reason in failures:
                print(f"(template failed: {reason}; the default text below is what would "
                      "be sent)")
            print(f"title: {message.title}")
            if message.body_format != "text":
                print(f"body ({message.body_format}):")
            print(message.body)
        print()
    return 0
def add_silence(config: Config, *, kind: MatcherKind, value: str, duration: timedelta,
                reason: str, created_by: str | None) -> int:
    """``silence add``: store it, print its id and when it ends. Warns (does not refuse)
    when the matcher selects no line yet: the line may simply not have been polled yet."""
    accounts = [a.name for a in config.accounts]
    if kind is MatcherKind.ACCOUNT and value not in accounts:
        raise UsageError(f"--account: no account named {value!r} in the config "
                         f"(configured: {', '.join(accounts)})")
    now = utcnow()
    engine, sessions = open_current(config)
    try:
        if kind is MatcherKind.LINE and not silences.known_line(sessions, value):
            print(f"warning: no line {value} has been seen in any account yet; the silence "
                  "applies once one appears with this phone number or id", file=sys.stderr)
        silence = silences.add_silence(
            sessions, kind=kind, value=value, reason=reason,
            created_by=created_by or default_author(), starts_at=now, ends_at=now + duration,
            now=now)
    finally:
        engine.dispose()
    if kind is MatcherKind.LABEL:
        key, _, label_value = value.partition("=")
        if not any(entry.labels.get(key) == label_value for entry in config.lines):
            print(f"warning: no [[lines]] entry in the config gives the label {value}; the "
                  "silence matches no line until one does", file=sys.stderr)
    print(f"silence {silence.id} added: {silence.matcher} until {format_time(silence.until)} "
          f"({format_duration(duration)})")
    return 0


def print_silences(config: Config, *, include_expired: bool, as_json: bool = False) -> int:
    now = utcnow()
    engine, sessions = open_current(config, read_only=True)
    try:
        found = silences.list_silences(sessions, now, include_expired=include_expired)
    finally:
        engine.dispose()
    if as_json:
        print(dump([silence_json(s, now) for s in found]))
        return 0
    if not found:
        print("no silences" if include_expired else "no active or upcoming silences")
        return 0
    print(table(("ID", "MATCHER", "FROM", "UNTIL", "BY", "REASON", "STATE"), [
        (str(s.id), s.matcher, format_time(s.starts_at), format_time(s.until), s.created_by,
         s.reason, _silence_state(s, now)) for s in found
    ], width=terminal_width(), give_way=_SILENCES_GIVE_WAY))
    return 0


def expire_silence(config: Config, silence_id: int) -> int:
    engine, sessions = open_current(config)
    try:
        silence = silences.expire_silence(sessions, silence_id, utcnow(), by=default_author())
    finally:
        engine.dispose()
    print(f"silence {silence.id} ({silence.matcher}) expired at {format_time(silence.until)}")
    return 0


def default_author() -> str:
    """Who is silencing, when ``--by`` does not say: ``$USER@hostname``."""
    user = os.environ.get("USER")
    if not user:
        try:
            user = getpass.getuser()  # LOGNAME, ..., then the password database
        except (OSError, KeyError):  # a container user with no passwd entry
            user = "unknown"
    return f"{user}@{socket.gethostname()}"[:200]  # the column's width


def _silence_state(silence: Silence, now: datetime) -> str:
    state = silence.state(now)
    if state == "active":
        return f"active ({format_duration(silence.until - now)} left)"
    if state == "pending":
        return f"pending (starts in {format_duration(silence.starts_at - now)})"
    return state
