"""``/api/v1``: the read-only pre-send gate.

- ``GET /api/v1/lines``: every present line; filters ``status`` (a reputation status, or
  ``FLAGGED`` for flagged lines), ``account``, ``label`` (``key=value`` or ``key``). Pages
  of ``limit`` lines (default and most ``MAX_PAGE``), by account and phone number; the
  answer's ``next_cursor``, passed back as ``cursor``, continues after the page's last
  line. The directory keeps the lines in that order; the filters run as the page is read
  and only the page's own views are built, so a page stops reading once it is full.
- ``GET /api/v1/lines/{phone_or_id}``: one line (404 if unknown).
- ``GET /api/v1/lines/{phone_or_id}/history``: its recorded changes, newest first (this
  one reads the database; it is not on the per-message path).
- ``GET /api/v1/openapi.json``: the contract.
Bearer auth, body limits and timeouts come from monitor/http/guard.py.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from monitor.core.directory import LineDirectory
from monitor.core.model import LineState
from monitor.http.openapi import CURSOR_PATTERN, MAX_PAGE, document
from monitor.store import queries

JSON = "application/json"
HISTORY_LIMIT = 500
_CURSOR = re.compile(CURSOR_PATTERN)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def gate_mount(directory: LineDirectory, sessions: sessionmaker[Session]) -> Mount:
    """``/api/v1`` as its own app, so every answer under it, 404s and 405s too, is JSON."""

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail))

    app = Starlette(routes=gate_routes(directory, sessions),
                    exception_handlers={HTTPException: http_error})
    return Mount("/api/v1", app=app)


def gate_routes(directory: LineDirectory, sessions: sessionmaker[Session]) -> list[Route]:
    spec = orjson.dumps(document())

    async def lines(request: Request) -> Response:
        params = request.query_params
        status = params.get("status")
        account = params.get("account")
        label = params.get("label")
        try:
            limit = _limit(params.get("limit"))
            after = _after(params.get("cursor"))
        except ValueError as exc:
            return _error(400, str(exc))
        label_key, _, label_value = (label or "").partition("=")
        selected = (s for s in directory.in_order(after)
                    if _matches(s, status=status, account=account)
                    and (not label or _labelled(directory.labels_for(s), label_key,
                                                label_value)))
        # One more than the page: whether another page follows.
        page = list(itertools.islice(selected, limit + 1))
        more = len(page) > limit
        views = [directory.view(s) for s in page[:limit]]
        cursor = _cursor(page[limit - 1]) if more else None
        return _json({"count": len(views), "lines": views, "next_cursor": cursor})

    async def line(request: Request) -> Response:
        state = directory.find(request.path_params["phone_or_id"])
        if state is None:
            return _error(404, "no such line")
        return _json(directory.view(state))

    async def history(request: Request) -> Response:
        state = directory.find(request.path_params["phone_or_id"])
        if state is None:
            return _error(404, "no such line")
        try:
            rows = await asyncio.to_thread(_history, sessions, state)
        except SQLAlchemyError:
            return _error(503, "the database is unavailable")
        return _json({"line_id": state.line_id, "phone_number": state.phone_number,
                      "changes": rows})

    async def openapi(_: Request) -> Response:
        return Response(spec, media_type=JSON)

    return [
        Route("/lines", lines, methods=["GET"]),
        Route("/lines/{phone_or_id}", line, methods=["GET"]),
        Route("/lines/{phone_or_id}/history", history, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]


def _limit(raw: str | None) -> int:
    if raw is None:
        return MAX_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def _cursor(state: LineState) -> str:
    """Opaque to clients: the page's last ``account:phone``, in hex (a phone number's ``+``
    would read as a space if a client put it in a query string unescaped)."""
    return f"{state.account}:{state.phone_number}".encode().hex()


def _after(raw: str | None) -> tuple[str, str] | None:
    """The (account, phone number) a cursor continues after. Any even-length lowercase hex
    is a position in that order (account names hold no ``:``), so it needs no checking
    beyond its alphabet."""
    if raw is None:
        return None
    if not _CURSOR.fullmatch(raw):
        raise ValueError("cursor is not one this API gave out")
    account, _, phone = bytes.fromhex(raw).decode("utf-8", "replace").partition(":")
    return account, phone


def _labelled(labels: dict[str, str], key: str, value: str) -> bool:
    return key in labels and (not value or labels[key] == value)


def _matches(state: LineState, *, status: str | None, account: str | None) -> bool:
    if account is not None and state.account != account:
        return False
    if status is None:
        return True
    if status == "FLAGGED":
        return state.service_status == "FLAGGED"
    return state.status == status


def _history(sessions: sessionmaker[Session], state: LineState) -> list[dict[str, Any]]:
    with sessions() as session:
        rows = queries.history(session, line=state.line_id, limit=HISTORY_LIMIT)
        return [{"at": r.at.isoformat(), "kind": r.kind, "from_status": r.from_status,
                 "to_status": r.to_status, "doc_url": r.doc_url, "source": r.source}
                for r in rows if r.account == state.account]
