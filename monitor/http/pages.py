"""The status page: ``/``, ``/lines/{phone_or_id}``, ``/silences``, ``/health``, ``/login``.

Server-rendered HTML (Jinja2, autoescaped) and one stylesheet, both shipped in the wheel
(monitor/http/templates, monitor/http/static); no script at all, so every page works
without JavaScript and the Content-Security-Policy forbids scripts outright. The overview
reads the gate's in-memory directory (a snapshot taken on the event loop, filtered in a
worker thread); everything else is read from the database in a worker thread
(monitor/store/pages.py). Writes (add and expire a silence) are POSTs carrying a CSRF
token (monitor/http/page_auth.py), record who asked, and are logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from monitor.config import Config
from monitor.core import overview
from monitor.core import status as st
from monitor.core.audit import action_items, primary_driver
from monitor.core.directory import LineDirectory
from monitor.core.labels import Labeler
from monitor.core.model import LineState
from monitor.core.render import format_duration, format_time
from monitor.core.silence import MatcherKind, Silence
from monitor.errors import StoreError, UsageError
from monitor.http.page_auth import PageAuth, read_form
from monitor.http.page_forms import int_param, local_path, silence_form
from monitor.metrics import Metrics
from monitor.store import pages as store
from monitor.store import silences as silence_store

log = logging.getLogger(__name__)

PAGE_SIZE = 50
WINDOWS = (7, 30, 90)  # the line page's timeline, in days
ENDED_SHOWN = 20
MAX_ID = 2**63 - 1
KNOWN_CLASSES = frozenset({"healthy", "watch", "at_risk", "critical"})
HEADERS = {
    # No script, no frame, nothing from another origin; forms post only here.
    "content-security-policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class PageSources(Protocol):
    """What the pages read of the running service (``service.runtime.Runtime``)."""

    @property
    def config(self) -> Config: ...

    @property
    def sessions(self) -> sessionmaker[Session]: ...

    @property
    def directory(self) -> LineDirectory: ...

    @property
    def metrics(self) -> Metrics: ...


def status_class(status: str | None) -> str:
    """The CSS class of a status: its own for the known ones, a neutral one otherwise."""
    name = (status or "").lower()
    return f"status-{name}" if name in KNOWN_CLASSES else "status-other"


def web_url(url: str | None) -> str | None:
    """``url`` if it is http(s), else None: a link from Linq's payload is never a
    ``javascript:`` or ``data:`` URL on our page (the CSP would block it anyway)."""
    return url if url and url.lower().startswith(("https://", "http://")) else None


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("monitor.http", "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["time"] = lambda t: format_time(t) if t is not None else "—"
    env.filters["duration"] = format_duration
    env.filters["status_class"] = status_class
    env.filters["web_url"] = web_url
    return env


def page_routes(sources: PageSources, *, token: str | None,
                clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> list[BaseRoute]:
    """The page routes, to mount at the root of the daemon's server."""
    env = _environment()
    auth = PageAuth(token)
    config = sources.config
    labeler = Labeler.from_config(config.lines)
    accounts = [a.name for a in config.accounts]
    Handler = Callable[[Request], Awaitable[Response]]

    def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
        cookie, new = auth.csrf_cookie(request)
        html = env.get_template(template).render(
            csrf=auth.csrf_token(cookie), login_required=auth.required, path=request.url.path,
            now=clock(), status_class=status_class, **context)
        response = HTMLResponse(html, status_code=status, headers=HEADERS)
        if new:
            auth.set_csrf_cookie(response, request, cookie)
        return response

    def problem(request: Request, status: int, message: str) -> Response:
        return render(request, "problem.html", status, title="Refused", message=message)

    def reading(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if not auth.signed_in(request):
                target = "/login?" + urlencode({"next": local_path(str(request.url.path))})
                return RedirectResponse(target, status_code=303, headers=HEADERS)
            try:
                return await handler(request)
            except StoreError as exc:
                log.warning("status page: database unavailable path=%s error=%s",
                            request.url.path, exc)
                return problem(request, 503, "The database is unavailable; try again shortly.")
        return guarded

    def writing(handler: Callable[[Request, dict[str, str]], Awaitable[Response]]) -> Handler:
        async def checked(request: Request) -> Response:
            if not auth.signed_in(request):
                return problem(request, 403, "Sign in first.")
            form = await read_form(request)
            if form is None:
                return problem(request, 415, "Expected a form (application/x-www-form-urlencoded).")
            if not auth.csrf_ok(request, form):
                return problem(request, 403, "Missing or wrong CSRF token: reload the page and "
                                             "submit the form again.")
            try:
                return await handler(request, form)
            except StoreError as exc:
                log.warning("status page: database unavailable path=%s error=%s",
                            request.url.path, exc)
                return problem(request, 503, "The database is unavailable; nothing was changed.")
        return checked

    names_lower = [e.name.lower() for e in config.lines if e.name]

    def name_for(state: LineState) -> str | None:
        return labeler.meta(state).name

    def labels_for(state: LineState) -> Mapping[str, str]:
        return labeler.meta(state).labels

    async def index(request: Request) -> Response:
        q = request.query_params
        filters = overview.Filters(account=q.get("account", ""), status=q.get("status", ""),
                                   label=q.get("label", "").strip(), text=q.get("q", ""))
        page = max(1, int_param(q.get("page"), 1))
        states = list(sources.directory.all())  # a snapshot, on the loop that updates it
        # Names come only from [[lines]]: if none contains the text, no line's name can,
        # and the 100k per-line lookups are skipped.
        text = filters.text.strip().lower()
        names = name_for if text and any(text in n for n in names_lower) else _no_name
        chosen = await asyncio.to_thread(
            overview.select, states, filters, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE,
            labels_for=labels_for, name_for=names)
        now = clock()
        silences = await asyncio.to_thread(silence_store.load_silences, sources.sessions, now)
        rows = []
        for state in chosen.lines:
            view = sources.directory.view(state)
            rows.append({**view, "name": name_for(state), "since_at": state.since,
                         "silenced": _silenced(silences, state, view["labels"], now)})
        statuses = sorted({s for c in chosen.counts.values() for s in c}
                          | set(st.MONITOR_STATUSES), key=lambda s: (st.rank(s), s))
        pages = max(1, -(-chosen.matched // PAGE_SIZE))
        base = {k: v for k, v in (("account", filters.account), ("status", filters.status),
                                  ("label", filters.label), ("q", filters.text)) if v}
        return render(request, "overview.html", title="Lines", rows=rows, filters=filters,
                      counts=chosen.counts, flagged=chosen.flagged, statuses=statuses,
                      accounts=sorted(set(accounts) | set(chosen.counts)),
                      matched=chosen.matched, total=len(states), page=page, pages=pages,
                      prev_url=_query(base, page - 1) if page > 1 else None,
                      next_url=_query(base, page + 1) if page < pages else None)

    async def line(request: Request) -> Response:
        state = sources.directory.find(request.path_params["phone_or_id"])
        if state is None:
            return render(request, "problem.html", 404, title="No such line",
                          message="No line with this phone number or id is being watched.")
        days = int_param(request.query_params.get("days"), WINDOWS[0])
        days = days if days in WINDOWS else WINDOWS[0]
        now = clock()
        start = now - timedelta(days=days)
        past = await asyncio.to_thread(
            store.line_past, sources.sessions, account=state.account, line_id=state.line_id,
            phone_number=state.phone_number, since=start)
        changes = [(c.at, None if c.kind == "removed" else c.to_status)
                   for c in past.changes if c.kind != "service"]
        view = sources.directory.view(state)
        silences = await asyncio.to_thread(silence_store.load_silences, sources.sessions, now)
        audits = [{"row": a, "driver": primary_driver(a.report) if a.report else a.primary_driver,
                   "actions": action_items(a.report)[:3] if a.report else []}
                  for a in past.audits]
        return render(request, "line.html", title=state.phone_number, line=view,
                      state=state, name=name_for(state), days=days, windows=WINDOWS,
                      segments=overview.timeline(past.initial, changes, start=start, end=now),
                      ticks=overview.ticks(start, now, count=7 if days == 7 else 6),
                      changes=list(reversed(past.changes)),
                      audits=audits, action=st.recommended_action(state.status),
                      silenced=_silenced(silences, state, view["labels"], now))

    async def silences_page(request: Request, *, error: str | None = None,
                            status: int = 200, form: dict[str, str] | None = None) -> Response:
        now = clock()
        found = await asyncio.to_thread(silence_store.list_silences, sources.sessions, now,
                                        include_expired=True)
        ended = sorted((s for s in found if s.state(now) in ("ended", "expired")),
                       key=lambda s: s.until, reverse=True)[:ENDED_SHOWN]
        return render(request, "silences.html", status, title="Silences",
                      active=[s for s in found if s.state(now) == "active"],
                      upcoming=[s for s in found if s.state(now) == "pending"], ended=ended,
                      error=error, form=form or {}, kinds=[k.value for k in MatcherKind],
                      done=request.query_params.get("done", ""))

    async def silences(request: Request) -> Response:
        return await silences_page(request)

    async def add_silence(request: Request, form: dict[str, str]) -> Response:
        try:
            kind, value, duration, reason, by = silence_form(form)
        except ValueError as exc:
            return await silences_page(request, error=str(exc), status=400, form=form)
        now = clock()
        try:
            added = await asyncio.to_thread(
                silence_store.add_silence, sources.sessions, kind=kind, value=value,
                reason=reason, created_by=f"{by} (status page)", starts_at=now,
                ends_at=now + duration, now=now)
        except UsageError as exc:
            return await silences_page(request, error=str(exc), status=400, form=form)
        log.info("silence added from the status page id=%d matcher=%s until=%s by=%s",
                 added.id, added.matcher, format_time(added.until), by)
        return RedirectResponse(f"/silences?done=added+{added.id}", status_code=303,
                                headers=HEADERS)

    async def expire_silence(request: Request, form: dict[str, str]) -> Response:
        by = form.get("by", "").strip()[:100]
        if not by:
            return await silences_page(request, error="Say who you are (the “by” field) to "
                                       "expire a silence.", status=400)
        silence_id = request.path_params["silence_id"]
        if silence_id > MAX_ID:  # past any id the database can hold: no such silence
            return await silences_page(request, error=f"There is no silence {silence_id}.",
                                       status=404)
        try:
            expired = await asyncio.to_thread(silence_store.expire_silence, sources.sessions,
                                              silence_id, clock(), by=f"{by} (status page)")
        except UsageError as exc:
            return await silences_page(request, error=str(exc), status=409)
        log.info("silence expired from the status page id=%d matcher=%s at=%s by=%s",
                 expired.id, expired.matcher, format_time(expired.until), by)
        return RedirectResponse(f"/silences?done=expired+{expired.id}", status_code=303,
                                headers=HEADERS)

    async def health(request: Request) -> Response:
        now = clock()
        found = await asyncio.to_thread(store.health, sources.sessions, accounts=accounts,
                                        now=now)
        outcomes = {sample.labels["outcome"]: int(sample.value)
                    for metric in sources.metrics.webhooks.collect()
                    for sample in metric.samples if sample.name.endswith("_total")}
        return render(request, "health.html", title="Health", health=found,
                      channels=sorted({c.name for c in config.alerts.channels}
                                      | set(found.outbox)),
                      webhook_outcomes=outcomes)

    async def login(request: Request) -> Response:
        next_url = local_path(request.query_params.get("next", "/"))
        if not auth.required or auth.signed_in(request):
            return RedirectResponse(next_url, status_code=303, headers=HEADERS)
        return render(request, "login.html", title="Sign in", next_url=next_url)

    async def do_login(request: Request) -> Response:
        form = await read_form(request)
        if form is None or not auth.csrf_ok(request, form):
            return problem(request, 403, "Missing or wrong CSRF token: reload the page and "
                                         "sign in again.")
        next_url = local_path(form.get("next", "/"))
        if not auth.token_matches(form.get("token", "")):
            return render(request, "login.html", 401, title="Sign in", next_url=next_url,
                          error="That is not the server's API token.")
        response = RedirectResponse(next_url, status_code=303, headers=HEADERS)
        auth.sign_in(response, request)
        return response

    async def logout(request: Request, form: dict[str, str]) -> Response:
        response = RedirectResponse("/login" if auth.required else "/", status_code=303,
                                    headers=HEADERS)
        auth.sign_out(response)
        return response

    return [
        Route("/", reading(index), methods=["GET"]),
        Route("/lines/{phone_or_id}", reading(line), methods=["GET"]),
        Route("/silences", reading(silences), methods=["GET"]),
        Route("/silences", writing(add_silence), methods=["POST"]),
        Route("/silences/{silence_id:int}/expire", writing(expire_silence), methods=["POST"]),
        Route("/health", reading(health), methods=["GET"]),
        Route("/login", login, methods=["GET"]),
        Route("/login", do_login, methods=["POST"]),
        Route("/logout", writing(logout), methods=["POST"]),
        Mount("/static", app=StaticFiles(packages=[("monitor.http", "static")]),
              name="static"),
    ]


def _no_name(state: LineState) -> None:
    return None


def _silenced(silences: list[Silence], state: LineState, labels: dict[str, str],
              now: datetime) -> Silence | None:
    return next((s for s in silences if s.active(now) and s.matches(state, labels)), None)


def _query(base: dict[str, str], page: int) -> str:
    return "/?" + urlencode({**base, "page": str(page)})
