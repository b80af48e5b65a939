"""Linq's reputation audit endpoints: start one for a line, read it back.

``POST /v3/phone_numbers/{phone}/reputation_audit`` starts an asynchronous audit (one per
line at a time); ``GET .../reputation_audit/{audit_id}`` reads it until ``complete`` or
``error``. As linq-python 0.65.0 (generated from Linq's OpenAPI spec) documents them:
- a start while an audit of the line is running answers ``202`` with *that* audit's
  ``audit_id``, the same shape as a fresh start, so we simply follow the id we are given;
- a start within the cooldown after an audit ended answers ``429`` with ``Retry-After``
  (``AuditCooldown``; we skip, and say so);
- an ``audit_id`` stays readable for 24 hours; after that, or for another line's id, the
  GET answers ``404`` (``AuditNotFound``).
No retries here; the caller bounds the whole wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from monitor import __version__
from monitor.api.client import (
    _error_from_response,
    _retry_after,
    _transport_reason,
    tls_verify,
)
from monitor.errors import ApiError, ApiRateLimited


@dataclass(frozen=True, slots=True)
class Started:
    """A 202: the audit to follow, new or the one already running (Linq does not say which)."""

    audit_id: str


class AuditCooldown(ApiRateLimited):
    """429: the line's audit cooldown; ``retry_after`` says for how long."""


class AuditNotFound(ApiError):
    """404 on an ``audit_id``: older than Linq keeps audits (24 h), or another line's."""


class AuditClient:
    def __init__(self, *, base_url: str, token: str, timeout: float = 30.0,
                 ca_bundle: Path | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                     "User-Agent": f"linq-reputation-monitor/{__version__}"},
            timeout=httpx.Timeout(timeout), verify=tls_verify(ca_bundle),
            follow_redirects=False, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def start(self, phone_number: str) -> Started:
        """Start an audit, or get the running one's id. Raises AuditCooldown, ApiError."""
        response = await self._request("POST", _path(phone_number))
        if response.status_code == 429:
            error = _error_from_response(response)
            raise AuditCooldown(str(error), retry_after=_retry_after(response),
                                trace_id=error.trace_id)
        if not response.is_success:
            raise _error_from_response(response)
        audit_id = _audit_id(_json(response))
        if not audit_id:
            raise ApiError("the audit answer has no audit_id",
                           trace_id=response.headers.get("x-trace-id"))
        return Started(audit_id)

    async def get(self, phone_number: str, audit_id: str) -> dict[str, Any]:
        """The audit as Linq shows it now (``status``: pending, complete or error).

        Raises AuditNotFound when Linq no longer has it (24 h) or it is another line's."""
        response = await self._request("GET", f"{_path(phone_number)}/{quote(audit_id, '')}")
        if response.status_code == 404:
            raise AuditNotFound(
                f"audit {audit_id} of {phone_number} not found (HTTP 404): Linq keeps an "
                "audit readable for 24 hours, and only under the line it audited",
                status=404, trace_id=response.headers.get("x-trace-id"), permanent=True)
        if not response.is_success:
            raise _error_from_response(response)
        return _json(response)

    async def _request(self, method: str, path: str) -> httpx.Response:
        try:
            return await self._http.request(method, path)
        except httpx.TimeoutException as exc:
            raise ApiError(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise ApiError(f"connection failed: {_transport_reason(exc)}") from None


def _path(phone_number: str) -> str:
    return f"/v3/phone_numbers/{quote(phone_number, safe='')}/reputation_audit"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _audit_id(value: object) -> str | None:
    if isinstance(value, dict):
        found = value.get("audit_id") or value.get("id")
        if isinstance(found, str) and found:
            return found
    return None
