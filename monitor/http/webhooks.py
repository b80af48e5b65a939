"""``POST /webhooks/linq``: the HTTP face of the webhook processor.

Answers: 200 once the event is durably recorded (or was already: a redelivery); 401 for a
missing or bad signature or a stale timestamp, with no detail; 400 for a signed body that
is not the expected JSON; 413 past ``MAX_BODY`` (64 KB, enforced by monitor/http/guard.py); 503
when the database cannot record it (Linq retries 5xx); 404 when no account has a secret.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from monitor.errors import StoreError, WebhookMalformed, WebhookRejected
from monitor.metrics import Metrics
from monitor.webhooks.liveness import PushWatch
from monitor.webhooks.process import WebhookProcessor

log = logging.getLogger(__name__)

PATH = "/webhooks/linq"
# Linq's phone-number events are ~1 KB; a body this size is already no webhook of ours.
MAX_BODY = 64 * 1024


def webhook_routes(processor: WebhookProcessor, metrics: Metrics,
                   watch: PushWatch | None = None) -> list[Route]:
    """The route; ``watch`` hears of each signed webhook's verdict (push liveness)."""

    async def linq(request: Request) -> Response:
        if not processor.enabled:
            return PlainTextResponse("webhooks are not configured\n", status_code=404)
        body = await request.body()
        try:
            receipt = await processor.receive(body, request.headers)
        except WebhookRejected as exc:
            metrics.webhooks.labels("rejected").inc()
            log.warning("webhook rejected (401): %s", exc)
            # Only signed requests count: an unsigned probe says nothing about our secret.
            if watch is not None and _signed(request) and watch.rejected(
                    str(exc), now=datetime.now(UTC)):
                log.error("signed webhooks keep being rejected: was the secret rotated?")
            return PlainTextResponse("unauthorized\n", status_code=401)
        except WebhookMalformed as exc:
            metrics.webhooks.labels("malformed").inc()
            log.warning("webhook malformed (400): %s", exc)
            return PlainTextResponse(f"bad request: {exc}\n", status_code=400)
        except StoreError as exc:
            log.error("webhook not recorded (503, Linq will retry): %s", exc)
            return PlainTextResponse("cannot record the event now\n", status_code=503)
        if watch is not None:
            watch.accepted()
        outcome = ("duplicate" if receipt.duplicate
                   else "accepted" if receipt.known
                   else "ignored")
        metrics.webhooks.labels(outcome).inc()
        log.info("webhook %s %s event_id=%s", outcome, receipt.event_type, receipt.event_id,
                 extra={"account": receipt.account})
        return JSONResponse({"received": True, "duplicate": receipt.duplicate})

    return [Route(PATH, linq, methods=["POST"])]


def _signed(request: Request) -> bool:
    headers = request.headers
    return bool(headers.get("webhook-signature") or headers.get("x-webhook-signature"))
