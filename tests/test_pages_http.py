"""The status page over HTTP, without a browser: headers, escaping, hostile requests, the
login cookie, CSRF, and what the line and health pages read from the database (SQLite
and PostgreSQL). The page routes run in-process (httpx's ASGI transport) over a real,
migrated database; tests/test_status_page.py drives them in Chromium against a daemon.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from monitor.config import Config, parse_config
from monitor.core.directory import LineDirectory
from monitor.core.labels import Labeler
from monitor.core.model import LineState
from monitor.http.pages import page_routes
from monitor.metrics import Metrics
from monitor.service.runtime import build_metrics
from monitor.store.schema import Notification, Poll, TransitionRow, WebhookEvent

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TOKEN = "s3cret-page-token"
PHONE = "+14155550100"


@dataclass
class Sources:
    config: Config
    sessions: sessionmaker[Session]
    directory: LineDirectory
    metrics: Metrics


def line(phone: str, status: str, *, minutes: int = 10, doc_url: str | None = None
         ) -> LineState:
    return LineState(account="main", line_id=f"id{phone[-4:]}", phone_number=phone,
                     status=status, doc_url=doc_url, since=NOW - timedelta(minutes=minutes))


@pytest.fixture
def sources(sessions: sessionmaker[Session]) -> Sources:
    config = parse_config({"accounts": [{"name": "main", "token": "t"}]})
    directory = LineDirectory()
    directory.update([
        line(PHONE, "CRITICAL", doc_url="https://docs.linqapp.com/x#critical"),
        line("+14155550101", "WATCH"),
        line("+14155550102", "SOMETHING_NEW", doc_url="javascript:alert(1)"),
        line("+14155550103", "HEALTHY"),
    ])
    return Sources(config, sessions, directory, build_metrics(config, Labeler([])))


async def client_for(sources: Sources, token: str | None) -> httpx.AsyncClient:
    app = Starlette(routes=page_routes(sources, token=token, clock=lambda: NOW))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://page")


@pytest.fixture
async def client(sources: Sources) -> AsyncIterator[httpx.AsyncClient]:
    async with await client_for(sources, None) as c:
        yield c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


async def test_every_page_forbids_scripts_and_other_origins_and_has_none(
        client: httpx.AsyncClient) -> None:
    for path in ["/", f"/lines/{PHONE}", "/silences", "/health"]:
        answer = await client.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "<script" not in answer.text
        assert not re.search(r'(src|href)="(https?:)?//(?!docs\.linqapp\.com)', answer.text)
    css = await client.get("/static/style.css")
    assert css.status_code == 200 and "prefers-color-scheme: dark" in css.text


async def test_statuses_it_does_not_know_are_shown_by_name_neutrally_and_sorted_first(
        client: httpx.AsyncClient) -> None:
    html = (await client.get("/")).text
    rows = re.findall(r'<span class="status (status-[a-z_]+)">([A-Z_]+)</span>',
                      html.split("<tbody>", 2)[2])
    classes = dict((status, css) for css, status in rows)
    assert classes == {"SOMETHING_NEW": "status-other", "CRITICAL": "status-critical",
                       "WATCH": "status-watch", "HEALTHY": "status-healthy"}
    order = [status for _, status in rows]
    # WATCH (between HEALTHY and AT_RISK) may or may not be a known status yet: it is
    # above HEALTHY either way.
    assert order.index("SOMETHING_NEW") < order.index("CRITICAL") < order.index("HEALTHY")
    assert order.index("WATCH") < order.index("HEALTHY")


async def test_a_doc_url_that_is_not_a_web_address_is_never_a_link(
        client: httpx.AsyncClient) -> None:
    assert 'href="javascript:' not in (await client.get("/")).text
    page = (await client.get("/lines/+14155550102")).text
    assert "javascript:alert(1)" in page and 'href="javascript:' not in page


@pytest.mark.parametrize("path", [
    "/?page=-3", "/?page=abc", "/?page=999999999999999999999", "/?status=%00&account=%ff",
    "/?label=%3D%3D%3D", "/lines/+14155550100?days=abc", "/lines/+14155550100?days=-7",
    "/?q=" + "9" * 5000,
])
async def test_odd_queries_get_a_page_not_an_error(client: httpx.AsyncClient,
                                                   path: str) -> None:
    assert (await client.get(path)).status_code == 200


async def test_what_a_query_says_comes_back_escaped(client: httpx.AsyncClient) -> None:
    answer = await client.get("/", params={"q": '"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in answer.text
    assert "&#34;&gt;&lt;script&gt;" in answer.text
    missing = await client.get("/lines/<b>nope</b>")
    assert missing.status_code == 404 and "<b>nope" not in missing.text


async def test_a_write_needs_the_csrf_token_that_belongs_to_its_cookie(
        client: httpx.AsyncClient) -> None:
    page = await client.get("/silences")
    csrf = csrf_of(page.text)
    form = {"kind": "line", "value": PHONE, "duration": "1h", "reason": "maintenance",
            "by": "Ada"}
    assert (await client.post("/silences", data=form)).status_code == 403
    assert (await client.post("/silences", data={**form, "csrf": "f" * 64})).status_code == 403
    assert (await client.post("/silences", json={**form, "csrf": csrf})).status_code == 415
    assert (await client.post("/silences", data={**form, "csrf": csrf},
                              headers={"origin": "https://evil.example"})).status_code == 403
    crowded = {**form, "csrf": csrf, **{f"x{i}": "1" for i in range(60)}}
    assert (await client.post("/silences", data=crowded)).status_code == 403
    stranger = httpx.AsyncClient(transport=client._transport, base_url="http://page")
    assert (await stranger.post("/silences", data={**form, "csrf": csrf})).status_code == 403

    added = await client.post("/silences", data={**form, "csrf": csrf},
                              headers={"origin": "http://page"})
    assert added.status_code == 303
    listing = (await client.get(added.headers["location"])).text
    assert re.search(r"Silence 1 added", listing)
    assert "Ada (status page)" in listing and f"line={PHONE}" in listing
    row = (await client.get("/")).text.split(f">{PHONE}</a>", 1)[1].split("</tr>")[0]
    assert "until 2026-11-30 13:00:00 UTC" in row and "by Ada (status page)" in row

    assert (await client.post("/silences/1/expire", data={"csrf": csrf})).status_code == 400
    expired = await client.post("/silences/1/expire", data={"csrf": csrf, "by": "Bo"})
    assert expired.status_code == 303
    # Recorded, not only logged: who ended it early shows on the page (from the database).
    assert "(expired by Bo (status page))" in (await client.get(expired.headers["location"])).text
    again = await client.post("/silences/1/expire", data={"csrf": csrf, "by": "Bo"})
    assert again.status_code == 409 and "already ended" in again.text
    huge = await client.post(f"/silences/{2**70}/expire", data={"csrf": csrf, "by": "Bo"})
    assert huge.status_code == 404


@pytest.mark.parametrize(("field", "value", "says"), [
    ("duration", "5", "“Duration”: 5 has no unit"),
    ("duration", "0s", "more than 0"),
    ("kind", "phone", "“Matches” must be line, label or account"),
    ("value", " ", "“Value” is required"),
    ("value", "team", "“Value”: &#39;team&#39; is not key=value"),
    ("reason", "", "“Reason” is required"),
    ("by", "", "“By” is required"),
])
async def test_a_bad_silence_form_says_which_field_is_wrong_and_keeps_what_was_typed(
        client: httpx.AsyncClient, field: str, value: str, says: str) -> None:
    csrf = csrf_of((await client.get("/silences")).text)
    form = {"kind": "label", "value": "team=sales", "duration": "1h", "reason": "deploy",
            "by": "Ada", "csrf": csrf, field: value}
    answer = await client.post("/silences", data=form)
    assert answer.status_code == 400
    assert says in answer.text
    assert 'value="deploy"' in answer.text or field == "reason"


async def test_with_a_token_the_pages_ask_for_it_and_keep_a_strict_cookie_not_the_token(
        sources: Sources) -> None:
    async with await client_for(sources, TOKEN) as client:
        first = await client.get("/silences")
        assert first.status_code == 303
        assert first.headers["location"] == "/login?next=%2Fsilences"
        login = await client.get(first.headers["location"])
        csrf = csrf_of(login.text)
        wrong = await client.post("/login", data={"csrf": csrf, "token": "guess",
                                                  "next": "/silences"})
        assert wrong.status_code == 401 and "guess" not in wrong.text
        right = await client.post("/login", data={"csrf": csrf, "token": TOKEN,
                                                  "next": "//evil.example/"})
        assert right.status_code == 303 and right.headers["location"] == "/"
        cookie = right.headers["set-cookie"]
        assert "rm_auth=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert TOKEN not in cookie
        assert (await client.get("/silences")).status_code == 200
        client.cookies.delete("rm_auth")
        bearer = await client.get("/", headers={"authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200
        assert (await client.get("/")).status_code == 303


@pytest.mark.both_databases
async def test_the_line_page_shows_each_change_with_what_each_channel_made_of_it(
        client: httpx.AsyncClient, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        base = {"account": "main", "line_id": "id0100", "phone_number": PHONE,
                "doc_url": None, "previous_since": None}
        first = TransitionRow(kind="new", from_status=None, to_status="HEALTHY",
                              at=NOW - timedelta(days=3), source="poll", **base)
        worse = TransitionRow(kind="change", from_status="HEALTHY", to_status="CRITICAL",
                              at=NOW - timedelta(minutes=10), source="webhook", **base)
        old = TransitionRow(kind="change", from_status="HEALTHY", to_status="AT_RISK",
                            at=NOW - timedelta(days=20), source="poll", **base)
        session.add_all([old, first, worse])
        session.flush()
        for channel, state, attempts, deferred in [
                ("ops", "delivered", 1, False), ("pager", "delivered", 3, False),
                ("email", "failed", 9, False), ("slack", "pending", 0, True),
                ("sms", "silenced", 0, False), ("chat", "pending", 2, False)]:
            session.add(Notification(
                transition_id=worse.id, account="main", line_id="id0100", channel=channel,
                kind="alert", title="t", body="b", created_at=NOW, state=state,
                attempts=attempts, next_attempt_at=NOW, deferred=deferred,
                delivered_at=NOW if state == "delivered" else None,
                last_error="HTTP 500 from the pager" if state == "failed" else None))
        session.add(Poll(account="main", started_at=NOW, finished_at=NOW, outcome="error",
                         line_count=None, changes=0, skipped=0, error="timeout",
                         trace_id="trace-abc123"))
        session.add(WebhookEvent(event_id="evt-1", account="main", event_type="x",
                                 received_at=NOW - timedelta(minutes=5), payload="{}",
                                 state="applied"))
    page = (await client.get(f"/lines/{PHONE}")).text
    changes = page.split('class="changes"', 1)[1]
    assert changes.index("CRITICAL") < changes.index(">new<")  # newest first
    assert "AT_RISK" not in changes  # older than the 7-day window
    for shown in ["ops: delivered at", "pager: delivered after 3 tries", "email: gave up",
                  "HTTP 500 from the pager", "slack: deferred", "sms: silenced",
                  "chat: retrying", "webhook"]:
        assert shown in changes, shown
    assert "AT_RISK" in (await client.get(f"/lines/{PHONE}?days=30")).text.split(
        'class="changes"', 1)[1]

    health = (await client.get("/health")).text
    assert "trace-abc123" in health and "timeout" in health
    channels = health.split('id="ch-h"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"email</th><td>0</td><td>0</td><td>0</td><td>1</td>", channels)
    assert re.search(r"slack</th><td>0</td><td>0</td><td>1</td><td>0</td>", channels)
    assert re.search(r"chat</th><td>0</td><td>1</td><td>0</td><td>0</td>", channels)
    assert "<td>1</td>" in health.split('id="wh-h"', 1)[1]  # one applied event this hour
