"""The ASGI app of the fake Linq API: routes, auth, delays and the X-Trace-ID header."""

from __future__ import annotations

import asyncio

import orjson
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.simulator.state import Simulator
from monitor.simulator.wire import JSON, new_trace_id, render_error

# Linq's documented base URL ends in /api/partner; serving both spellings lets a client be
# pointed at the simulator with either kind of base_url.
LIST_PATHS = ("/v3/phone_numbers", "/api/partner/v3/phone_numbers")
HEALTH_PATH = "/_sim/health"
SET_PATH = "/_sim/set"


def build_app(sim: Simulator) -> Starlette:
    """An app answering Linq's list endpoint from `sim`, plus an unauthenticated health check."""

    async def list_phone_numbers(request: Request) -> Response:
        reply = sim.respond(request.headers.get("authorization"))
        if reply.delay > 0 and await _client_left_during(request, reply.delay):
            # Nobody is listening any more; the server drops whatever we return.
            return Response(status_code=499)
        return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def set_statuses(request: Request) -> Response:
        """Change statuses from another process (benchmarks, scripted demos).

        Body: ``{"<phone or id>": "STATUS", ...}``; needs the same bearer token as the API.
        """
        if request.headers.get("authorization") != f"Bearer {sim.token}":
            return PlainTextResponse("unauthorized", status_code=401)
        try:
            changes = orjson.loads(await request.body())
            sim.set_many(changes)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            return PlainTextResponse(f"bad request: {exc}", status_code=400)
        return PlainTextResponse(f"{len(changes)} set")

    def authorised(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {sim.token}"

    async def start_audit(request: Request) -> Response:
        if not authorised(request):
            return Response(render_error(401, trace_id=new_trace_id()), status_code=401)
        status, body, headers = sim.audits.start(request.path_params["phone"])
        return Response(body, status_code=status, headers=headers, media_type=JSON)

    async def read_audit(request: Request) -> Response:
        if not authorised(request):
            return Response(render_error(401, trace_id=new_trace_id()), status_code=401)
        status, body = sim.audits.read(request.path_params["phone"],
                                       request.path_params["audit_id"])
        return Response(body, status_code=status, media_type=JSON)

    async def subscriptions(request: Request) -> Response:
        if not authorised(request):
            return Response(render_error(401, trace_id=new_trace_id()), status_code=401)
        if request.method == "GET":
            return Response(orjson.dumps(sim.subscriptions.list()), media_type=JSON)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        status, answer = sim.subscriptions.create(body)
        return Response(orjson.dumps(answer), status_code=status, media_type=JSON)

    async def subscription(request: Request) -> Response:
        if not authorised(request):
            return Response(render_error(401, trace_id=new_trace_id()), status_code=401)
        if request.method == "PUT":
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                body = None
            status, answer = sim.subscriptions.update(request.path_params["id"], body)
            return Response(orjson.dumps(answer), status_code=status, media_type=JSON)
        if sim.subscriptions.delete(request.path_params["id"]):
            return Response(status_code=204)
        return Response(render_error(404, trace_id=new_trace_id()), status_code=404,
                        media_type=JSON)

    async def list_chats(request: Request) -> Response:
        if not authorised(request):
            return Response(render_error(401, trace_id=new_trace_id()), status_code=401)
        reply = sim.chats.list(request.query_params)
        return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))

    routes = [Route(path, list_phone_numbers, methods=["GET"]) for path in LIST_PATHS]
    for prefix in ("", "/api/partner"):
        routes.append(Route(prefix + "/v3/chats", list_chats, methods=["GET"]))
    for prefix in ("", "/api/partner"):
        routes.append(Route(prefix + "/v3/webhook-subscriptions", subscriptions,
                            methods=["GET", "POST"]))
        routes.append(Route(prefix + "/v3/webhook-subscriptions/{id}", subscription,
                            methods=["PUT", "DELETE"]))
    for prefix in ("", "/api/partner"):
        audit = prefix + "/v3/phone_numbers/{phone}/reputation_audit"
        routes.append(Route(audit, start_audit, methods=["POST"]))
        routes.append(Route(audit + "/{audit_id}", read_audit, methods=["GET"]))
    routes.append(Route(HEALTH_PATH, health, methods=["GET"]))
    routes.append(Route(SET_PATH, set_statuses, methods=["POST"]))
    return Starlette(routes=routes, middleware=[Middleware(_TraceIdMiddleware)])


async def _client_left_during(request: Request, seconds: float) -> bool:
    """Sleep `seconds`, stopping early if the client disconnects; True if it did.

    A client that timed out has gone away; waiting on for it would only hold the server's
    graceful shutdown hostage to a long scripted delay.
    """
    try:
        async with asyncio.timeout(seconds):
            # A GET has no body: the first message is the empty request, the next one
            # arrives only when the client disconnects.
            while (await request.receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True


class _TraceIdMiddleware:
    """Give every response an X-Trace-ID, as Linq does, unless the handler set one already.

    Pure ASGI rather than BaseHTTPMiddleware so the large list body is passed through as is.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_trace_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "x-trace-id" not in headers:
                    headers["X-Trace-ID"] = new_trace_id()
            await send(message)

        await self.app(scope, receive, send_with_trace_id)
